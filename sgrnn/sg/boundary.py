"""Boundary synthetic gradients, ``sg=on`` (DNI, Jaderberg et al. 2017, section 3.1, fig. 2).

At a segment's last step M reads the state s_end ((h, c) of every layer, or of the top layer with
``sg.placement=top``) and predicts the gradient of all future losses with respect to it,
g_hat = M(s_end). The core's update is

    d/dtheta [ segment loss + scale * <g_hat, s_end> / B ]

and M regresses onto its target (``sgrnn.sg.targets``: bootstrapped, or lambda-weighted), which
with the segment's start state a leaf that requires grad is that leaf's ``.grad`` after the
core's one backward pass.

Conventions (documented choices where the paper is silent):

- Per-sequence gradients. Losses are means over the batch, so the gradient of the batch loss
  with respect to row b of the state is (1/B) * (sequence b's own gradient). M predicts the
  per-sequence quantity: the injected term is <g_hat, s_end> / B and the target B * s_start.grad.
- ``scale`` multiplies the injected gradient. With ``scale_in_target`` the target is built with
  the scaled prediction (M learns a gradient discounted by ``scale`` per boundary, like TD's
  gamma); otherwise with the unscaled one, which costs a second backward pass.
- M starts at exactly zero, so at step 0 DNI equals plain truncated BPTT exactly; its input is
  detached, so its regression loss never reaches the core.
- Before update ``sg.start_step`` (warm-up) nothing is injected into the core while the target
  still bootstraps from g_hat, so M learns meanwhile.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from sgrnn.sg.base import Boundary, Context, Method, register
from sgrnn.sg.history import InputHistory
from sgrnn.sg.models import input_block, make_m
from sgrnn.sg.targets import Bootstrap, LambdaTargets

TARGETS = {"bootstrap": Bootstrap, "lambda": LambdaTargets}


@register("on")
class BoundarySG(Method):
    def __init__(self, cfg, ctx: Context):
        super().__init__(cfg, ctx)
        top = cfg.placement == "top"
        # Where M reads and injects: every layer's (h, c), or only the top layer's.
        self.cols = slice(ctx.state_size - ctx.top_size, ctx.state_size) if top else slice(None)
        self.size = ctx.top_size if top else ctx.state_size
        steps = int(cfg.get("history", 0))
        self.history = InputHistory(steps, ctx.input_size, ctx.vocab_size) if steps else None
        extra = self.history.width if self.history else 0
        self.model = self.make_model(cfg, ctx, extra).to(ctx.device)
        self.scale, self.loss_weight, self.start_step = cfg.scale, cfg.loss_weight, cfg.start_step
        self.gamma = cfg.scale if cfg.scale_in_target else 1.0  # the weight of g_hat in M's target
        self.target = TARGETS[cfg.target](cfg, ctx, self.cols, self.gamma)

    def make_model(self, cfg, ctx: Context, extra: int) -> torch.nn.Module:
        """M: linear or MLP (sgrnn.sg.models) on the state's columns plus ``extra`` input columns."""
        return make_m(self.size, cfg.hidden_size, cfg.dtype, input_block(cfg, ctx.top_size // 2), cfg, extra)

    def parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def state_dict(self) -> dict:
        out = {"model": self.model.state_dict(), "depth": {}, "target": self.target.state_dict()}
        if self.history:
            out["history"] = self.history.state_dict()
        return out

    def load_state_dict(self, state) -> None:
        if state is not None and "depth" not in state:  # checkpoints of sgrnn before between-layers
            state = {"model": state}
        self.model.load_state_dict(state["model"])
        self.target.load_state_dict(state.get("target", {}))  # none before the lambda target's was kept
        if self.history:
            self.history.load_state_dict(state.get("history", {}), self.ctx.device)

    def m_inputs(self, states: list, x: torch.Tensor, T: int) -> list:
        """M's inputs at the boundaries of an episode ``x`` read from its start, given the states
        there (M's columns; boundary k after step (k + 1) T): the states, with the input window
        when ``sg.history`` is on (the instruments)."""
        if not self.history:
            return states
        return [torch.cat([s, self.history.at(x, (k + 1) * T)], dim=1) for k, s in enumerate(states)]

    def start(self, state: torch.Tensor, first: bool) -> torch.Tensor:
        """A leaf requiring grad at every truncation boundary (its .grad becomes the target)."""
        s = state.detach()
        return s if first else s.requires_grad_()

    def give(self, g_hat: torch.Tensor, m_in: torch.Tensor, position: Optional[int] = None) -> torch.Tensor:
        """What the core is given in place of the future gradient, from M's prediction and M's
        input there, at the episode's ``position``-th boundary when known (the other methods
        override this: placebo, batch-mean, centred, frozen, tracked)."""
        return g_hat

    def predict(self, s_start, s_end, top=None, links=(), last=False, step=0, seg=None) -> Boundary:
        b = Boundary(s_start, s_end, last=last, inject=step >= self.start_step)
        if seg is not None:
            b.x, b.y, b.mask = seg.x, seg.y, seg.mask
        start = s_start.detach()[:, self.cols] if s_start.requires_grad else None
        end = s_end.detach()[:, self.cols]
        if self.history:  # M also reads the input window (sg.history)
            before, after = self.history.advance(seg.x, seg.first)
            start = None if start is None else torch.cat([start, before], dim=1)
            end, b.m_start = torch.cat([end, after], dim=1), start
        if not last:
            with torch.no_grad():
                b.g_hat, b.pred_start = self.model.predict(end, start)
            b.given = self.give(b.g_hat, end)
        return b

    def backward(self, loss: torch.Tensor, b: Boundary) -> None:
        if b.aux is not None:
            loss = loss + b.aux
        if b.g_hat is None:
            loss.backward()
            return
        B, end = b.s_end.shape[0], b.s_end[:, self.cols]
        to_core = self.scale if b.inject else 0.0
        total = loss + to_core * (b.given * end).sum() / B if to_core else loss
        if (to_core == self.gamma and b.given is b.g_hat) or not b.s_start.requires_grad:  # one pass
            total.backward()
            return
        # M's target needs <gamma g_hat - to_core given, s_end> too: a second pass for that term alone.
        total.backward(retain_graph=True)
        (extra,) = torch.autograd.grad(((self.gamma * b.g_hat - to_core * b.given) * end).sum() / B, b.s_start)
        b.s_start.grad += extra

    def learn(self, b: Boundary) -> Optional[dict]:
        return self.regress(self.target.targets(b))

    def regress(self, pairs: list) -> Optional[dict]:
        """M's regression step on (M's input, target, cached prediction or None) pairs."""
        if not pairs:
            return None
        states, targets, cached = zip(*pairs)
        s, target = torch.cat(states), torch.cat(targets)
        pred = cached[0] if len(pairs) == 1 else None
        loss, pred = self.model.regress(s, target, self.loss_weight, pred)
        return {
            "sg/loss": loss,
            "sg/pred_norm": pred.norm(dim=1).mean(),
            "sg/target_norm": target.norm(dim=1).mean(),
            "sg/target_cos": F.cosine_similarity(pred, target, dim=1, eps=1e-12).mean(),
        }
