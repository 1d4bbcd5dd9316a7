"""The search: a study's configuration and plan, the Optuna adapter, the worker pool, liveness across
hosts, and the coordinator loop that drives them (see each module's first line)."""

from typing import TYPE_CHECKING

from ..lazy import export_lazily

export_lazily(
    __name__,
    {
        "SearchConfig": ".config",
        **dict.fromkeys(("Coordinator", "Given"), ".coordinator"),
        **dict.fromkeys(("GRACE", "HEARTBEAT"), ".settings"),
        **dict.fromkeys(("plan", "read_study_file"), ".plan"),
        "SearchState": ".state",
        "COUNTED": ".study",
    },
)

if TYPE_CHECKING:  # what the names are, for type checkers and editors (see nas_res.lazy)
    from .config import SearchConfig
    from .coordinator import Coordinator, Given
    from .plan import plan, read_study_file
    from .settings import GRACE, HEARTBEAT
    from .state import SearchState
    from .study import COUNTED

__all__ = [
    "COUNTED",
    "GRACE",
    "HEARTBEAT",
    "Coordinator",
    "Given",
    "SearchConfig",
    "SearchState",
    "plan",
    "read_study_file",
]
