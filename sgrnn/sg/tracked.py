"""The tracked-mean variant, ``sg=tracked``: M is trained exactly as with ``sg=on``; the core is
given M's sequence-specific part (its prediction minus the batch mean, what ``sg=centred`` gives)
plus, for the part common to the batch, a running mean of M's *targets* at that boundary of the
episode instead of M's own batch mean:

    given_b = g_hat_b - mean_b' g_hat_b' + mu_p,
    mu_p <- decay * mu_p + (1 - decay) * mean_b target_b(p)   (once an episode, per boundary p)

Why (docs/study/plateau/README.md): at the end of the 20-minute Copy runs, the batch mean of M's
predictions is as large as the true future gradient's batch mean and points elsewhere (cosine ~0),
even at the episode's last boundaries, where the batch mean of M's targets has a cosine of 1.00
with the true one. The part common to the batch is one vector per boundary of the episode: a
running mean of the targets estimates it directly, where M, fitted online by Adam through its
weights, does not.

p is the boundary's index in the episode (1 after its first segment); on Copy and Repeat Copy
every sequence of a batch has the same length, so p is the same step for all of them. When the
curriculum changes the episode's length, the means start again from the new length's first
episode (which is itself given the old length's means: its length is known at its end). A boundary
with no mean yet is given ``sg=on``'s prediction. The means, the episode's position and the
episode's partial means are state between updates, so they are in the checkpoint. Its cost: the
second backward pass that builds M's target from its own prediction (as the placebo).
"""

from __future__ import annotations

from typing import Optional

import torch

from sgrnn.sg.base import Boundary, register
from sgrnn.sg.centred import Centred


@register("tracked")
class Tracked(Centred):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        self.decay = float(cfg.mean_decay)
        self.means: dict[int, torch.Tensor] = {}  # p -> running mean of M's targets' batch mean there
        self.episode: dict[int, torch.Tensor] = {}  # this episode's targets' batch means so far
        self.index = 0  # the current segment's index in its episode (0: the first)

    def predict(self, s_start, s_end, top=None, links=(), last=False, step=0, seg=None) -> Boundary:
        if seg is not None:
            self.index = 0 if seg.first else self.index + 1
        return super().predict(s_start, s_end, top, links, last, step, seg)

    def give(self, g_hat: torch.Tensor, m_in: torch.Tensor, position: Optional[int] = None) -> torch.Tensor:
        mean = self.means.get(self.index + 1 if position is None else position)
        return super().give(g_hat, m_in) + (g_hat.mean(dim=0, keepdim=True) if mean is None else mean.to(g_hat.dtype))

    def learn(self, b: Boundary) -> Optional[dict]:
        pairs = self.target.targets(b)
        first = self.index - self.target.waiting() - len(pairs) + 1  # the first pair's boundary
        for j, (_, target, _) in enumerate(pairs):
            self.episode[first + j] = target.mean(dim=0, keepdim=True).detach()
        if b.last:
            self.fold()
        return self.regress(pairs)

    def fold(self) -> None:
        """At an episode's end: its targets' means into the running means (a new length starts them
        again; every boundary of the last episode has a mean, so the last one is its length)."""
        if self.index != max(self.means, default=0):
            self.means = {}
        for p, m in self.episode.items():
            old = self.means.get(p)
            self.means[p] = m if old is None else self.decay * old + (1 - self.decay) * m
        self.episode = {}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "tracked": {"means": {p: m.clone() for p, m in self.means.items()},
                                                    "episode": {p: m.clone() for p, m in self.episode.items()},
                                                    "index": self.index}}

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        t, device = state.get("tracked", {}), self.ctx.device
        self.means = {int(p): m.to(device) for p, m in t.get("means", {}).items()}
        self.episode = {int(p): m.to(device) for p, m in t.get("episode", {}).items()}
        self.index = int(t.get("index", 0))
