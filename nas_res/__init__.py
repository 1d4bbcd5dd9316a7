"""resnas: design-space exploration and architecture search for residual networks.

Public API: `Arch`, `build`, `cost`, `load_space`, `zoo`, `load_data`, `Recipe`, `train`, `evaluate`
(others may depend on these names).
"""

from . import zoo
from .arch import Arch, Stage, load_arch
from .cost import Budget, Cost, cost, fvcore_cost
from .data import Data, load_data
from .errors import ResnasError
from .model import build
from .recipe import Recipe, load_recipe
from .space import DesignSpace, load_space
from .train import Pruned, Result, evaluate, train

__version__ = "0.1.0"
__all__ = [
    "Arch",
    "Budget",
    "Cost",
    "Data",
    "DesignSpace",
    "Pruned",
    "Recipe",
    "ResnasError",
    "Result",
    "Stage",
    "__version__",
    "build",
    "cost",
    "evaluate",
    "fvcore_cost",
    "load_arch",
    "load_data",
    "load_recipe",
    "load_space",
    "train",
    "zoo",
]
