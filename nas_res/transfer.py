"""A study copied from one storage to another (SQLite, PostgreSQL, MySQL), Optuna's side and resnas's together.

A study is two things in one database: an Optuna study (what the samplers learn from) and resnas's rows
(the study's pinned config, its runs, their architectures). Copying only one of them leaves a study
that cannot be resumed or reported, so both are copied or neither is: Optuna's side goes first (with
`optuna.copy_study`), resnas's rows follow in one transaction, and if anything fails after the Optuna
copy it is deleted again. The source is only read.

Runs keep their trial numbers (Optuna's copy preserves them, and this is checked) and get new ids in
the target. A run that reused another run's result points to it by id (`reused_from`): a pointer into
the copied study follows the copy, one into another study is re-aimed at the same (study, trial,
architecture) when the target holds it, and is otherwise set to 0, which means "reused from a run in
another storage" (the run's `reason` then names that run and storage). 0 is not NULL, so reports still
count the run as reused and `Store.find_trained` does not offer it as an original training.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from . import store as st
from .errors import ResnasError
from .search import STUDY_NAME

REUSED_ELSEWHERE = 0  # reused_from for a run whose original lives in another storage
RUNNING_STATUS = "running"  # a resnas run claimed by a worker and not finished yet
OPTUNA_TABLES = ("studies", "trials", "version_info", "alembic_version")  # all there: opening writes nothing


@dataclass
class Snapshot:
    """What is read from the source before anything is written to the target."""

    trial_numbers: list[int]
    running: int
    study: dict
    runs: list[dict]
    archs: list[dict]
    others: dict[int, dict] = field(default_factory=dict)  # id -> study, trial, arch_key of reused runs outside


def copy_study(name: str, source_url: str, target_url: str, new_name: str | None = None) -> dict:
    """Copy study `name` from `source_url` to `target_url` (as `new_name`); returns what was copied."""
    new_name = new_name or name
    if not STUDY_NAME.fullmatch(new_name):
        raise ResnasError(
            f"must be 1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit; got {new_name!r}",
            field="--as",
        )
    source = _resolve(source_url, "--from", must_exist=True)
    target_parsed = _parse(target_url, "--to")
    if target_parsed.get_backend_name() == "sqlite" and target_parsed.database in (None, "", ":memory:"):
        raise ResnasError(
            "an in-memory SQLite database ends with this command: copy to a file, e.g. sqlite:///studies/resnas.db",
            field="--to",
        )
    _quiet_optuna()
    snap = _read_source(source, name)
    if snap.running:
        raise ResnasError(
            f"{snap.running} trial{'s' if snap.running > 1 else ''} of {name!r} still running: copy "
            "it when its workers have stopped",
            field="study",
        )
    if not _missing_sqlite(target_parsed):  # a SQLite file not there yet holds no study; do not create it to ask
        _refuse_existing(_resolve(target_url, "--to"), new_name)
    return _copy(name, new_name, source, _resolve(target_url, "--to"), snap)


# ---- URLs and connections ------------------------------------------------------------------------


def _parse(url: str, option: str):
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise ResnasError(
            f"{st.safe_url(url)} is not a storage URL; use e.g. sqlite:///studies/resnas.db or "
            "postgresql://user@host/db",
            field=option,
        ) from None


def _missing_sqlite(parsed) -> bool:
    """No SQLite file to read: not there, or in memory (a new, empty database)."""
    in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    return in_memory or st.missing_sqlite_file(parsed)


def _resolve(url: str, option: str, must_exist: bool = False) -> str:
    """The URL as the rest of resnas opens it (same driver choice); a source SQLite file must exist,
    since opening a missing one would create it."""
    parsed = _parse(url, option)
    if must_exist and _missing_sqlite(parsed):
        raise ResnasError(f"no SQLite file at {st.safe_url(url)}", field=option)
    try:
        return st.resolve_storage(url)
    except ResnasError as e:
        raise ResnasError(e.bare, field=option) from None


@contextmanager
def _storage_errors(url: str, option: str):
    """Driver and connection failures as one line that names the storage without its password."""
    import optuna

    password = make_url(url).password
    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        text = str(getattr(e, "orig", None) or e).strip()
        line = text.splitlines()[0][:300] if text else type(e).__name__
        if password:
            line = line.replace(str(password), "***")
        raise ResnasError(f"cannot use storage {st.safe_url(url)}: {line}", field=option) from None
    except ImportError as e:
        raise ResnasError(
            f"storage {st.safe_url(url)} needs a Python driver that is not installed ({e.name or e})", field=option
        ) from None
    except RuntimeError as e:  # Optuna's schema check: an older or newer Optuna wrote it
        raise ResnasError(
            f"cannot use storage {st.safe_url(url)}: {str(e).splitlines()[0][:300]}", field=option
        ) from None


def _rdb(url: str, *, create: bool):
    """Optuna's storage object; on the source its tables are never created (it is only read)."""
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, skip_table_creation=not create)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _names(url: str, option: str) -> tuple[set[str], set[str]]:
    """Optuna's study names and resnas's study names there (tables missing: none), read without writing."""
    engine = None
    try:
        with _storage_errors(url, option):
            engine = sa.create_engine(url, pool_pre_ping=True)
            tables = set(sa.inspect(engine).get_table_names())
            resnas = set()
            if st.studies.name in tables:
                with engine.connect() as c:
                    resnas = set(c.execute(sa.select(st.studies.c.name)).scalars())
            found = set()
            if all(t in tables for t in OPTUNA_TABLES):
                storage = _rdb(url, create=False)
                try:
                    found = {s.study_name for s in storage.get_all_studies()}
                finally:
                    storage.engine.dispose()
            return found, resnas
    finally:
        if engine is not None:
            engine.dispose()


