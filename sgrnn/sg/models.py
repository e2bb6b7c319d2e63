"""M, the synthetic-gradient model, in two kinds, each owning its fast path:

- :class:`LinearM` (``sg.hidden_size=0``, the default): g_hat = W s + b. Its prediction at s_end
  and its regression's M(s_start) share one matrix product (M does not change in between), and
  the regression's gradient is written in closed form (dW = err^T s / B, db = mean err), with no
  autograd graph around M; exactly autograd's (tested).
- :class:`MLPM` (``sg.hidden_size>0``): one hidden ReLU layer, trained with autograd.
- :class:`RidgeM` (``sg.fit=ridge``, linear): the same map, but its weights are not stepped by
  Adam: they are the ridge least-squares fit of its targets on its inputs, over every target so
  far with weight ``sg.ridge_decay`` per update (exponential forgetting, so that M follows the
  changing core), solved every ``sg.ridge_every`` updates:
  [W b] = (X^T D X + ridge * mean diag * I)^-1 X^T D Y with X = [s, 1], D the forgetting weights.
  Why: on Copy at the plateau (length 7-8, T=3) an Adam-stepped linear M's prediction has cosine
  0.0-0.04 with the true future gradient while a ridge fit of the same linear map on 6,000
  held-out sequences reaches 0.05-0.28 (docs/study/plateau): its output is mostly the noise of
  its own steps.

Both start with their last layer at exactly zero, so at step 0 DNI equals truncated BPTT.
With ``sg.input_norm=rms`` M reads each block of H units of the state (each layer's h and c)
divided by its root mean square over the block, per sequence (no learned parameters): h lies in
(-1, 1) while c grows with the length held, and this puts them on one scale. The linear kind
stays linear in its weights, so its closed-form regression holds (tested).
With ``sg.dtype=bfloat16`` the products run in bfloat16 (W cast once per product; the linear
kind without autocast), while weights, targets, the loss and Adam stay float32.
SG loss: 0.5 * loss_weight * sum over state units of (M(s) - target)^2, mean over the batch.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def rms_blocks(s: torch.Tensor, block: int, eps: float = 1e-6) -> torch.Tensor:
    """s [..., k * block] with each block of the last dimension divided by its root mean square
    (per row; between-layers M reads [B, T, H])."""
    b = s.unflatten(-1, (-1, block))
    return (b * torch.rsqrt(b.pow(2).mean(dim=-1, keepdim=True) + eps)).flatten(-2)


def normalised(s: torch.Tensor, block: int, size: int) -> torch.Tensor:
    """M's input: the state's ``size`` columns per block of ``block`` units divided by their RMS
    (``block`` 0: as is), then any further columns (``sg.history``'s inputs) as they are."""
    if not block:
        return s
    if s.shape[-1] == size:
        return rms_blocks(s, block)
    return torch.cat([rms_blocks(s[..., :size], block), s[..., size:]], dim=-1)


class LinearM(nn.Module):
    """``extra``: input columns past the state's ``size`` (``sg.history``); the output is ``size``."""

    def __init__(self, size: int, low: Optional[torch.dtype] = None, block: int = 0, extra: int = 0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(size + extra, size))
        nn.init.zeros_(self.net[0].weight)
        nn.init.zeros_(self.net[0].bias)
        self.low, self.block, self.size = low, block, size

    def inputs(self, s: torch.Tensor) -> torch.Tensor:
        return normalised(s, self.block, self.size)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        s = self.inputs(s)
        lin = self.net[0]
        if self.low is None:
            return lin(s)
        return F.linear(s.to(self.low), lin.weight.to(self.low), lin.bias.to(self.low)).float()

    @torch.no_grad()
    def predict(self, s_end: torch.Tensor, s_start: Optional[torch.Tensor] = None):
        """(M(s_end), M(s_start) or None), in one product when both are wanted."""
        if s_start is None:
            return self(s_end), None
        g_hat, pred_start = self(torch.cat([s_end, s_start])).chunk(2)
        return g_hat, pred_start

    def regress(self, s: torch.Tensor, target: torch.Tensor, weight: float, pred: Optional[torch.Tensor] = None):
        """Accumulate the gradient of the SG loss into .grad; returns (loss, prediction), detached."""
        with torch.no_grad():
            pred = self(s) if pred is None else pred
            err = pred - target
            loss = 0.5 * weight * err.pow(2).sum(dim=1).mean()
            d_out = err * (weight / s.shape[0])
            s = self.inputs(s)
            d_w = d_out.t() @ s if self.low is None else (d_out.to(self.low).t() @ s.to(self.low)).float()
            lin = self.net[0]
            for p, g in ((lin.weight, d_w), (lin.bias, d_out.sum(dim=0))):
                p.grad = g if p.grad is None else p.grad + g
        return loss, pred


class MLPM(nn.Module):
    def __init__(self, size: int, hidden: int, low: Optional[torch.dtype] = None, block: int = 0, extra: int = 0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(size + extra, hidden), nn.ReLU(), nn.Linear(hidden, size))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.low, self.block, self.size = low, block, size

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        s = normalised(s, self.block, self.size)
        if self.low is None:
            return self.net(s)
        with torch.autocast(s.device.type, dtype=self.low):
            return self.net(s).float()

    @torch.no_grad()
    def predict(self, s_end: torch.Tensor, s_start: Optional[torch.Tensor] = None):
        return self(s_end), None

    def regress(self, s: torch.Tensor, target: torch.Tensor, weight: float, pred: Optional[torch.Tensor] = None):
        pred = self(s)
        loss = 0.5 * weight * (pred - target).pow(2).sum(dim=1).mean()
        loss.backward()
        return loss.detach(), pred.detach()


class RidgeM(LinearM):
    """A linear M fitted in closed form (module docstring). Its running sums are buffers, so they
    are in the checkpoint; its weights get no gradient (Adam leaves them alone)."""

    def __init__(self, size: int, low: Optional[torch.dtype] = None, block: int = 0, decay: float = 0.995,
                 ridge: float = 0.1, every: int = 10, extra: int = 0):
        super().__init__(size, low, block, extra)
        self.decay, self.ridge, self.every = decay, ridge, every
        n = size + extra + 1
        self.register_buffer("xx", torch.zeros(n, n, dtype=torch.float64))  # sum of D [s 1]^T [s 1]
        self.register_buffer("xy", torch.zeros(n, size, dtype=torch.float64))  # sum of D [s 1]^T target
        self.register_buffer("fits", torch.zeros((), dtype=torch.long))  # regressions seen
        for p in self.parameters():
            p.requires_grad_(False)

    def regress(self, s: torch.Tensor, target: torch.Tensor, weight: float, pred: Optional[torch.Tensor] = None):
        with torch.no_grad():
            pred = self(s) if pred is None else pred
            loss = 0.5 * weight * (pred - target).pow(2).sum(dim=1).mean()
            x = self.inputs(s)
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
            n = s.shape[0]
            self.xx.mul_(self.decay).add_((x.t() @ x).double() / n)
            self.xy.mul_(self.decay).add_((x.t() @ target).double() / n)
            self.fits += 1
            if int(self.fits) % self.every == 0:
                self.solve()
        return loss, pred

    @torch.no_grad()
    def solve(self) -> None:
        a = self.xx.clone()
        a.diagonal().add_(self.ridge * a.diagonal().mean() + 1e-12)
        w = torch.linalg.solve(a, self.xy)  # [size + 1, size]
        lin = self.net[0]
        lin.weight.copy_(w[:-1].t().to(lin.weight.dtype))
        lin.bias.copy_(w[-1].to(lin.bias.dtype))


def make_m(size: int, hidden: int = 0, dtype: str = "float32", block: int = 0, fit=None, extra: int = 0) -> nn.Module:
    """M for a state of ``size`` units: linear (hidden = 0) or one hidden ReLU layer; ``block``
    > 0: its input normalised per block of that many units (``sg.input_norm=rms``); ``fit``: the
    sg config node, whose ``fit=ridge`` makes the linear M a :class:`RidgeM`; ``extra``: input
    columns past the state (``sg.history``)."""
    low = torch.bfloat16 if dtype == "bfloat16" else None
    if fit is not None and fit.get("fit", "adam") == "ridge":
        return RidgeM(size, low, block, float(fit.ridge_decay), float(fit.ridge), int(fit.ridge_every), extra)
    return MLPM(size, hidden, low, block, extra) if hidden else LinearM(size, low, block, extra)


def input_block(cfg, hidden_size: int) -> int:
    """The block ``sg.input_norm=rms`` normalises: H units (one layer's h or c); 0 = off."""
    return hidden_size if cfg.get("input_norm", "none") == "rms" else 0
