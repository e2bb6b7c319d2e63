"""M's regression targets (``sg.target``): where the gradient M learns to predict comes from.

- ``bootstrap`` (the paper's): the gradient that reached the segment's start state s_k in the
  core's own backward pass, d(loss of segment k+1)/ds_k + gamma J^T g_hat_(k+1), known at once.
- ``lambda`` (the paper's supplementary extension): over a window of K segments,

      target_k = d(loss of segment k+1)/ds_k
                 + gamma J_(k+1)^T [ (1 - lambda) g_hat_(k+1) + lambda target_(k+1) ],

  bootstrapping from g_hat at the window's end, and exact (0 beyond) at an episode's end. lambda = 0
  is the bootstrapped target; lambda = 1 over K segments is "exact through K segments, then
  bootstrap"; lambda = 1 with the window reaching the episode's end is the exact future gradient.
  The target of s_k is known once segment k+K has run: K - 1 earlier segments are run again
  (forward and a backward to their start state only, with the current parameters), and M
  regresses onto it K segments late. At an episode's end every pending target completes.

gamma is ``sg.scale`` when ``sg.scale_in_target`` (a discounted gradient), else 1. The core's own
update is the same under every target: its segment loss plus g_hat at the segment's end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from sgrnn.sg.base import Boundary


@dataclass
class Pending:
    """A past segment whose start state awaits its target."""

    s_start: torch.Tensor  # detached
    x: torch.Tensor
    y: torch.Tensor
    mask: Optional[torch.Tensor]
    g_end: Optional[torch.Tensor]  # g_hat at its end (None: the episode ended there)
    m_start: Optional[torch.Tensor] = None  # M's input at s_start if more than the state (sg.history)

    def m_input(self, cols: slice) -> torch.Tensor:
        return self.s_start[:, cols] if self.m_start is None else self.m_start


def vjp_segment(core, loss_fn: Callable, p: Pending, v: Optional[torch.Tensor], cols: slice) -> torch.Tensor:
    """a(v) = B * d/ds_start [segment loss + <v, s_end[:, cols]> / B], the per-sequence gradient at
    the segment's start state, with the core's current parameters (its weights get no gradient)."""
    s = p.s_start.detach().requires_grad_()
    logits, s_end = core(p.x, s)
    total = loss_fn(logits, p.y, p.mask)
    if v is not None:
        total = total + (v * s_end[:, cols]).sum() / s.shape[0]
    (g,) = torch.autograd.grad(total, s)
    return g * s.shape[0]


def lambda_sweep(core, loss_fn, window: list[Pending], last_target: torch.Tensor, lam: float, gamma: float,
                 cols: slice) -> list[torch.Tensor]:
    """Targets (M's columns, per sequence) of the start states of ``window[0..n-1]`` given the
    target of the start state of the segment after them, ``last_target``: the down-sweep
    u_i = a_i(gamma [(1 - lam) g_end_i + lam u_(i+1)]). Returns [u_0, ..., u_(n-1)]."""
    out, u = [], last_target
    for p in reversed(window):
        v = None if p.g_end is None else gamma * ((1 - lam) * p.g_end + lam * u)
        u = vjp_segment(core, loss_fn, p, v, cols)[:, cols]
        out.append(u)
    return out[::-1]


def episode_targets(core, loss_fn, segments: list[Pending], lam: float, gamma: float, K: int,
                    cols: slice) -> list[torch.Tensor]:
    """The target of every boundary of a whole episode (``segments``: all but its first, in
    order; the last one's g_end None), each over its own window of K segments: what the
    trainer's targets come to when the parameters do not change in between (for instruments
    and tests; K segment passes per boundary)."""
    out = []
    for i in range(len(segments)):
        window = segments[i : i + K]
        inner = window[-1]
        v = None if inner.g_end is None else gamma * inner.g_end
        u = vjp_segment(core, loss_fn, inner, v, cols)[:, cols]
        out.append(lambda_sweep(core, loss_fn, window[:-1], u, lam, gamma, cols)[0] if len(window) > 1 else u)
    return out


class Bootstrap:
    """The target is known in the same update: it is in the start state's .grad."""

    def __init__(self, cfg, ctx, cols: slice, gamma: float):
        self.cols = cols

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def waiting(self) -> int:
        """Boundaries of this episode whose target is not known yet (after ``targets``)."""
        return 0

    def targets(self, b: Boundary) -> list[tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]:
        """(state, target, cached M(state) or None) to regress M on in this update: consecutive
        boundaries of the episode, the last of them ``waiting()`` boundaries before this segment's start."""
        if b.s_start.grad is None:
            return []
        s = b.s_start
        m_in = s.detach()[:, self.cols] if b.m_start is None else b.m_start
        return [(m_in, s.grad[:, self.cols].detach() * s.shape[0], b.pred_start)]


class LambdaTargets:
    """lambda-weighted targets over a window of ``sg.window`` segments (module docstring)."""

    def __init__(self, cfg, ctx, cols: slice, gamma: float):
        self.core, self.loss, self.cols, self.gamma, self.ctx_device = ctx.core, ctx.loss, cols, gamma, ctx.device
        self.lam, self.K = float(cfg.lambda_), int(cfg.window)
        self.pending: list[Pending] = []  # this episode's segments whose start state awaits its target

    def state_dict(self) -> dict:
        """The pending segments: a resumed run completes the targets that were waiting at its
        checkpoint, exactly as the uninterrupted run does."""
        # (cloned: a segment is a view into the task's data, and saving a view saves all of it)
        return {"pending": [{k: None if (v := getattr(p, k)) is None else v.clone() for k in Pending.__dataclass_fields__}
                            for p in self.pending]}

    def load_state_dict(self, state: dict) -> None:
        device = self.ctx_device
        self.pending = [Pending(**{k: None if v is None else v.to(device) for k, v in p.items()})
                        for p in state.get("pending", [])]

    def waiting(self) -> int:
        return len(self.pending)

    def targets(self, b: Boundary):
        if b.s_start.grad is None:  # an episode's first segment: its start state is no boundary
            return []
        # The newest segment's bootstrapped target, from the core's own pass, ends every sweep.
        u_here = b.s_start.grad[:, self.cols].detach() * b.s_start.shape[0]
        self.pending.append(Pending(b.s_start.detach(), b.x, b.y, b.mask, None if b.last else b.g_hat, b.m_start))
        if b.last:  # nothing flows past the episode's end: every pending target completes now
            done, self.pending = self.pending, []
            us = lambda_sweep(self.core, self.loss, done[:-1], u_here, self.lam, self.gamma, self.cols) + [u_here]
            return [(p.m_input(self.cols), u, None) for p, u in zip(done, us)]
        if len(self.pending) < self.K:
            return []
        # The oldest pending start state's window (K segments, the newest included) is complete.
        us = lambda_sweep(self.core, self.loss, self.pending[:-1], u_here, self.lam, self.gamma, self.cols)
        oldest = self.pending.pop(0)
        return [(oldest.m_input(self.cols), us[0] if us else u_here, b.pred_start if len(us) == 0 else None)]
