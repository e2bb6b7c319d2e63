"""The frozen-random-M control, ``sg=frozen``: M is trained exactly as with ``sg=on``, but the core
is given R(m), a fixed random linear map of M's input m (the boundary state, and the input window
with ``sg.history``), each sequence's vector rescaled to the norm of M's prediction for it. So
the core gets a signal of the same size as DNI's that depends on the state as consistently as
M's does (the same state, the same vector), but carries no knowledge of the loss. If it does as
well as DNI, M acts as a state-dependent regulariser, not as a gradient estimate. R's entries are
drawn once, N(0, 1), from the run's seed, and kept in the checkpoint."""

from __future__ import annotations

import torch

from sgrnn.sg.base import register
from sgrnn.sg.boundary import BoundarySG


@register("frozen")
class Frozen(BoundarySG):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        width = self.size + (self.history.width if self.history else 0)  # M's input
        gen = torch.Generator().manual_seed(int(torch.initial_seed()) + 104_729)
        self.R = torch.randn(width, self.size, generator=gen).to(ctx.device)

    def give(self, g_hat: torch.Tensor, m_in: torch.Tensor, position=None) -> torch.Tensor:
        r = m_in @ self.R.to(m_in.dtype)
        return r * (g_hat.norm(dim=1, keepdim=True) / r.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def state_dict(self) -> dict:
        return {**super().state_dict(), "frozen": self.R}

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        self.R = state["frozen"].to(self.ctx.device)
