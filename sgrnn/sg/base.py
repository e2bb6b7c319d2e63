"""The interface every synthetic-gradient method implements, and truncated BPTT (``sg=off``).

The trainer calls a method four times per update (``sgrnn.train.update``), passing one explicit
value, the :class:`Boundary`, from each call to the next:

    s_start = method.start(state, first)                  # a leaf where a target is wanted
    logits, s_end, top, links = core(x, s_start, hidden=True, decouple=method.decouple)
    b = method.predict(s_start, s_end, top, links, last, step)   # what the core is given
    method.backward(loss, b)                              # the core's gradients (one pass)
    stats = method.learn(b)                               # M's regression, if any

A method is one file in this package that registers its class under its ``sg`` name
(``@register("name")``), plus one entry in ``sgrnn.config.SG_OPTIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

METHODS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: the method ``sg=name`` selects."""
    def put(cls: type) -> type:
        METHODS[name] = cls
        return cls
    return put


@dataclass
class Context:
    """What a method may need from the run, given once at construction."""

    state_size: int  # the core's flat (h, c) of all layers
    top_size: int  # the top layer's part of it (its last columns)
    device: torch.device
    core: Optional[nn.Module] = None  # for targets that re-run past segments (sg.target=lambda)
    loss: Optional[Callable] = None  # task.loss(logits, y, mask)
    oracle: Optional[Callable] = None  # s_end -> exact per-sequence future gradient (sg=oracle)
    input_size: int = 0  # the task's input width per step (sg.history)
    vocab_size: int = 0  # its vocabulary when inputs are symbol ids (0: float vectors)


@dataclass
class Boundary:
    """One update's values, from ``predict`` to ``backward`` to ``learn``."""

    s_start: torch.Tensor  # the segment's start state (a leaf requiring grad at a boundary)
    s_end: torch.Tensor  # its end state, in the graph
    last: bool = False  # the episode ends here: the future gradient is exactly 0
    inject: bool = True  # past the warm-up (sg.start_step): the core is given g_hat
    g_hat: Optional[torch.Tensor] = None  # the prediction at s_end (per sequence, unscaled, detached)
    given: Optional[torch.Tensor] = None  # what the core is given in its place (the placebo's permutation)
    pred_start: Optional[torch.Tensor] = None  # M(s_start), from predict's shared product (linear M)
    m_start: Optional[torch.Tensor] = None  # M's input at s_start when it is more than the state (sg.history)
    aux: Optional[torch.Tensor] = None  # an extra loss term for the core (sg=aux)
    links: list = field(default_factory=list)  # between-layers: (output of layer l, input leaf of l+1)
    x: Optional[torch.Tensor] = None  # the segment's data, for targets that re-run it
    y: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None


@register("off")
class Method:
    """Plain truncated BPTT: the future gradient at each boundary is taken as 0."""

    decouple = False  # between-layers: the core cuts the graph between its layers
    model = None  # M, for methods that have one (the instruments read it)

    def __init__(self, cfg, ctx: Context):
        self.cfg, self.ctx = cfg, ctx

    def parameters(self) -> list[nn.Parameter]:
        """Parameters of the method's own models (M), for their own optimiser group."""
        return []

    def state_dict(self) -> dict:
        return {"model": None, "depth": {}}

    def load_state_dict(self, state) -> None:
        pass

    def start(self, state: torch.Tensor, first: bool) -> torch.Tensor:
        """The segment's start state: detached from the previous segment."""
        return state.detach()

    def predict(self, s_start, s_end, top=None, links=(), last=False, step=0, seg=None) -> Boundary:
        """What the core is given at the segment's end (nothing here)."""
        return Boundary(s_start, s_end, last=last)

    def backward(self, loss: torch.Tensor, b: Boundary) -> None:
        """Accumulate the core's parameter gradients for this segment."""
        loss.backward()

    def learn(self, b: Boundary) -> Optional[dict]:
        """Train the method's own models; on-device scalars to log, or None."""
        return None