# ---- the source ----------------------------------------------------------------------------------


def _read_source(url: str, name: str) -> Snapshot:
    import optuna

    in_optuna, in_resnas = _names(url, "--from")
    safe = st.safe_url(url)
    if name not in in_optuna or name not in in_resnas:
        both = ", ".join(sorted(in_optuna & in_resnas)) or "none"
        if name in in_optuna:
            why = f"{name!r} in {safe} is an Optuna study without resnas's records (not made by resnas search)"
        elif name in in_resnas:
            why = f"study {name!r} in {safe} has resnas's records but no Optuna study"
        else:
            why = f"no study {name!r} in {safe}"
        raise ResnasError(f"{why}; resnas studies there: {both}", field="study")
    engine = storage = None
    try:
        with _storage_errors(url, "--from"):
            engine = sa.create_engine(url, pool_pre_ping=True)
            storage = _rdb(url, create=False)
            with engine.connect() as c:
                version = max(c.execute(sa.select(st.schema.c.version)).scalars(), default=st.SCHEMA_VERSION)
                if version > st.SCHEMA_VERSION:
                    raise ResnasError(
                        f"{safe} was written by a newer resnas (schema {version}; this one reads "
                        f"{st.SCHEMA_VERSION}): upgrade resnas",
                        field="--from",
                    )
                study = dict(c.execute(sa.select(st.studies).where(st.studies.c.name == name)).mappings().one())
                runs = [
                    dict(r)
                    for r in c.execute(
                        sa.select(st.runs).where(st.runs.c.study == name).order_by(st.runs.c.id)
                    ).mappings()
                ]
                keys = sorted({r["arch_key"] for r in runs})
                archs = (
                    [
                        dict(r)
                        for r in c.execute(
                            sa.select(st.archs).where(st.archs.c.key.in_(keys)).order_by(st.archs.c.key)
                        ).mappings()
                    ]
                    if keys
                    else []
                )
                ids = {r["id"] for r in runs}
                outside = sorted({r["reused_from"] for r in runs} - ids - {None, REUSED_ELSEWHERE})
                others = (
                    {
                        r["id"]: dict(r)
                        for r in c.execute(
                            sa.select(st.runs.c.id, st.runs.c.study, st.runs.c.trial, st.runs.c.arch_key).where(
                                st.runs.c.id.in_(outside)
                            )
                        ).mappings()
                    }
                    if outside
                    else {}
                )
            trials = storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
    finally:
        for eng in (engine, storage and storage.engine):
            if eng is not None:
                eng.dispose()
    running = {t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING}
    running |= {r["trial"] for r in runs if r["status"] == RUNNING_STATUS}
    return Snapshot([t.number for t in trials], len(running), study, runs, archs, others)


# ---- the target ----------------------------------------------------------------------------------


def _refuse_existing(url: str, new_name: str) -> None:
    in_optuna, in_resnas = _names(url, "--to")
    if new_name in in_optuna or new_name in in_resnas:
        raise ResnasError(
            f"{st.safe_url(url)} already has a study {new_name!r}: pick another name for the copy with --as NEWNAME",
            field="--to",
        )


