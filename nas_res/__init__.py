"""resnas: design-space exploration and architecture search for residual networks.

Public API: the model core (`Arch`, `build`, `cost`, `load_space`, `zoo`, `load_data`, `Recipe`, `train`,
`evaluate`) and searches with their results (`run_search`, `train_archs`, `join_study`, `studies`,
`leaderboard`, `vs_reference`, `compare_studies`, `export_study`; see `nas_res.api`), the papers' experiments
(`run_experiment`, `experiment_report`), gradient flow (`gradient_flow`) and `Residual` (any layer made
residual). Others may depend on these names.

Each is imported when first used (see `nas_res.lazy`): `import nas_res` alone, or a light module such as
`nas_res.yamlfile`, does not import torch.
"""

from typing import TYPE_CHECKING

from .errors import ResnasError
from .lazy import export_lazily
from .version import __version__

_API = (
    "compare_studies",
    "export_study",
    "fidelity",
    "final_ranking",
    "finalize_study",
    "join_study",
    "leaderboard",
    "plan_search",
    "run_search",
    "studies",
    "train_archs",
    "vs_reference",
)
export_lazily(
    __name__,
    {
        "zoo": "",
        **dict.fromkeys(_API, ".api"),
        **dict.fromkeys(("Arch", "Stage", "load_arch"), ".arch"),
        **dict.fromkeys(("Budget", "Cost", "cost", "fvcore_cost"), ".cost"),
        **dict.fromkeys(("Data", "load_data"), ".data"),
        **dict.fromkeys(("experiment_report", "run_experiment"), ".experiments"),
        **dict.fromkeys(("GradientFlow", "gradient_flow"), ".gradients"),
        "build": ".model",
        **dict.fromkeys(("Recipe", "load_recipe"), ".recipe"),
        "Residual": ".residual",
        **dict.fromkeys(("DesignSpace", "load_space"), ".space"),
        **dict.fromkeys(("Pruned", "Result", "evaluate", "train"), ".train"),
    },
)

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from . import zoo
    from .api import (
        compare_studies,
        export_study,
        fidelity,
        final_ranking,
        finalize_study,
        join_study,
        leaderboard,
        plan_search,
        run_search,
        studies,
        train_archs,
        vs_reference,
    )
    from .arch import Arch, Stage, load_arch
    from .cost import Budget, Cost, cost, fvcore_cost
    from .data import Data, load_data
    from .experiments import experiment_report, run_experiment
    from .gradients import GradientFlow, gradient_flow
    from .model import build
    from .recipe import Recipe, load_recipe
    from .residual import Residual
    from .space import DesignSpace, load_space
    from .train import Pruned, Result, evaluate, train

__all__ = [
    "Arch",
    "Budget",
    "Cost",
    "Data",
    "DesignSpace",
    "GradientFlow",
    "Pruned",
    "Recipe",
    "Residual",
    "ResnasError",
    "Result",
    "Stage",
    "__version__",
    "build",
    "compare_studies",
    "cost",
    "evaluate",
    "experiment_report",
    "export_study",
    "fidelity",
    "final_ranking",
    "finalize_study",
    "fvcore_cost",
    "gradient_flow",
    "join_study",
    "leaderboard",
    "load_arch",
    "load_data",
    "load_recipe",
    "load_space",
    "plan_search",
    "run_experiment",
    "run_search",
    "studies",
    "train",
    "train_archs",
    "vs_reference",
    "zoo",
]
