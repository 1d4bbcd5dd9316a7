"""Bringing a database an older resnas wrote up to this schema, in place (SQLite, PostgreSQL, MySQL/MariaDB).

Every change since version 1 adds nullable columns (schema.ADDED_COLUMNS), so an upgrade is one
`ALTER TABLE ... ADD COLUMN` per missing column and the new version number: old rows keep everything
they had and read NULL in the new columns. Any number of processes may open the same old database at
once: a column another one has just added is not an error, and the version is raised only once
every column is there.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from .schema import ADDED_COLUMNS, SCHEMA_VERSION, runs, schema


def upgrade(engine: sa.Engine, found: int) -> list[str]:
    """Add the columns versions after `found` brought to resnas_runs and record SCHEMA_VERSION; returns
    the columns this call added (none where another process got there first)."""
    wanted = [name for version, names in sorted(ADDED_COLUMNS.items()) if version > found for name in names]
    added = []
    if sa.inspect(engine).has_table(runs.name):  # a schema table without runs: create_all makes it whole
        for name in wanted:
            if name in _columns(engine):
                continue
            try:
                with engine.begin() as c:
                    c.execute(sa.text(_add_column(engine, name)))
                added.append(name)
            except SQLAlchemyError:
                if name not in _columns(engine):  # not a race with another process: a real failure
                    raise
    with engine.begin() as c:
        c.execute(schema.update().where(schema.c.version < SCHEMA_VERSION).values(version=SCHEMA_VERSION))
    return added


def _columns(engine: sa.Engine) -> set[str]:
    """resnas_runs' columns as the database has them now (a fresh inspection: no cached answer)."""
    return {c["name"] for c in sa.inspect(engine).get_columns(runs.name)}


def _add_column(engine: sa.Engine, name: str) -> str:
    """`ALTER TABLE resnas_runs ADD COLUMN name TYPE` in the database's own dialect (quoting and type)."""
    dialect = engine.dialect
    quote = dialect.identifier_preparer
    column = runs.c[name]
    kind = column.type.compile(dialect=dialect)
    return f"ALTER TABLE {quote.format_table(runs)} ADD COLUMN {quote.format_column(column)} {kind}"