def _copy(name: str, new_name: str, source: str, target: str, snap: Snapshot) -> dict:
    import optuna

    try:
        store = st.Store(target, create=True)
    except ResnasError as e:
        raise ResnasError(e.bare, field="--to") from None
    from_storage = to_storage = None
    started = False
    try:
        with _storage_errors(source, "--from"):
            from_storage = _rdb(source, create=False)
        with _storage_errors(target, "--to"):
            to_storage = _rdb(target, create=True)
        try:
            with _storage_errors(target, "--to"):
                started = True
                optuna.copy_study(
                    from_study_name=name, from_storage=from_storage, to_storage=to_storage, to_study_name=new_name
                )
        except optuna.exceptions.DuplicatedStudyError:
            started = False  # someone else's study of that name: not ours to delete
            raise ResnasError(
                f"{st.safe_url(target)} already has a study {new_name!r}: pick another name for the "
                "copy with --as NEWNAME",
                field="--to",
            ) from None
        except ValueError as e:
            raise ResnasError(f"Optuna could not copy {name!r}: {e}", field="study") from None
        with _storage_errors(target, "--to"):
            _check_numbers(snap, to_storage, new_name)
            added, elsewhere = _insert(store.engine, snap, new_name, st.safe_url(source))
    except BaseException as e:
        if started:
            problem = _drop(to_storage, new_name)
            if problem and isinstance(e, ResnasError):
                raise ResnasError(
                    f"{e}; removing the half-copied Optuna study {new_name!r} from "
                    f"{st.safe_url(target)} also failed ({problem}): delete it with "
                    f"`optuna delete-study`"
                ) from None
        raise
    finally:
        for storage in (from_storage, to_storage):
            if storage is not None:
                storage.engine.dispose()
        store.dispose()
    return {
        "study": name,
        "as": new_name,
        "from": st.safe_url(source),
        "to": st.safe_url(target),
        "trials": len(snap.trial_numbers),
        "runs": len(snap.runs),
        "archs_added": added,
        "reused_elsewhere": elsewhere,
    }


def _check_numbers(snap: Snapshot, storage, new_name: str) -> None:
    """resnas's runs name their trial by number: the copy must have numbered its trials the same way."""
    copied = [t.number for t in storage.get_all_trials(storage.get_study_id_from_name(new_name), deepcopy=False)]
    if copied != snap.trial_numbers:
        moved = [f"{a}->{b}" for a, b in zip(snap.trial_numbers, copied) if a != b][:5]
        raise ResnasError(
            f"the copy numbered its trials differently ({len(snap.trial_numbers)} trials in the "
            f"source, {len(copied)} copied; {', '.join(moved) or 'different counts'}): "
            "nothing was copied",
            field="study",
        )


def _insert(engine: sa.engine.Engine, snap: Snapshot, new_name: str, source: str) -> tuple[int, int]:
    """resnas's rows in one transaction; returns (architectures added, runs whose original stays behind)."""
    with engine.begin() as c:
        c.execute(st.studies.insert().values(**{**snap.study, "name": new_name}))
        keys = [a["key"] for a in snap.archs]
        have = set(c.execute(sa.select(st.archs.c.key).where(st.archs.c.key.in_(keys))).scalars()) if keys else set()
        new_archs = [a for a in snap.archs if a["key"] not in have]
        if new_archs:
            c.execute(st.archs.insert(), new_archs)
        ids, inside, elsewhere = {}, [], 0
        copied = {r["id"] for r in snap.runs}
        for run in snap.runs:
            values = {k: v for k, v in run.items() if k != "id"}
            values["study"] = new_name
            ref = run["reused_from"]
            if ref in copied:
                values["reused_from"] = None  # aimed at its copy once every run has an id
                inside.append((run["id"], ref))
            elif ref is not None and ref != REUSED_ELSEWHERE:
                values["reused_from"] = _match(c, snap.others.get(ref))
                if values["reused_from"] == REUSED_ELSEWHERE:
                    elsewhere += 1
                    values["reason"] = _provenance(run["reason"], ref, snap.others.get(ref), source)
            ids[run["id"]] = c.execute(st.runs.insert().values(**values)).inserted_primary_key[0]
        for old, ref in inside:
            c.execute(st.runs.update().where(st.runs.c.id == ids[old]).values(reused_from=ids[ref]))
    return len(new_archs), elsewhere


def _match(c, original: dict | None) -> int:
    """The target's run of the same study, trial and architecture, else REUSED_ELSEWHERE."""
    if original is None:
        return REUSED_ELSEWHERE
    found = c.execute(
        sa.select(st.runs.c.id)
        .where(
            st.runs.c.study == original["study"],
            st.runs.c.trial == original["trial"],
            st.runs.c.arch_key == original["arch_key"],
        )
        .order_by(st.runs.c.id)
    ).first()
    return found[0] if found else REUSED_ELSEWHERE


def _provenance(reason: str, ref: int, original: dict | None, source: str) -> str:
    where = (
        f"run {ref} ({original['study']} trial {original['trial']}) in {source}"
        if original
        else f"run {ref}, no longer in {source}"
    )
    note = f"reused from {where}; not copied here"
    return f"{reason}; {note}" if reason else note


def _drop(storage, name: str) -> str:
    """Delete the Optuna study this copy created; the problem, if that fails too."""
    import optuna

    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass
    except Exception as e:  # noqa: BLE001 - reported with the error that made the copy stop
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return ""
