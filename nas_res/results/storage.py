"""Storage URLs (the default, resolved, shown without a password) and SQLite's special cases.

A storage is any SQLAlchemy database URL; resnas's tables and Optuna's live side by side in it. SQLite
has special cases, each decided here once: in memory (gone when the command ends), a file that is not
there yet (opening it would create it), and a file's journal settings.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import ResnasError

DEFAULT_STORAGE = "sqlite:///studies/resnas.db"


def safe_url(url: str) -> str:
    """The storage URL with any password masked, for messages and tables."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable storage URL>"


def parse_storage_url(url: str, field: str = "--storage") -> URL:
    """The URL parsed; anything that is not one is an error naming the option (`field`) it came from."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        raise ResnasError(
            f"{safe_url(url)} is not a storage URL; use e.g. sqlite:///studies/resnas.db or postgresql://user@host/db",
            field=field,
        ) from None


def resolve_storage(url: str | None, create: bool = True, field: str = "--storage") -> str:
    """The default is one SQLite file under studies/ (its folder is created if `create`); any SQLAlchemy URL
    otherwise."""
    url = url or DEFAULT_STORAGE
    parsed = parse_storage_url(url, field)
    if parsed.drivername in ("mysql", "mariadb"):  # PyMySQL (pure Python, a dependency) over mysqlclient
        url = parsed.set(drivername=f"{parsed.drivername}+pymysql").render_as_string(hide_password=False)
    if create and sqlite_file(parsed):
        folder = Path(str(parsed.database)).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResnasError(
                f"cannot create the folder {folder} for {safe_url(url)}: {e.strerror}", field=field
            ) from None
    return url


def sqlite_in_memory(url: URL) -> bool:
    """A SQLite database in memory: it ends with the connection that made it."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def check_lasting(url: str | None, field: str = "--storage") -> None:
    """Refuse a storage that ends with the command (SQLite in memory): what is written there is lost."""
    if url is not None and sqlite_in_memory(parse_storage_url(url, field)):
        raise ResnasError(
            f"{url or repr(url)} is a SQLite database in memory: it ends with this command, and the results "
            "with it; use a file, e.g. sqlite:///studies/resnas.db",
            field=field,
        )


def sqlite_file(url: URL) -> bool:
    """A SQLite database in a file."""
    return url.get_backend_name() == "sqlite" and not sqlite_in_memory(url)


def missing_sqlite_file(url: URL) -> bool:
    """A SQLite file URL whose file is not there (opening it would create an empty one)."""
    return sqlite_file(url) and not Path(str(url.database)).expanduser().exists()


def tune_sqlite(engine: sa.engine.Engine) -> None:
    """WAL journal and `synchronous=NORMAL` for a SQLite engine: a commit no longer waits for the disk
    (a crash can lose the last commits, never corrupt the file), which keeps the coordinator's per-trial
    bookkeeping to a few milliseconds. Other databases are left alone."""
    if not sqlite_file(engine.url):
        return

    def pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sa.event.listen(engine, "connect", pragmas)
    engine.dispose()  # pooled connections made before the listener reconnect with it
