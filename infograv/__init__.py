"""infograv: the information-gravity model of token selection.

Derive the model symbolically (`infograv.symbolic`), compile it to JAX (`infograv.to_jax`),
simulate it (`infograv.model`, `infograv.geometry`, `infograv.geodesic`), test it against a real
language model (`infograv.lm`), and make figures (`infograv.plot`).

Docstrings cite the package's own formalism page, `docs/model/formalism.md` (in the
documentation: *The model → Formalism*), as "formalism §N", with its section numbers.
"""

import importlib.metadata

from . import (
    geodesic as geodesic,
    geometry as geometry,
    lm as lm,
    model as model,
    plot as plot,
    symbolic as symbolic,
)
from ._compile import (
    SymbolicFunction as SymbolicFunction,
    clear_cache as clear_cache,
    to_jax as to_jax,
)
from ._special import besselk as besselk

__version__ = importlib.metadata.version("infograv")
