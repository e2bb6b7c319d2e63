"""Synthetic-gradient methods (DNI, Jaderberg et al. 2017), one module each, behind the small
interface of :mod:`sgrnn.sg.base` that the trainer calls once per update:

| ``sg=`` | module | class |
|---|---|---|
| off | base | ``Method``: plain truncated BPTT |
| on | boundary | ``BoundarySG``: M's prediction at each truncation boundary |
| aux | aux | ``Aux``: DNI + Aux |
| placebo | placebo | ``Placebo``: M trained as ``on``, the core given another sequence's prediction |
| batch-mean | batch_mean | ``BatchMean``: M trained as ``on``, every sequence given the batch's mean prediction |
| centred | centred | ``Centred``: M trained as ``on``, every sequence given its prediction minus the batch's mean |
| tracked | tracked | ``Tracked``: M trained as ``on``, the core given its prediction minus the batch's mean plus a running mean of M's targets at that boundary |
| frozen | frozen | ``Frozen``: M trained as ``on``, the core given a fixed random map of M's input at M's norm |
| constant | constant | ``Constant``: DNI with an M that reads nothing, one learned vector (a control) |
| oracle | oracle | ``Oracle``: the exact future gradient |
| on, ``sg.placement=between-layers`` | depth | ``Depth``: synthetic gradients between layers |

M's kinds (linear, MLP) are in :mod:`sgrnn.sg.models`, its targets (bootstrapped, lambda) in
:mod:`sgrnn.sg.targets`, the quality instruments in :mod:`sgrnn.sg.quality`. Adding a method is
one module here that registers its class (``@register("name")``) plus one entry in
``sgrnn.config.SG_OPTIONS``.
"""

from __future__ import annotations

import importlib
import pkgutil

from sgrnn.sg.base import METHODS, Boundary, Context, Method, register
from sgrnn.sg.depth import Depth
from sgrnn.sg.models import make_m
from sgrnn.sg.quality import future_gradients, sg_quality

for _module in pkgutil.iter_modules(__path__):  # every method module registers its class
    importlib.import_module(f"{__name__}.{_module.name}")


def make_method(cfg, ctx: Context) -> Method:
    """The method ``cfg`` (the ``sg`` config node) names; ``None`` is plain truncated BPTT."""
    if cfg is None:
        return Method(None, ctx)
    if cfg.placement == "between-layers":
        return Depth(cfg, ctx)
    return METHODS[cfg.name](cfg, ctx)


__all__ = ["Boundary", "Context", "Method", "METHODS", "make_method", "make_m", "register", "future_gradients",
           "sg_quality"]
