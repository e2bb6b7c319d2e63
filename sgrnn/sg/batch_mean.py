"""The batch-mean control, ``sg=batch-mean``: M is trained exactly as with ``sg=on``, but every
sequence of the batch is given the batch mean of M's predictions. What is left is the part of the
synthetic gradient common to all sequences (a drift of the state, whatever it is for); what is
taken away is everything that depends on the sequence. If the batch mean does as well as DNI, M
acts as a state-independent bias, not as a gradient estimate. Its cost: the second backward pass
that builds M's target from its own prediction (as the placebo)."""

from __future__ import annotations

import torch

from sgrnn.sg.base import register
from sgrnn.sg.boundary import BoundarySG


@register("batch-mean")
class BatchMean(BoundarySG):
    def give(self, g_hat: torch.Tensor, m_in: torch.Tensor, position=None) -> torch.Tensor:
        return g_hat.mean(dim=0, keepdim=True).expand_as(g_hat)
