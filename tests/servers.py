"""Throw-away databases: a SQLite file in a test's folder, or one on the local PostgreSQL and MariaDB servers.

`sqlite_url` names a SQLite storage in a folder the test owns. `scratch_database` makes a server
database with a fresh name and drops it afterwards; without a reachable server (or driver) the test
is skipped and the reason names the server and the error. The servers' addresses can be changed with
RESNAS_TEST_POSTGRES and RESNAS_TEST_MYSQL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

SERVERS = {
    "postgresql": os.environ.get("RESNAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("RESNAS_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}


def sqlite_url(folder: Path, name: str = "db.sqlite") -> str:
    """The storage URL of SQLite file `name` in `folder` (a test's tmp_path): every test's own storage."""
    return f"sqlite:///{Path(folder) / name}"


@contextlib.contextmanager
def scratch_database(kind: str) -> Iterator[str]:
    server = SERVERS[kind]
    try:
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as e:  # no server, no driver, no permission: say which
        pytest.skip(f"no {kind} server reachable at {server} ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
    name = f"resnas_test_{uuid.uuid4().hex[:10]}"
    q = '"' if kind == "postgresql" else "`"
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {q}{name}{q}"))
    try:
        yield sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            if kind == "postgresql":
                c.execute(sa.text(f"ALTER DATABASE {q}{name}{q} ALLOW_CONNECTIONS true"))
                c.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {q}{name}{q}"))
        admin.dispose()


def admin_engine(kind: str) -> sa.engine.Engine:
    return sa.create_engine(SERVERS[kind], isolation_level="AUTOCOMMIT")
