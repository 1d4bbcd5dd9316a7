"""`Store`: the one reader and writer of resnas's tables (schema.py), in the database at a storage URL.

Every query and every write of a study's config, its architectures and its runs goes through here,
so the version check, the JSON columns and the status rules are applied once.

Over 300 lines: the one class that touches resnas's tables (the point of it), each query a short method.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ResnasError
from ..training.status import RunStatus
from ..version import __version__
from ..yamlfile import parse_stored_json
from .migrate import upgrade
from .record import BITMAPS, Run, StudyRows
from .schema import REUSED_ELSEWHERE, SCHEMA_VERSION, archs, meta, runs, schema, studies
from .storage import DEFAULT_STORAGE, missing_sqlite_file, resolve_storage, safe_url, tune_sqlite

# Store, the record it returns, and the storage-URL helpers a caller opens one with (defined in
# record.py and storage.py).
__all__ = ["DEFAULT_STORAGE", "Run", "Store", "missing_sqlite_file", "resolve_storage", "safe_url", "tune_sqlite"]


@dataclass(frozen=True)
class Twin:
    """What `claim` returns for an arch the study trains or trained already (same recipe, same data)."""

    trial: int


class Store:
    """resnas's tables in the database at `url`, created on first use, version-checked on every open; a
    database an older resnas wrote is migrated in place then (migrate.py), one a newer wrote is refused."""

    def __init__(
        self, url: str | None = None, *, create: bool = False, must_exist: bool = True, field: str = "--storage"
    ):
        """`create`: make resnas's tables where they are missing (a search does); without it (reports) a
        database that has none is read as holding no studies and is left exactly as it was, and a SQLite
        file that is not there is an error (a mistyped path), unless not `must_exist`. `field`: the
        option that named the storage, for messages."""
        self.url = resolve_storage(url, create=create, field=field)
        self.version = __version__
        self.ready = False  # resnas's tables are there
        try:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
            if not create and missing_sqlite_file(self.engine.url):  # connecting would create it
                if not must_exist:
                    return
                raise ResnasError(
                    f"no database at {safe_url(self.url)} (a search creates it): check the path", field=field
                )
            found = self._versions()  # read before anything is written: a newer layout is not touched
            if found and max(found) > SCHEMA_VERSION:
                raise ResnasError(
                    f"{safe_url(self.url)} was written by a newer resnas (schema {max(found)}; this "
                    f"resnas {self.version} reads schema {SCHEMA_VERSION}): upgrade resnas",
                    field=field,
                )
            if found and max(found) < SCHEMA_VERSION:  # an older resnas's database: brought up to date in place
                upgrade(self.engine, max(found))
            if create:
                tune_sqlite(self.engine)
                meta.create_all(self.engine)
                if not found:
                    with self.engine.begin() as c:
                        c.execute(schema.insert().values(version=SCHEMA_VERSION))
            self.ready = create or found is not None
        except SQLAlchemyError as e:
            raise ResnasError(f"cannot open storage {safe_url(self.url)}: {_first_line(e)}", field=field) from None
        except ModuleNotFoundError as e:
            raise ResnasError(
                f"storage {safe_url(self.url)} needs the Python driver {e.name!r} (pip install {e.name})", field=field
            ) from None

    def _versions(self) -> list[int] | None:
        """The schema versions recorded, or None where resnas has never written (no resnas_schema table)."""
        if not sa.inspect(self.engine).has_table(schema.name):
            return None
        with self.engine.connect() as c:
            return list(c.execute(sa.select(schema.c.version)).scalars())

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- studies -----------------------------------------------------------------------------
    def study_config(self, name: str) -> dict | None:
        if not self.ready:
            return None
        with self.engine.connect() as c:
            row = c.execute(sa.select(studies.c.config).where(studies.c.name == name)).first()
        where = f"study {name!r} in {safe_url(self.url)}"
        return parse_stored_json(row[0], where) if row else None

    def config_of(self, name: str) -> dict:
        """A study's stored config; a study the storage does not hold is an error that lists the ones it does."""
        config = self.study_config(name)
        if config is None:
            known = self.study_names()
            raise ResnasError(
                f"no study {name!r} in {safe_url(self.url)}; studies there: "
                f"{', '.join(known) or 'none yet (run resnas search)'}",
                field="study",
            )
        return config

    def add_study(self, name: str, config: dict) -> None:
        with self.engine.begin() as c:
            c.execute(
                studies.insert().values(
                    name=name, config=json.dumps(config, sort_keys=True), created=time.time(), version=self.version
                )
            )

    def set_study_trials(self, name: str, trials: int) -> None:
        """The trial target is the one setting a resumed study may change; the latest one is kept."""
        self.set_study_values(name, trials=trials)

    def set_study_values(self, name: str, **values: Any) -> None:
        """Record facts of a study that are not its pinned definition (its trial target, its validation
        size as loaded); a value already stored as given is not written again."""
        config = self.study_config(name)
        if config is not None and any(config.get(k) != v for k, v in values.items()):
            config.update(values)
            with self.engine.begin() as c:
                c.execute(
                    studies.update().where(studies.c.name == name).values(config=json.dumps(config, sort_keys=True))
                )

    def study_names(self) -> list[str]:
        if not self.ready:
            return []
        with self.engine.connect() as c:
            return list(c.execute(sa.select(studies.c.name).order_by(studies.c.created)).scalars())

    # ---- architectures and runs --------------------------------------------------------------
    def put_arch(self, arch, cost) -> None:
        with self.engine.begin() as c:
            if c.execute(sa.select(archs.c.key).where(archs.c.key == arch.key)).first() is None:
                c.execute(
                    archs.insert().values(
                        key=arch.key,
                        arch=json.dumps(arch.to_dict(), sort_keys=True),
                        summary=arch.summary(),
                        flops=cost.flops,
                        params=cost.params,
                        acts=cost.acts,
                    )
                )

    def add_run(self, **values: Any) -> int:
        with self.engine.begin() as c:
            return _new_id(c.execute(runs.insert().values(**self._encode(values))))

    def _encode(self, values: dict) -> dict:
        for k in ("history", "recipe"):
            if k in values and not isinstance(values[k], str):
                values[k] = json.dumps(values[k], sort_keys=True)
        if "status" in values:
            values["status"] = RunStatus(values["status"]).value  # a status resnas knows, stored as its text
        values.setdefault("version", self.version)
        values.setdefault("created", time.time())
        return values

    def claim(self, study: str, target: int, **values: Any) -> int | Twin | None:
        """A run row for a trial about to train, if the study's trial total leaves room for it (else None)
        and no trial of the study trains or has trained the same arch with the same recipe on the same
        data (else that trial, as a `Twin`).

        Any number of coordinators, on any number of hosts, claim from the same table: the study's row
        is locked first (an UPDATE locks the row in PostgreSQL and MySQL and the file in SQLite), so
        counting the study's runs and adding this one cannot interleave with another claim."""
        with self.engine.begin() as c:
            c.execute(studies.update().where(studies.c.name == study).values(name=study))
            twin = c.execute(
                sa.select(runs.c.trial)
                .where(
                    runs.c.study == study,
                    runs.c.arch_key == values["arch_key"],
                    runs.c.recipe_key == values["recipe_key"],
                    runs.c.data_key == values["data_key"],
                    runs.c.status.in_([RunStatus.RUNNING.value, *_texts("reusable")]),
                )
                .limit(1)
            ).scalar()
            if twin is not None:
                return Twin(twin)
            taken = c.execute(
                sa.select(sa.func.count())
                .select_from(runs)
                .where(runs.c.study == study, runs.c.status.in_(_texts("counts")))
            ).scalar_one()
            if taken >= target:
                return None
            return _new_id(c.execute(runs.insert().values(study=study, **self._encode(values))))

    def finish_run(self, run_id: int, *, only_running: bool = True, **values: Any) -> bool:
        """The result of a claimed run (written before Optuna is told, so no told trial lacks its run).
        False when the run was no longer `running` (another host declared it lost meanwhile)."""
        values = {k: v for k, v in self._encode(values).items() if k not in ("created", "version")}
        q = runs.update().where(runs.c.id == run_id)
        if only_running:
            q = q.where(runs.c.status == RunStatus.RUNNING.value)
        with self.engine.begin() as c:
            return c.execute(q.values(**values)).rowcount > 0

    def lose_run(self, study: str, trial: int, status: RunStatus | str, reason: str) -> None:
        """A run whose trial was failed from outside (stale heartbeat, dead process): it frees its slot."""
        with self.engine.begin() as c:
            c.execute(
                runs.update()
                .where(runs.c.study == study, runs.c.trial == trial, runs.c.status == RunStatus.RUNNING.value)
                .values(status=RunStatus(status).value, reason=reason)
            )

    def counts(self, study: str) -> dict[str, int]:
        """Runs of a study by status text (all hosts): `running` ones hold slots of the trial total."""
        if not self.ready:
            return {}
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(runs.c.status, sa.func.count()).where(runs.c.study == study).group_by(runs.c.status)
            ).all()
        return {status: n for status, n in rows}

    def find_trained(self, arch_key: str, recipe_key: str, data_key: str, study: str | None = None) -> Run | None:
        """A finished training of this arch with this recipe on this data split, if any: one in `study`
        first (a repeat there), else the first trained anywhere in this storage."""
        q = (
            _with_arch(sa.select(runs))
            .where(
                runs.c.arch_key == arch_key,
                runs.c.recipe_key == recipe_key,
                runs.c.data_key == data_key,
                runs.c.status.in_(_texts("reusable")),
            )
            .order_by((runs.c.study != study) if study else runs.c.id, runs.c.id)
        )
        with self.engine.connect() as c:
            found = [_run(r) for r in c.execute(q).mappings()]
        if not found:
            return None
        if study is not None and found[0].study == study:
            return found[0]
        return next((r for r in found if not r.reused), None)

    def find_pruned(self, arch_key: str, recipe_key: str, data_key: str, study: str) -> Run | None:
        """A run of `study` that trained this arch with this recipe on this data and was pruned: the same
        suggestion again is a repeat, not a new training (it would be stopped at the same rung)."""
        q = _with_arch(sa.select(runs)).where(
            runs.c.study == study,
            runs.c.arch_key == arch_key,
            runs.c.recipe_key == recipe_key,
            runs.c.data_key == data_key,
            runs.c.status == RunStatus.PRUNED.value,
        )
        with self.engine.connect() as c:
            row = c.execute(q.order_by(runs.c.id).limit(1)).mappings().first()
        return _run(row) if row is not None else None

    def set_test_acc(self, run_id: int, top1: float, correct: bytes | None = None) -> None:
        """A run's test accuracy and, where measured, which test images it got right (paired.py's bitmap)."""
        with self.engine.begin() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(test_acc=top1, test_correct=correct))

    def runs(self, study: str) -> list[Run]:
        """Every run of a study, by trial, with its architecture's description and cost."""
        if not self.ready:
            return []
        q = _with_arch(sa.select(runs)).where(runs.c.study == study).order_by(runs.c.trial)
        with self.engine.connect() as c:
            return [_run(r) for r in c.execute(q).mappings()]

    # ---- a study copied between storages -----------------------------------------------------
    def study_rows(self, name: str) -> StudyRows:
        """Study `name`'s rows as stored, read over one connection: its study row, its runs, their
        architectures, and the study, trial and architecture of each run elsewhere that one of its runs reused."""
        with self.engine.connect() as c:
            study = dict(c.execute(sa.select(studies).where(studies.c.name == name)).mappings().one())
            its_runs = _dicts(c, sa.select(runs).where(runs.c.study == name).order_by(runs.c.id))
            keys = sorted({r["arch_key"] for r in its_runs})
            its_archs = _dicts(c, sa.select(archs).where(archs.c.key.in_(keys)).order_by(archs.c.key)) if keys else []
            ids = {r["id"] for r in its_runs}
            outside = sorted({r["reused_from"] for r in its_runs} - ids - {None, REUSED_ELSEWHERE})
            q = sa.select(runs.c.id, runs.c.study, runs.c.trial, runs.c.arch_key).where(runs.c.id.in_(outside))
            others = {r["id"]: r for r in _dicts(c, q)} if outside else {}
        return StudyRows(study, its_runs, its_archs, others)

    def add_study_copy(self, rows: StudyRows, name: str, source: str) -> tuple[int, int]:
        """A copy of another storage's study (`source`, shown in notes) as study `name`, in one transaction.

        Runs get new ids. A run that reused another keeps pointing at it: at its copy when that run is
        copied too, else at the same (study, trial, architecture) here if there is one, else at
        REUSED_ELSEWHERE with its `reason` naming the original. Returns (architectures added, runs whose
        original stays behind)."""
        with self.engine.begin() as c:
            c.execute(studies.insert().values(**{**rows.study, "name": name}))
            keys = [a["key"] for a in rows.archs]
            have = set(c.execute(sa.select(archs.c.key).where(archs.c.key.in_(keys))).scalars()) if keys else set()
            new_archs = [a for a in rows.archs if a["key"] not in have]
            if new_archs:
                c.execute(archs.insert(), new_archs)
            ids, inside, elsewhere = {}, [], 0
            copied = {r["id"] for r in rows.runs}
            for run in rows.runs:
                values = {**{k: v for k, v in run.items() if k != "id"}, "study": name}
                ref = run["reused_from"]
                if ref in copied:
                    values["reused_from"] = None  # aimed at its copy once every run has an id
                    inside.append((run["id"], ref))
                elif ref is not None and ref != REUSED_ELSEWHERE:
                    original = rows.outside.get(ref)
                    values["reused_from"] = _same_run(c, original)
                    if values["reused_from"] == REUSED_ELSEWHERE:
                        elsewhere += 1
                        values["reason"] = _reused_elsewhere(run["reason"], ref, original, source)
                ids[run["id"]] = _new_id(c.execute(runs.insert().values(**values)))
            for old, ref in inside:
                c.execute(runs.update().where(runs.c.id == ids[old]).values(reused_from=ids[ref]))
        return len(new_archs), elsewhere


