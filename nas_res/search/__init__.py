"""The search: a study's configuration and plan, the Optuna adapter, the worker pool, liveness across
hosts, and the coordinator loop that drives them (see each module's first line)."""

from .config import SearchConfig
from .coordinator import GRACE, HEARTBEAT, Coordinator, Given
from .plan import plan, read_study_file
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
