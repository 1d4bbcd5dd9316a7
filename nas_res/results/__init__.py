"""What searches leave behind and what is read from it: resnas's tables, reports, exports and study copies.

`Store` is the one reader and writer of resnas's tables (`schema`); `report` ranks and compares what
it reads, `export` writes the best architectures as files, `transfer` copies a study between
storages, `plots` draws studies; `paired` compares runs scored on the same images (McNemar).
"""

from typing import TYPE_CHECKING

from ..lazy import export_lazily

export_lazily(
    __name__,
    {
        **dict.fromkeys(("evaluate_runs", "export"), ".export"),
        "write_onnx": ".onnx_file",
        **dict.fromkeys(("compare_runs", "run_correct"), ".paired"),
        **dict.fromkeys(("Run", "StudyRows"), ".record"),
        **dict.fromkeys(("check_top", "compare", "leaderboard", "pareto", "rank", "studies", "study_runs"), ".report"),
        **dict.fromkeys(("REUSED_ELSEWHERE", "SCHEMA_VERSION", "STUDY_NAME", "check_study_name"), ".schema"),
        **dict.fromkeys(
            (
                "DEFAULT_STORAGE",
                "missing_sqlite_file",
                "parse_storage_url",
                "resolve_storage",
                "safe_url",
                "sqlite_file",
                "sqlite_in_memory",
                "tune_sqlite",
            ),
            ".storage",
        ),
        "Store": ".store",
        "copy_study": ".transfer",
        **dict.fromkeys(("McNemar", "mcnemar", "per_image"), ".uncertainty"),
    },
)

if TYPE_CHECKING:  # what the names are, for type checkers and editors (see nas_res.lazy)
    from .export import evaluate_runs, export
    from .onnx_file import write_onnx
    from .paired import compare_runs, run_correct
    from .record import Run, StudyRows
    from .report import check_top, compare, leaderboard, pareto, rank, studies, study_runs
    from .schema import REUSED_ELSEWHERE, SCHEMA_VERSION, STUDY_NAME, check_study_name
    from .storage import (
        DEFAULT_STORAGE,
        missing_sqlite_file,
        parse_storage_url,
        resolve_storage,
        safe_url,
        sqlite_file,
        sqlite_in_memory,
        tune_sqlite,
    )
    from .store import Store
    from .transfer import copy_study
    from .uncertainty import McNemar, mcnemar, per_image

__all__ = [
    "DEFAULT_STORAGE",
    "REUSED_ELSEWHERE",
    "SCHEMA_VERSION",
    "STUDY_NAME",
    "McNemar",
    "Run",
    "Store",
    "StudyRows",
    "check_study_name",
    "check_top",
    "compare",
    "compare_runs",
    "copy_study",
    "evaluate_runs",
    "export",
    "leaderboard",
    "mcnemar",
    "missing_sqlite_file",
    "pareto",
    "parse_storage_url",
    "per_image",
    "rank",
    "resolve_storage",
    "run_correct",
    "safe_url",
    "sqlite_file",
    "sqlite_in_memory",
    "studies",
    "study_runs",
    "tune_sqlite",
    "write_onnx",
]
