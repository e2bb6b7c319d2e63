"""The placebo control, ``sg=placebo``: M is trained exactly as with ``sg=on`` (its target is
built from its own prediction), but the core is given M's prediction for ANOTHER sequence of
the batch, under a random fixed-point-free permutation. The core so receives gradients of the
right scale and statistics at the boundaries, without their content: if the placebo learns as
well as DNI, the synthetic gradient's content does not matter. Its cost: the second backward
pass that builds M's target from the unpermuted prediction."""

from __future__ import annotations

import torch

from sgrnn.sg.base import register
from sgrnn.sg.boundary import BoundarySG


def derangement(n: int, device=None) -> torch.Tensor:
    """A random permutation of range(n) with no fixed point (one n-cycle, Sattolo): index i maps
    to the sequence after i in a random order. n = 1 has none; it is returned as is."""
    order = torch.randperm(n, device=device)
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm


@register("placebo")
class Placebo(BoundarySG):
    def give(self, g_hat: torch.Tensor, m_in: torch.Tensor, position=None) -> torch.Tensor:
        return g_hat[derangement(g_hat.shape[0], g_hat.device)]