def _with_arch(query: sa.Select) -> sa.Select:
    """A query of runs, with each run's architecture and cost beside it."""
    columns = (archs.c.arch, archs.c.summary, archs.c.flops, archs.c.params, archs.c.acts)
    return query.add_columns(*columns).join(archs, runs.c.arch_key == archs.c.key)


def _new_id(result: sa.CursorResult) -> int:
    """The id the database gave the row just inserted."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the database returned no id for the new row")
    return int(key[0])


def _texts(prop: str) -> list[str]:
    """The stored text of every status with a property, for a filter."""
    return [s.value for s in RunStatus.where(prop)]


def _run(row: Mapping) -> Run:
    values = dict(row)
    for k in ("recipe", "history", "arch"):
        if values.get(k) is not None:
            where = f"run {values.get('trial')} of study {values.get('study')!r}"
            values[k] = parse_stored_json(values[k], f"{where}, its {k}")
    for k in BITMAPS:  # some drivers hand back a memoryview
        if values.get(k) is not None:
            values[k] = bytes(values[k])
    return Run(**{**values, "status": RunStatus(values["status"])})


def _dicts(c: sa.Connection, query) -> list[dict]:
    return [dict(r) for r in c.execute(query).mappings()]


def _same_run(c: sa.Connection, original: dict | None) -> int:
    """This storage's run of the same study, trial and architecture, else REUSED_ELSEWHERE."""
    if original is None:
        return REUSED_ELSEWHERE
    found = c.execute(
        sa.select(runs.c.id)
        .where(runs.c.study == original["study"], runs.c.trial == original["trial"])
        .where(runs.c.arch_key == original["arch_key"])
        .order_by(runs.c.id)
    ).first()
    return found[0] if found else REUSED_ELSEWHERE


def _reused_elsewhere(reason: str, ref: int, original: dict | None, source: str) -> str:
    """The run's reason, with a note naming the run in `source` whose result it took."""
    where = (
        f"run {ref} ({original['study']} trial {original['trial']}) in {source}"
        if original
        else f"run {ref}, no longer in {source}"
    )
    note = f"reused from {where}; not copied here"
    return f"{reason}; {note}" if reason else note


def _first_line(e: Exception) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
