"""resnas's own tables, next to Optuna's in the same database: architectures, runs and studies.

Optuna keeps what its samplers need; these tables keep what a person asks afterwards (which
architecture, trained how, on what, with which history) and let a later study reuse a result: an
architecture already trained with the same recipe on the same data split is not trained again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .errors import ResnasError

SCHEMA_VERSION = 1
DEFAULT_STORAGE = "sqlite:///studies/resnas.db"
REUSABLE = ("ok", "stopped_early")
# A run in one of these states holds no slot of the study's trial total: it was cut short from outside
# (Ctrl-C or SIGTERM, its process killed, its host gone quiet) and its parameters are tried again.
UNCOUNTED = ("interrupted", "crashed", "lost")

meta = sa.MetaData()  # floats are sa.Double: MySQL's FLOAT is single precision
schema = sa.Table("resnas_schema", meta, sa.Column("version", sa.Integer, nullable=False))
studies = sa.Table(
    "resnas_studies",
    meta,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),  # JSON: space snapshot, budget, dataset, recipe, ...
    sa.Column("created", sa.Double, nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
)
archs = sa.Table(
    "resnas_archs",
    meta,
    sa.Column("key", sa.String(32), primary_key=True),
    sa.Column("arch", sa.Text, nullable=False),
    sa.Column("summary", sa.String(255), nullable=False),
    sa.Column("flops", sa.BigInteger, nullable=False),
    sa.Column("params", sa.BigInteger, nullable=False),
    sa.Column("acts", sa.BigInteger, nullable=False),
)
runs = sa.Table(
    "resnas_runs",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study", sa.String(255), nullable=False, index=True),
    sa.Column("trial", sa.Integer, nullable=False),
    sa.Column("arch_key", sa.String(32), sa.ForeignKey("resnas_archs.key"), nullable=False, index=True),
    sa.Column("recipe_key", sa.String(64), nullable=False),
    sa.Column("recipe", sa.Text, nullable=False),
    sa.Column("data_key", sa.String(512), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("history", sa.Text, nullable=False, default="[]"),
    sa.Column("epochs", sa.Integer, nullable=False, default=0),
    sa.Column("best_val_acc", sa.Double),
    sa.Column("test_acc", sa.Double),
    sa.Column("checkpoint", sa.Text),
    sa.Column("device", sa.String(64)),
    sa.Column("wall_seconds", sa.Double),
    sa.Column("train_seconds", sa.Double),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("reused_from", sa.Integer),
    sa.Column("created", sa.Double, nullable=False),
)


def tune_sqlite(engine: sa.engine.Engine) -> None:
    """WAL journal and `synchronous=NORMAL` for a SQLite engine: a commit no longer waits for the disk
    (a crash can lose the last commits, never corrupt the file), which keeps the coordinator's per-trial
    bookkeeping to a few milliseconds. Other databases are left alone."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return

    def pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sa.event.listen(engine, "connect", pragmas)
    engine.dispose()  # pooled connections made before the listener reconnect with it


