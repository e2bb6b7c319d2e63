"""The centred variant, ``sg=centred``: M is trained exactly as with ``sg=on``, but every sequence
of the batch is given M's prediction minus the batch mean of the predictions at that boundary:
the sequence-specific part of DNI's synthetic gradient, without the part common to the batch.
``batch-mean`` gives the other part, so the two add up to ``on`` (tested). On Copy, at the end of
the 20-minute runs, M's batch-mean part is 1-3x the size of the true future gradient's and points
elsewhere (docs/study/plateau/README.md): this measures what DNI learns without it. Its cost: the
second backward pass that builds M's target from its own prediction (as the placebo).

``sg.common`` (0) gives back that share of the batch-mean part: g_hat - (1 - common) * mean, so
``sg.common=1`` is ``sg=on``'s update (tested) and the values between mix the two."""

from __future__ import annotations

import torch

from sgrnn.sg.base import register
from sgrnn.sg.boundary import BoundarySG


@register("centred")
class Centred(BoundarySG):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.common = float(cfg.get("common", 0.0))

    def give(self, g_hat: torch.Tensor, m_in: torch.Tensor, position=None) -> torch.Tensor:
        return g_hat - (1.0 - self.common) * g_hat.mean(dim=0, keepdim=True)
