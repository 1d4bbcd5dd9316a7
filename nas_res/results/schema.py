"""resnas's tables, next to Optuna's in the same database: their layout, its version, and fixed values.

Optuna keeps what its samplers need; these tables keep what a person asks afterwards (which
architecture, trained how, on what, with which history) and let a later study reuse a result: an
architecture already trained with the same recipe on the same data split is not trained again.
Only `Store` (store.py) reads or writes them.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from ..errors import ResnasError

SCHEMA_VERSION = 2
# Columns added since version 1, by the version that added them: an older database gains them in place
# (migrate.py), its old rows NULL there. 2: per-image correctness (paired.py), so candidates scored on
# the same images are compared pairwise (McNemar) rather than as two independent proportions.
ADDED_COLUMNS = {2: ("val_correct", "test_correct")}
# A per-image record: 1 bit an image (numpy.packbits order), 750 bytes for 6,000 images. MEDIUMBLOB on
# MySQL (up to 134 million images; a plain BLOB would stop at 524,280); BLOB / BYTEA elsewhere.
BITMAP = sa.LargeBinary(length=2**24 - 1)
# A study's name (the key of resnas_studies and Optuna's study name); it names folders and files too:
# no separators, no "..", no spaces.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
# `reused_from` of a run whose original lives in another storage (a copied study's): not NULL, so the
# run still counts as reused and is never offered as an original training.
REUSED_ELSEWHERE = 0

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
    sa.Column("status", sa.String(32), nullable=False),  # a RunStatus's text
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
    sa.Column("reused_from", sa.Integer),  # the run whose result this one took; REUSED_ELSEWHERE: another storage's
    sa.Column("created", sa.Double, nullable=False),
    # which validation images the best epoch got right, in the split's fixed order (NULL: a VAE, or a
    # run stored before resnas kept them); the same for the test split where it was evaluated
    sa.Column("val_correct", BITMAP),
    sa.Column("test_correct", BITMAP),
)


def check_study_name(name: str, field: str) -> None:
    """A name a study may have, or the error that says which names are allowed (`field`: the option)."""
    if not STUDY_NAME.fullmatch(name):
        raise ResnasError(
            f"must be 1-100 letters, digits, '.', '_', '+' or '-', starting with a letter or digit; got {name!r}",
            field=field,
        )


# Measured latencies (nas_res.latency), one row per thing timed under one setting: a whole net (`item` its
# arch key) or one of its parts for the lookup table (`item` the part's key). The key is what makes two
# timings comparable: the device's own name (not cuda:0), batch, precision, threads, mode and torch
# version. A table of its own, added where missing (create_all), so no older database needs migrating.
latencies = sa.Table(
    "resnas_latency",
    meta,
    sa.Column("item", sa.String(32), primary_key=True),
    sa.Column("device", sa.String(255), primary_key=True),
    sa.Column("batch", sa.Integer, primary_key=True),
    sa.Column("precision", sa.String(16), primary_key=True),
    sa.Column("threads", sa.Integer, primary_key=True),
    sa.Column("mode", sa.String(16), primary_key=True),
    sa.Column("torch", sa.String(64), primary_key=True),
    sa.Column("what", sa.String(16), nullable=False),  # net, stem, unit, head, or call (the harness alone)
    sa.Column("label", sa.String(255), nullable=False),
    sa.Column("median_ms", sa.Double, nullable=False),
    sa.Column("low_ms", sa.Double, nullable=False),  # the median's 95% interval (order statistics)
    sa.Column("high_ms", sa.Double, nullable=False),
    sa.Column("repeats", sa.Integer, nullable=False),
    sa.Column("inner", sa.Integer, nullable=False),  # calls per timed repeat
    sa.Column("processes", sa.Integer, nullable=False),  # fresh processes it was timed in; the fastest's kept
    sa.Column("spread", sa.Double, nullable=False),  # slowest process's median / the fastest's
    sa.Column("measured", sa.Double, nullable=False),
)