def safe_url(url: str) -> str:
    """The storage URL with any password masked, for messages and tables."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable storage URL>"


def resolve_storage(url: str | None, create: bool = True) -> str:
    """The default is one SQLite file under studies/ (its folder is created if `create`); any SQLAlchemy URL
    otherwise."""
    url = url or DEFAULT_STORAGE
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ResnasError(
            f"{safe_url(url)} is not a storage URL; use e.g. sqlite:///studies/resnas.db or postgresql://user@host/db",
            field="--storage",
        ) from None
    if parsed.drivername in ("mysql", "mariadb"):  # PyMySQL (pure Python, a dependency) over mysqlclient
        url = parsed.set(drivername=f"{parsed.drivername}+pymysql").render_as_string(hide_password=False)
    if create and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResnasError(
                f"cannot create the folder {folder} for {safe_url(url)}: {e.strerror}", field="--storage"
            ) from None
    return url


class Store:
    """resnas's tables in the database at `url`, created on first use, version-checked on every open."""

    def __init__(self, url: str | None = None, *, create: bool = False, must_exist: bool = True):
        """`create`: make resnas's tables where they are missing (a search does); without it (reports) a
        database that has none is read as holding no studies and is left exactly as it was, and a SQLite
        file that is not there is an error (a mistyped path), unless not `must_exist`."""
        from . import __version__

        self.url = resolve_storage(url, create=create)
        self.version = __version__
        self.ready = False  # resnas's tables are there
        try:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
            if not create and missing_sqlite_file(self.engine.url):  # connecting would create it
                if not must_exist:
                    return
                raise ResnasError(
                    f"no database at {safe_url(self.url)} (a search creates it): check the path", field="--storage"
                )
            found = self._versions()  # read before anything is written: a newer layout is not touched
            if found and max(found) > SCHEMA_VERSION:
                raise ResnasError(
                    f"{safe_url(self.url)} was written by a newer resnas (schema {max(found)}; this "
                    f"resnas {self.version} reads schema {SCHEMA_VERSION}): upgrade resnas",
                    field="--storage",
                )
            if create:
                tune_sqlite(self.engine)
                meta.create_all(self.engine)
                if not found:
                    with self.engine.begin() as c:
                        c.execute(schema.insert().values(version=SCHEMA_VERSION))
            self.ready = create or found is not None
        except SQLAlchemyError as e:
            raise ResnasError(
                f"cannot open storage {safe_url(self.url)}: {_first_line(e)}", field="--storage"
            ) from None
        except ModuleNotFoundError as e:
            raise ResnasError(
                f"storage {safe_url(self.url)} needs the Python driver {e.name!r} (pip install {e.name})",
                field="--storage",
            ) from None

    def _versions(self) -> list[int] | None:
        """The schema versions recorded, or None where resnas has never written (no resnas_schema table)."""
        if not sa.inspect(self.engine).has_table("resnas_schema"):
            return None
        with self.engine.connect() as c:
            return list(c.execute(sa.select(schema.c.version)).scalars())

    # ---- studies -----------------------------------------------------------------------------
    def study_config(self, name: str) -> dict | None:
        if not self.ready:
            return None
        with self.engine.connect() as c:
            row = c.execute(sa.select(studies.c.config).where(studies.c.name == name)).first()
        return json.loads(row[0]) if row else None

    def add_study(self, name: str, config: dict) -> None:
        with self.engine.begin() as c:
            c.execute(
                studies.insert().values(
                    name=name, config=json.dumps(config, sort_keys=True), created=time.time(), version=self.version
                )
            )

    def set_study_trials(self, name: str, trials: int) -> None:
        """The trial target is the one setting a resumed study may change; the latest one is kept."""
        config = self.study_config(name)
        if config is not None and config.get("trials") != trials:
            config["trials"] = trials
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
            return c.execute(runs.insert().values(**self._encode(values))).inserted_primary_key[0]

    def _encode(self, values: dict) -> dict:
        for k in ("history", "recipe"):
            if k in values and not isinstance(values[k], str):
                values[k] = json.dumps(values[k], sort_keys=True)
        values.setdefault("version", self.version)
        values.setdefault("created", time.time())
        return values

    def claim(self, study: str, target: int, **values: Any) -> int | None:
        """A run row for a trial about to train, if the study's trial total leaves room for it; else None.

        Any number of coordinators, on any number of hosts, claim from the same table: the study's row
        is locked first (an UPDATE locks the row in PostgreSQL and MySQL and the file in SQLite), so
        counting the study's runs and adding this one cannot interleave with another claim."""
        with self.engine.begin() as c:
            c.execute(studies.update().where(studies.c.name == study).values(name=study))
            taken = c.execute(
                sa.select(sa.func.count())
                .select_from(runs)
                .where(runs.c.study == study, runs.c.status.not_in(UNCOUNTED))
            ).scalar_one()
            if taken >= target:
                return None
            return c.execute(runs.insert().values(study=study, **self._encode(values))).inserted_primary_key[0]

    def finish_run(self, run_id: int, *, only_running: bool = True, **values: Any) -> bool:
        """The result of a claimed run (written before Optuna is told, so no told trial lacks its run).
        False when the run was no longer `running` (another host declared it lost meanwhile)."""
        values = {k: v for k, v in self._encode(values).items() if k not in ("created", "version")}
        q = runs.update().where(runs.c.id == run_id)
        if only_running:
            q = q.where(runs.c.status == "running")
        with self.engine.begin() as c:
            return c.execute(q.values(**values)).rowcount > 0

    def lose_run(self, study: str, trial: int, status: str, reason: str) -> None:
        """A run whose trial was failed from outside (stale heartbeat, dead process): it frees its slot."""
        with self.engine.begin() as c:
            c.execute(
                runs.update()
                .where(runs.c.study == study, runs.c.trial == trial, runs.c.status == "running")
                .values(status=status, reason=reason)
            )

    def counts(self, study: str) -> dict:
        """Runs of a study by status (all hosts): `running` ones hold slots of the trial total."""
        if not self.ready:
            return {}
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(runs.c.status, sa.func.count()).where(runs.c.study == study).group_by(runs.c.status)
            ).all()
        return {status: n for status, n in rows}

    def find_trained(self, arch_key: str, recipe_key: str, data_key: str, study: str | None = None) -> dict | None:
        """A finished training of this arch with this recipe on this data split, if any: one in `study`
        first (a repeat there), else the first trained anywhere in this storage."""
        q = (
            sa.select(runs)
            .where(
                runs.c.arch_key == arch_key,
                runs.c.recipe_key == recipe_key,
                runs.c.data_key == data_key,
                runs.c.status.in_(REUSABLE),
            )
            .order_by((runs.c.study != study) if study else runs.c.id, runs.c.id)
        )
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        if not rows:
            return None
        if study is not None and rows[0]["study"] == study:
            return rows[0]
        original = [r for r in rows if r["reused_from"] is None]
        return original[0] if original else None

    def set_test_acc(self, run_id: int, top1: float) -> None:
        with self.engine.begin() as c:
            c.execute(runs.update().where(runs.c.id == run_id).values(test_acc=top1))

    def runs(self, study: str) -> list[dict]:
        """Every run of a study with its architecture's description and cost."""
        if not self.ready:
            return []
        q = (
            sa.select(runs, archs.c.arch, archs.c.summary, archs.c.flops, archs.c.params, archs.c.acts)
            .join(archs, runs.c.arch_key == archs.c.key)
            .where(runs.c.study == study)
            .order_by(runs.c.trial)
        )
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings()]
        for r in rows:
            r["arch"] = json.loads(r["arch"])
            r["history"] = json.loads(r["history"])
            r["recipe"] = json.loads(r["recipe"])
        return rows

    def dispose(self) -> None:
        self.engine.dispose()


def missing_sqlite_file(url: sa.engine.URL) -> bool:
    """A SQLite file URL whose file is not there (opening it would create an empty one)."""
    db = url.database
    in_file = url.get_backend_name() == "sqlite" and db not in (None, "", ":memory:")
    return in_file and not Path(db).expanduser().exists()


def _first_line(e: Exception) -> str:
    text = str(getattr(e, "orig", None) or e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
