"""A study copied from one storage to another (SQLite, PostgreSQL, MySQL), Optuna's side and resnas's together.

A study is two things in one database: an Optuna study (what the samplers learn from) and resnas's rows
(the study's pinned config, its runs, their architectures). Copying only one of them leaves a study
that cannot be resumed or reported, so both are copied or neither is: Optuna's side goes first (with
`optuna.copy_study`), resnas's rows follow in one transaction (`Store.add_study_copy`), and if anything
fails after the Optuna copy it is deleted again. The source is only read.

Runs keep their trial numbers (Optuna's copy preserves them, and this is checked) and get new ids in
the target. A run that reused another run's result points to it by id (`reused_from`): a pointer into
the copied study follows the copy, one into another study is re-aimed at the same (study, trial,
architecture) when the target holds it, and is otherwise set to REUSED_ELSEWHERE (0), which means
"reused from a run in another storage" (the run's `reason` then names that run and storage). 0 is not
NULL, so reports still count the run as reused and `Store.find_trained` does not offer it as an
original training.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..errors import ResnasError
from ..training.status import RunStatus
from .record import StudyRows
from .schema import check_study_name
from .storage import check_lasting, missing_sqlite_file, parse_storage_url, resolve_storage, safe_url, sqlite_in_memory
from .store import Store

OPTUNA_TABLES = ("studies", "trials", "version_info", "alembic_version")  # all there: opening writes nothing


@dataclass(frozen=True)
class Snapshot:
    """What is read from the source before anything is written to the target."""

    trial_numbers: list[int]
    running: int  # trials still running, by Optuna's state or by resnas's run
    rows: StudyRows


def copy_study(name: str, source_url: str, target_url: str, new_name: str | None = None) -> dict:
    """Copy study `name` from `source_url` to `target_url` (as `new_name`); returns what was copied."""
    new_name = new_name or name
    check_study_name(new_name, field="--as")
    source = _resolve(source_url, "--from", must_exist=True)
    check_lasting(target_url, "--to")
    target_parsed = parse_storage_url(target_url, "--to")
    _quiet_optuna()
    snap = _read_source(source, name)
    if snap.running:
        raise ResnasError(
            f"{snap.running} trial{'s' if snap.running > 1 else ''} of {name!r} still running: copy "
            "it when its workers have stopped",
            field="study",
        )
    target = _resolve(target_url, "--to")
    if not missing_sqlite_file(target_parsed):  # a SQLite file not there yet holds no study; do not create it to ask
        _refuse_existing(target, new_name)
    return _copy(name, new_name, source, target, snap)


# ---- URLs and connections ------------------------------------------------------------------------


def _resolve(url: str, option: str, must_exist: bool = False) -> str:
    """The URL as the rest of resnas opens it (same driver choice); a source SQLite file must exist,
    since opening a missing one would create it."""
    parsed = parse_storage_url(url, option)
    if must_exist and (sqlite_in_memory(parsed) or missing_sqlite_file(parsed)):
        raise ResnasError(f"no SQLite file at {safe_url(url)}", field=option)
    return resolve_storage(url, field=option)


@contextmanager
def _storage_errors(url: str, option: str) -> Iterator[None]:
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
        raise ResnasError(f"cannot use storage {safe_url(url)}: {line}", field=option) from None
    except ImportError as e:
        raise ResnasError(
            f"storage {safe_url(url)} needs a Python driver that is not installed ({e.name or e})", field=option
        ) from None
    except RuntimeError as e:  # Optuna's schema check: an older or newer Optuna wrote it
        raise ResnasError(f"cannot use storage {safe_url(url)}: {str(e).splitlines()[0][:300]}", field=option) from None


def _rdb(url: str, *, create: bool):
    """Optuna's storage object; on the source its tables are never created (it is only read)."""
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, skip_table_creation=not create)


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _optuna_names(url: str, option: str) -> set[str]:
    """Optuna's study names there (its tables missing: none), read without writing."""
    engine = None
    try:
        with _storage_errors(url, option):
            engine = sa.create_engine(url, pool_pre_ping=True)
            if not set(OPTUNA_TABLES) <= set(sa.inspect(engine).get_table_names()):
                return set()
            storage = _rdb(url, create=False)
            try:
                return {s.study_name for s in storage.get_all_studies()}
            finally:
                storage.engine.dispose()
    finally:
        if engine is not None:
            engine.dispose()


def _resnas_names(url: str, option: str) -> set[str]:
    """resnas's study names there (its tables missing: none), read without writing."""
    store = Store(url, must_exist=False, field=option)
    try:
        return set(store.study_names())
    finally:
        store.dispose()


# ---- the source ----------------------------------------------------------------------------------


def _read_source(url: str, name: str) -> Snapshot:
    import optuna

    in_optuna = _optuna_names(url, "--from")
    store = Store(url, field="--from")  # a storage a newer resnas wrote is refused here
    storage = None
    try:
        in_resnas = set(store.study_names())
        if name not in in_optuna or name not in in_resnas:
            raise ResnasError(_no_such_study(name, safe_url(url), in_optuna, in_resnas), field="study")
        with _storage_errors(url, "--from"):
            rows = store.study_rows(name)
            storage = _rdb(url, create=False)
            trials = storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
    finally:
        store.dispose()
        if storage is not None:
            storage.engine.dispose()
    running = {t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING}
    running |= {r["trial"] for r in rows.runs if r["status"] == RunStatus.RUNNING}
    return Snapshot([t.number for t in trials], len(running), rows)


def _no_such_study(name: str, safe: str, in_optuna: set[str], in_resnas: set[str]) -> str:
    both = ", ".join(sorted(in_optuna & in_resnas)) or "none"
    if name in in_optuna:
        why = f"{name!r} in {safe} is an Optuna study without resnas's records (not made by resnas search)"
    elif name in in_resnas:
        why = f"study {name!r} in {safe} has resnas's records but no Optuna study"
    else:
        why = f"no study {name!r} in {safe}"
    return f"{why}; resnas studies there: {both}"


# ---- the target ----------------------------------------------------------------------------------


def _refuse_existing(url: str, new_name: str) -> None:
    if new_name in _optuna_names(url, "--to") or new_name in _resnas_names(url, "--to"):
        raise ResnasError(_taken(url, new_name), field="--to")


def _taken(url: str, new_name: str) -> str:
    return f"{safe_url(url)} already has a study {new_name!r}: pick another name for the copy with --as NEWNAME"


def _copy(name: str, new_name: str, source: str, target: str, snap: Snapshot) -> dict:
    import optuna

    store = Store(target, create=True, field="--to")
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
            raise ResnasError(_taken(target, new_name), field="--to") from None
        except ValueError as e:
            raise ResnasError(f"Optuna could not copy {name!r}: {e}", field="study") from None
        with _storage_errors(target, "--to"):
            _check_numbers(snap, to_storage, new_name)
            added, elsewhere = store.add_study_copy(snap.rows, new_name, safe_url(source))
    except BaseException as e:
        if started:
            problem = _drop(to_storage, new_name)
            if problem and isinstance(e, ResnasError):
                raise ResnasError(
                    f"{e}; removing the half-copied Optuna study {new_name!r} from "
                    f"{safe_url(target)} also failed ({problem}): delete it with "
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
        "from": safe_url(source),
        "to": safe_url(target),
        "trials": len(snap.trial_numbers),
        "runs": len(snap.rows.runs),
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
