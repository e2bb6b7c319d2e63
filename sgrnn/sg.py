"""Synthetic gradients at truncation boundaries (DNI, Jaderberg et al. 2017, section 3.1, fig. 2).

Truncated BPTT cuts the unrolled core into segments of T steps. At a segment's last step the
synthetic-gradient model M reads the state s_end ((h, c) of every layer) and predicts the
gradient of all future losses with respect to it, g_hat = M(s_end). The core's update is

    d/dtheta [ segment loss + scale * <g_hat, s_end> ]                      (``backward``)

and M is trained by L2 regression onto the bootstrapped target, which becomes known one segment
later: with the next segment's start state a leaf that requires grad, one backward pass of
(next segment's loss + scale * <g_hat_next_end, s_next_end>) leaves exactly that target in the
leaf's ``.grad`` (``bootstrapped_target``, ``learn``). The target is a constant for M.

Conventions (documented choices where the paper is silent):

- Per-sequence gradients. Losses are means over the batch, so the gradient of the batch loss
  with respect to row b of the state is (1/B) * (the gradient of sequence b's own loss). M
  predicts the per-sequence quantity, which does not depend on the batch size: the injected
  term is <g_hat, s_end> / B and the target is B * s_start.grad.
- ``scale`` multiplies the injected gradient. With ``scale_in_target`` (default) the target is
  the leaf's gradient as it is, i.e. built with the scaled prediction: M learns a gradient
  discounted by ``scale`` per boundary (like TD's gamma). Otherwise the target is built with the
  unscaled prediction, which costs a second backward pass through the segment.
- M starts at exactly zero (last layer's weights and bias), so at step 0 DNI equals plain
  truncated BPTT exactly; its input is detached, so its regression loss never reaches the core.
- SG loss: 0.5 * loss_weight * sum over state units of (M(s) - target)^2, mean over the batch.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class SyntheticGradientModel(nn.Module):
    """M: linear (hidden_size = 0, the default) or one hidden ReLU layer; output starts at 0."""

    def __init__(self, state_size: int, hidden_size: int = 0):
        super().__init__()
        if hidden_size:
            self.net = nn.Sequential(nn.Linear(state_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, state_size))
        else:
            self.net = nn.Sequential(nn.Linear(state_size, state_size))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)


class DNI:
    """The synthetic-gradient machinery of one run. ``DNI(None, ...)`` is plain truncated BPTT:
    no prediction, no target, one ordinary backward pass."""

    def __init__(self, cfg, state_size: int, device):
        self.enabled = cfg is not None and cfg.name != "off"
        self.model: Optional[SyntheticGradientModel] = None
        if self.enabled:
            self.model = SyntheticGradientModel(state_size, cfg.hidden_size).to(device)
            self.scale, self.scale_in_target, self.loss_weight = cfg.scale, cfg.scale_in_target, cfg.loss_weight

    def parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters()) if self.enabled else []

    def start(self, state: torch.Tensor, first: bool) -> torch.Tensor:
        """The segment's start state: a leaf requiring grad where a bootstrapped target is
        wanted (every truncation boundary), the plain detached state elsewhere."""
        s = state.detach()
        return s.requires_grad_() if self.enabled and not first else s

    @torch.no_grad()
    def predict(self, s_end: torch.Tensor, last: bool) -> Optional[torch.Tensor]:
        """g_hat = M(s_end), unscaled; None at an episode's end (the future gradient is 0)."""
        return None if not self.enabled or last else self.model(s_end)

    def backward(self, loss: torch.Tensor, s_start: torch.Tensor, s_end: torch.Tensor, g_hat: Optional[torch.Tensor]):
        """The core's one backward pass: d[loss + scale * <g_hat, s_end> / B]. Parameter grads
        accumulate into .grad; s_start.grad (if a leaf) receives the bootstrapped target / B."""
        if g_hat is None:
            loss.backward()
            return
        injected = (g_hat * s_end).sum() / s_end.shape[0]
        if self.scale_in_target or not s_start.requires_grad:
            (loss + self.scale * injected).backward()
            return
        # Target built with the unscaled prediction: a second pass for <g_hat, s_end> alone.
        (loss + self.scale * injected).backward(retain_graph=True)
        (extra,) = torch.autograd.grad(injected, s_start)
        s_start.grad += (1.0 - self.scale) * extra

    @staticmethod
    def bootstrapped_target(s_start: torch.Tensor) -> torch.Tensor:
        """The per-sequence gradient that reached the segment's start state."""
        return s_start.grad.detach() * s_start.shape[0]

    def learn(self, s_start: torch.Tensor) -> Optional[dict]:
        """Regress M(s_start) onto the bootstrapped target (backward through M only).
        Returns on-device scalars for logging, or None where there is no boundary."""
        if not self.enabled or s_start.grad is None:
            return None
        target = self.bootstrapped_target(s_start)
        pred = self.model(s_start.detach())
        sq = (pred - target).pow(2).sum(dim=1)
        sg_loss = 0.5 * self.loss_weight * sq.mean()
        sg_loss.backward()
        return {
            "sg/loss": sg_loss.detach(),
            "sg/pred_norm": pred.detach().norm(dim=1).mean(),
            "sg/target_norm": target.norm(dim=1).mean(),
        }
