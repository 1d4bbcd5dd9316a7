"""resnas: design-space exploration and architecture search for residual networks.

Public API: `Arch`, `build`, `cost`, `load_space`, `zoo` (others may depend on these names).
"""

from . import zoo
from .arch import Arch, Stage, load_arch
from .cost import Budget, Cost, cost, fvcore_cost
from .errors import ResnasError
from .model import build
from .space import DesignSpace, load_space

__version__ = "0.1.0"
__all__ = ["Arch", "Stage", "Budget", "Cost", "DesignSpace", "ResnasError", "build", "cost", "fvcore_cost",
           "load_arch", "load_space", "zoo", "__version__"]
