"""resnas: design-space exploration and architecture search for residual networks.

Public API: the model core (`Arch`, `build`, `cost`, `load_space`, `zoo`, `load_data`, `Recipe`, `train`,
`evaluate`) and searches with their results (`run_search`, `train_archs`, `join_study`, `studies`,
`leaderboard`, `vs_reference`, `compare_studies`, `export_study`, `refine`; see `nas_res.api`), the papers' experiments
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
    "measure_latency",
    "plan_search",
    "refine",
    "run_search",
    "studies",
    "train_archs",
    "vs_reference",
)
export_lazily(
    __name__,
    {
        **dict.fromkeys(_API, ".api"),
        **dict.fromkeys(("Arch", "Stage", "load_arch"), ".arch.description"),
        "Budget": ".arch.budget",
        **dict.fromkeys(("Cost", "cost"), ".arch.cost"),
        "fvcore_cost": ".arch.referee",
        "build": ".arch.build",
        "Residual": ".arch.residual",
        "Data": ".data.splits",
        "load_data": ".data.dataset",
        **dict.fromkeys(("experiment_report", "run_experiment"), ".experiments"),
        **dict.fromkeys(("GradientFlow", "gradient_flow"), ".inspect.gradients"),
        **dict.fromkeys(("DesignSpace", "load_space"), ".space.design_space"),
        **dict.fromkeys(("Recipe", "load_recipe"), ".training.recipe"),
        **dict.fromkeys(("Pruned", "Result", "evaluate", "train"), ".training.trainer"),
    },
    modules={"zoo": ".arch.zoo"},
)

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from .api import (
        compare_studies,
        export_study,
        fidelity,
        final_ranking,
        finalize_study,
        join_study,
        leaderboard,
        measure_latency,
        plan_search,
        refine,
        run_search,
        studies,
        train_archs,
        vs_reference,
    )
    from .arch import zoo
    from .arch.budget import Budget
    from .arch.build import build
    from .arch.cost import Cost, cost
    from .arch.description import Arch, Stage, load_arch
    from .arch.referee import fvcore_cost
    from .arch.residual import Residual
    from .data.dataset import load_data
    from .data.splits import Data
    from .experiments import experiment_report, run_experiment
    from .inspect.gradients import GradientFlow, gradient_flow
    from .space.design_space import DesignSpace, load_space
    from .training.recipe import Recipe, load_recipe
    from .training.trainer import Pruned, Result, evaluate, train

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
    "measure_latency",
    "plan_search",
    "refine",
    "run_experiment",
    "run_search",
    "studies",
    "train",
    "train_archs",
    "vs_reference",
    "zoo",
]
