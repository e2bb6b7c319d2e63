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

Cost (a linear M, the default): M's work is three products of a (B x n) by an (n x n) matrix per
update, n = 2H per layer: the prediction at s_end, the regression's M(s_start) and its weight
gradient. ``predict`` computes the first two in one matrix product (M is unchanged between
them within an update) and ``learn`` writes the regression's gradient in closed form
(dW = err^T s / B, db = mean err), with no autograd graph around M; exactly the gradient
autograd gives (tested). With ``sg.dtype=bfloat16`` the products run in bfloat16, M's weights
cast once per product, while M's weights, the target, the loss and Adam stay float32.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
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
    """The synthetic-gradient machinery of one run, by ``sg.name``:

    - ``off`` (or ``DNI(None, ...)``): plain truncated BPTT, one ordinary backward pass;
    - ``on``: M predicts g_hat at each boundary and regresses onto the bootstrapped target;
    - ``aux``: as ``on``, and the core also predicts, from its top-layer output at a segment's
      first step, the synthetic gradient M(s_end) at that segment's end (T-1 steps later, the
      next one it will be given). Loss: ``aux_weight`` * 0.5 * mean over sequences of the squared
      error, target detached; it is part of the core's objective, so its gradient reaches the
      core's weights (and, like any loss, the bootstrapped target).
    - ``placebo``: a control, M trained exactly as with ``on``; the core is given M's prediction
      for another sequence of the batch (a fixed-point-free permutation), so it receives
      gradients of the right scale and statistics but not of its own content.
    - ``oracle``: no M; the exact future gradient, from BPTT over the look-ahead that
      ``oracle_fn(s_end)`` covers (to the episode's end for Copy), is injected at each boundary.

    ``sg.placement``: ``all`` (M reads every layer's (h, c) at the boundary), ``top`` (only the
    top layer's), or ``between-layers``: no synthetic gradient in time (plain truncation);
    instead the layers of the stack are decoupled in depth, as in the paper's feed-forward
    experiments: layer l+1 reads a detached copy of layer l's output sequence, and layer l is
    updated with M_l(h_l) (one M per junction, applied at every step) in place of the true
    gradient from above; M_l regresses onto that true gradient once it is known.
    """

    def __init__(self, cfg, state_size: int, device, top_size: Optional[int] = None):
        """state_size: the core's flat (h, c) of all layers; top_size: the top layer's part of it
        (its last ``top_size`` columns), used with ``sg.placement=top``."""
        self.mode = cfg.name if cfg is not None else "off"
        self.enabled = self.mode != "off"
        self.depth = False
        self.model: Optional[SyntheticGradientModel] = None
        self.depth_models = nn.ModuleList()  # between-layers: M_l per junction
        self.links: list = []  # between-layers: this segment's (output of layer l, input leaf of l+1)
        self.low: Optional[torch.dtype] = None  # sg.dtype=bfloat16: M's compute dtype
        self._pred_start = None  # (s_start, M(s_start)) from predict(), for learn() in the same update
        self.oracle_fn = None  # oracle mode: s_end -> exact per-sequence future gradient (set by the trainer)
        if self.enabled:
            top = cfg.placement == "top"
            # Where M reads and injects: every layer's (h, c), or only the top layer's.
            self.cols = slice(state_size - top_size, state_size) if top else slice(None)
            self.size = top_size if top else state_size
            self.depth = cfg.placement == "between-layers"
            if self.depth:
                junctions = state_size // top_size - 1
                self.depth_models = nn.ModuleList(
                    SyntheticGradientModel(top_size // 2, cfg.hidden_size) for _ in range(junctions)).to(device)
            elif self.mode != "oracle":
                self.model = SyntheticGradientModel(self.size, cfg.hidden_size).to(device)
            self.scale, self.scale_in_target, self.loss_weight = cfg.scale, cfg.scale_in_target, cfg.loss_weight
            self.start_step, self.aux_weight = cfg.start_step, cfg.aux_weight
            # sg.dtype=bfloat16: M's matmuls run in bfloat16 under autocast (weights, target, loss stay float32).
            self.low = torch.bfloat16 if cfg.dtype == "bfloat16" else None
        self.aux = self.mode == "aux"
        self.placebo = self.mode == "placebo"

    @property
    def linear(self) -> Optional[nn.Linear]:
        """M's single layer when M is linear (the default): its regression has a closed-form gradient."""
        net = self.model.net if self.model is not None else ()
        return net[0] if len(net) == 1 else None

    def m(self, s: torch.Tensor, model: Optional[nn.Module] = None) -> torch.Tensor:
        """M(s) (or another M_l), in float32; with ``sg.dtype=bfloat16`` computed in bfloat16."""
        model = self.model if model is None else model
        if self.low is None:
            return model(s)
        if model is self.model and self.linear is not None:  # one cast of W, no autocast bookkeeping
            lin = self.linear
            return torch.addmm(lin.bias.to(self.low), s.to(self.low), lin.weight.to(self.low).t()).float()
        with torch.autocast(s.device.type, dtype=self.low):
            return model(s).float()

    def parameters(self) -> list[nn.Parameter]:
        return (list(self.model.parameters()) if self.model is not None else []) + list(self.depth_models.parameters())

    def state_dict(self) -> dict:
        """M's parameters (M_l's for between-layers; none for off and oracle)."""
        return {"model": self.model.state_dict() if self.model is not None else None,
                "depth": self.depth_models.state_dict()}

    def load_state_dict(self, state) -> None:
        if state is None or "depth" not in state:  # checkpoints of sgrnn before between-layers: M's own dict
            state = {"model": state, "depth": {}}
        if self.model is not None:
            self.model.load_state_dict(state["model"])
        self.depth_models.load_state_dict(state["depth"])

    def start(self, state: torch.Tensor, first: bool) -> torch.Tensor:
        """The segment's start state: a leaf requiring grad where a bootstrapped target is
        wanted (every truncation boundary), the plain detached state elsewhere."""
        s = state.detach()
        return s.requires_grad_() if self.model is not None and not first else s  # (all layers: autograd needs a leaf)

    def predict(self, s_end: torch.Tensor, last: bool, s_start: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
        """g_hat = M(s_end) (or the oracle's exact gradient), unscaled and detached; None at an
        episode's end (the future gradient is 0). Given the segment's start state, a linear M
        also computes M(s_start) for ``learn`` in the same matrix product."""
        self._pred_start = None
        if not self.enabled or last or (self.model is None and self.mode != "oracle"):
            return None
        if self.mode == "oracle":
            return self.oracle_fn(s_end.detach())[:, self.cols]
        with torch.no_grad():
            if s_start is None or not s_start.requires_grad or self.linear is None:
                return self.m(s_end[:, self.cols])
            g_hat, pred_start = self.m(torch.cat([s_end[:, self.cols], s_start.detach()[:, self.cols]])).chunk(2)
            self._pred_start = (s_start, pred_start)
            return g_hat

    def aux_loss(self, core, top_hidden: torch.Tensor, g_hat: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """DNI + Aux: the core's prediction, at the segment's first step, of the synthetic
        gradient at the segment's end (see the class docstring)."""
        if not self.aux or g_hat is None:
            return None
        err = (core.aux(top_hidden[0]) - g_hat).pow(2).sum(dim=1)
        return 0.5 * self.aux_weight * err.mean()

    def backward(self, loss: torch.Tensor, s_start: torch.Tensor, s_end: torch.Tensor,
                 g_hat: Optional[torch.Tensor], step: int = 0, aux: Optional[torch.Tensor] = None, links=()):
        """The core's backward pass: d[loss (+ aux) + scale * <g_hat, s_end> / B]. Parameter grads
        accumulate into .grad; s_start.grad (if a leaf) receives the bootstrapped target / B.
        Before update ``sg.start_step`` nothing is injected into the core (plain truncated BPTT)
        while the target still bootstraps from g_hat, so M learns during the warm-up."""
        if aux is not None:
            loss = loss + aux
        self.links = list(links)
        inject = step >= self.start_step if self.enabled else False
        if self.links and inject:  # between-layers: layer l gets <M_l(h_l), h_l> in place of the true gradient
            with torch.no_grad():
                g_depth = [self.m(below, m) for m, (below, _) in zip(self.depth_models, self.links)]
            loss = loss + sum((g * below).sum() for g, (below, _) in zip(g_depth, self.links)) / s_end.shape[0]
        self._backward_in_time(loss, s_start, s_end, g_hat, inject)
        if self.links and not inject:  # warm-up in depth: the true gradient from above, a second pass
            torch.autograd.backward([b for b, _ in self.links], [leaf.grad for _, leaf in self.links])

    def _backward_in_time(self, loss, s_start, s_end, g_hat, inject: bool) -> None:
        if g_hat is None:
            loss.backward()
            return
        B, end = s_end.shape[0], s_end[:, self.cols]
        to_core = self.scale if inject else 0.0
        to_target = self.scale if self.scale_in_target else 1.0
        # sg=placebo: the core is given M's prediction for another sequence of the batch (a random
        # B-cycle, so no sequence gets its own); M's target is built from its own prediction.
        g_core = g_hat[derangement(B, g_hat.device)] if self.placebo else g_hat
        total = loss + to_core * (g_core * end).sum() / B if to_core else loss
        if (to_core == to_target and not self.placebo) or not s_start.requires_grad:  # the usual case: one pass
            total.backward()
            return
        # The target needs another term <to_target g_hat - to_core g_core, s_end>: a second pass for it alone.
        total.backward(retain_graph=True)
        (extra,) = torch.autograd.grad(((to_target * g_hat - to_core * g_core) * end).sum() / B, s_start)
        s_start.grad += extra

    def bootstrapped_target(self, s_start: torch.Tensor) -> torch.Tensor:
        """The per-sequence gradient that reached (M's part of) the segment's start state."""
        return s_start.grad[:, self.cols].detach() * s_start.shape[0]

    def learn(self, s_start: torch.Tensor) -> Optional[dict]:
        """Regress M(s_start) onto the bootstrapped target (backward through M only).
        Returns on-device scalars for logging, or None where there is no boundary."""
        if self.links:
            return self._learn_depth()
        if self.model is None or s_start.grad is None:
            return None
        target, s = self.bootstrapped_target(s_start), s_start.detach()[:, self.cols]
        if self.linear is None:  # an MLP M: autograd
            pred = self.m(s)
            sg_loss = 0.5 * self.loss_weight * (pred - target).pow(2).sum(dim=1).mean()
            sg_loss.backward()
        else:  # linear M: the closed-form gradient of the same loss, no graph
            cached = self._pred_start
            with torch.no_grad():
                pred = cached[1] if cached is not None and cached[0] is s_start else self.m(s)
                err = pred - target
                sg_loss = 0.5 * self.loss_weight * err.pow(2).sum(dim=1).mean()
                self._accumulate_linear_grad(err * (self.loss_weight / s.shape[0]), s)
        self._pred_start = None
        return {
            "sg/loss": sg_loss.detach(),
            "sg/pred_norm": pred.detach().norm(dim=1).mean(),
            "sg/target_norm": target.norm(dim=1).mean(),
            "sg/target_cos": F.cosine_similarity(pred.detach(), target, dim=1, eps=1e-12).mean(),
        }

    def _accumulate_linear_grad(self, d_out: torch.Tensor, s: torch.Tensor) -> None:
        """Linear M: dW += d_out^T s, db += sum of d_out (the backward of addmm, by hand)."""
        lin = self.linear
        if self.low is None:
            d_w = d_out.t() @ s
        else:
            d_w = (d_out.to(self.low).t() @ s.to(self.low)).float()
        for p, g in ((lin.weight, d_w), (lin.bias, d_out.sum(dim=0))):
            p.grad = g if p.grad is None else p.grad + g

    def _learn_depth(self) -> dict:
        """between-layers: regress each M_l(h_l) onto the true gradient that reached layer l+1's
        input (per sequence, at every step)."""
        total, pred_norm, target_norm, cos = 0.0, 0.0, 0.0, 0.0
        for m, (below, leaf) in zip(self.depth_models, self.links):
            B = below.shape[1]
            target = leaf.grad.detach() * B
            pred = self.m(below.detach(), m)
            total = total + 0.5 * self.loss_weight * (pred - target).pow(2).sum(dim=2).mean()
            pred_norm = pred_norm + pred.detach().norm(dim=2).mean()
            target_norm = target_norm + target.norm(dim=2).mean()
            cos = cos + F.cosine_similarity(pred.detach(), target, dim=2, eps=1e-12).mean()
        total.backward()
        n = len(self.links)
        self.links = []
        return {"sg/loss": total.detach(), "sg/pred_norm": pred_norm / n, "sg/target_norm": target_norm / n,
                "sg/target_cos": cos / n}


def derangement(n: int, device=None) -> torch.Tensor:
    """A random permutation of range(n) with no fixed point (one n-cycle, Sattolo): index i maps
    to the sequence after i in a random order. n = 1 has none; it is returned as is."""
    order = torch.randperm(n, device=device)
    perm = torch.empty_like(order)
    perm[order] = order.roll(-1)
    return perm


def future_gradients(core, loss_fn, x, y, mask, state: torch.Tensor, T: int) -> tuple[list, list]:
    """Full BPTT over a whole sequence from ``state``, cut at every T steps: the state at each
    boundary, and the exact per-sequence gradient of all later losses with respect to it
    (what a perfect synthetic-gradient model would predict there). ``loss_fn(logits, y, mask)``."""
    B = x.shape[1]
    s0 = state.detach().requires_grad_()
    s, total, boundaries = s0, 0.0, []
    for t in range(0, x.shape[0], T):
        if t:
            boundaries.append(s)
        seg = slice(t, t + T)
        logits, s = core(x[seg], s)
        total = total + loss_fn(logits, y[seg], None if mask is None else mask[seg])
    grads = torch.autograd.grad(total, [s0, *boundaries], allow_unused=True)
    states = [s0.detach()] + [b.detach() for b in boundaries]
    return states, [B * g if g is not None else torch.zeros_like(st) for g, st in zip(grads, states)]


@torch.no_grad()
def _cos_and_ratio(pred: torch.Tensor, true: torch.Tensor) -> tuple[float, float, float]:
    cos = F.cosine_similarity(pred, true, dim=1, eps=1e-12).mean().item()
    true_norm = true.norm(dim=1).mean().item()
    return cos, pred.norm(dim=1).mean().item() / max(true_norm, 1e-12), true_norm


def sg_quality(dni: DNI, core, loss_fn, x, y, mask, T: int) -> dict:
    """On held-out data: at each truncation boundary, compare M's prediction with the true future
    gradient (cosine, norm ratio, and the true gradient's norm: are they negligible?)."""
    states, grads = future_gradients(core, loss_fn, x, y, mask, core.zero_state(x.shape[1], x.device), T)
    if len(states) < 2:
        return {}
    s = torch.cat(states[1:])[:, dni.cols]
    true = torch.cat(grads[1:])[:, dni.cols]
    pred = dni.m(s) if dni.model is not None else true
    cos, ratio, norm = _cos_and_ratio(pred.detach(), true)
    return {"diag/sg_cos": cos, "diag/sg_norm_ratio": ratio, "diag/true_grad_norm": norm}
