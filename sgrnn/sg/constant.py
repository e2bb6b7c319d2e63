"""The learned-constant control, ``sg=constant``: DNI with an M that reads nothing. M is one
learned vector b, the same for every sequence and boundary; the core is given g_hat = b, and b
regresses onto the same targets as ``sg=on``'s M (built with b in place of M's prediction).

Why: on Penn Treebank DNI's benefit is in the part of M's prediction common to the batch
(``sg=batch-mean`` does better than ``sg=on``, docs/study/open-questions.md). The batch mean
still moves with the batch's states; a constant does not. If b does as well as the batch mean,
the state plays no part in what helps there: the synthetic gradient acts as a learned bias on the
boundary state. Its cost is M's: one vector, no product with the state.

b's regression in closed form (as the linear M's): with err = b - target over the batch,
d(SG loss)/db = loss_weight * mean err, stepped by Adam in M's parameter group.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from sgrnn.sg.base import register
from sgrnn.sg.boundary import BoundarySG


class ConstantM(nn.Module):
    """g_hat = b for any input; b starts at 0, so at step 0 the run is truncated BPTT."""

    def __init__(self, size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.bias.to(s.dtype).expand(s.shape[0], -1)

    @torch.no_grad()
    def predict(self, s_end: torch.Tensor, s_start: Optional[torch.Tensor] = None):
        return self(s_end).clone(), None if s_start is None else self(s_start).clone()

    def regress(self, s: torch.Tensor, target: torch.Tensor, weight: float, pred: Optional[torch.Tensor] = None):
        """Accumulate the SG loss's gradient into b's .grad; returns (loss, prediction), detached."""
        with torch.no_grad():
            pred = self(s) if pred is None else pred
            err = pred - target
            loss = 0.5 * weight * err.pow(2).sum(dim=1).mean()
            g = (err.sum(dim=0) * (weight / s.shape[0])).to(self.bias.dtype)
            self.bias.grad = g if self.bias.grad is None else self.bias.grad + g
        return loss, pred


@register("constant")
class Constant(BoundarySG):
    def make_model(self, cfg, ctx, extra: int) -> nn.Module:
        return ConstantM(self.size)
