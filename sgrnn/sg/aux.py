"""DNI + Aux, ``sg=aux``: as ``sg=on``, and the core also predicts, from its top-layer output
at a segment's first step, the synthetic gradient M(s_end) at that segment's end (T - 1 steps
later, the next one it will be given). Loss: ``sg.aux_weight`` * 0.5 * mean over sequences of
the squared error, target detached; it is part of the core's objective, so its gradient reaches
the core's weights (and, like any loss, M's bootstrapped target)."""

from __future__ import annotations

from typing import Optional

from sgrnn.sg.base import Boundary, register
from sgrnn.sg.boundary import BoundarySG


@register("aux")
class Aux(BoundarySG):
    def predict(self, s_start, s_end, top=None, links=(), last=False, step=0, seg=None) -> Boundary:
        b = super().predict(s_start, s_end, top, links, last, step, seg)
        if b.g_hat is not None:
            err = (self.ctx.core.aux(top[0]) - b.g_hat).pow(2).sum(dim=1)
            b.aux = 0.5 * self.cfg.aux_weight * err.mean()
        return b

    def learn(self, b: Boundary) -> Optional[dict]:
        stats = super().learn(b)
        return stats if b.aux is None else {**(stats or {}), "sg/aux_loss": b.aux.detach()}
