"""Synthetic gradients in depth, ``sg=on sg.placement=between-layers``: no synthetic gradient in
time (plain truncation); instead the layers of the stack are decoupled, as in the paper's
feed-forward experiments. Layer l+1 reads a detached copy of layer l's output sequence, and
layer l is updated with M_l(h_l) (one M per junction, applied at every step) in place of the true
gradient from above; M_l regresses onto that true gradient, once known, per sequence and step.
During the warm-up (``sg.start_step``) layer l gets the true gradient from above (plain
truncated BPTT) in a second pass, while M_l learns."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from sgrnn.sg.base import Boundary, Method
from sgrnn.sg.models import input_block, make_m


class Depth(Method):
    decouple = True

    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        junctions = ctx.state_size // ctx.top_size - 1
        self.models = nn.ModuleList(
            make_m(ctx.top_size // 2, cfg.hidden_size, cfg.dtype, input_block(cfg, ctx.top_size // 2))
            for _ in range(junctions)).to(ctx.device)

    def parameters(self):
        return list(self.models.parameters())

    def state_dict(self) -> dict:
        return {"model": None, "depth": self.models.state_dict()}

    def load_state_dict(self, state) -> None:
        self.models.load_state_dict(state["depth"])

    def predict(self, s_start, s_end, top=None, links=(), last=False, step=0, seg=None) -> Boundary:
        return Boundary(s_start, s_end, last=last, inject=step >= self.cfg.start_step, links=list(links))

    def backward(self, loss: torch.Tensor, b: Boundary) -> None:
        if b.inject:  # layer l gets <M_l(h_l), h_l> in place of the true gradient from above
            with torch.no_grad():
                g = [m(below) for m, (below, _) in zip(self.models, b.links)]
            loss = loss + sum((gl * below).sum() for gl, (below, _) in zip(g, b.links)) / b.s_end.shape[0]
        loss.backward()
        if not b.inject:  # warm-up: the true gradient from above, a second pass
            torch.autograd.backward([below for below, _ in b.links], [leaf.grad for _, leaf in b.links])

    def learn(self, b: Boundary) -> Optional[dict]:
        """Regress each M_l(h_l) onto the true gradient that reached layer l+1's input."""
        total, pred_norm, target_norm, cos = 0.0, 0.0, 0.0, 0.0
        for m, (below, leaf) in zip(self.models, b.links):
            target = leaf.grad.detach() * below.shape[1]
            pred = m(below.detach())
            total = total + 0.5 * self.cfg.loss_weight * (pred - target).pow(2).sum(dim=2).mean()
            pred_norm = pred_norm + pred.detach().norm(dim=2).mean()
            target_norm = target_norm + target.norm(dim=2).mean()
            cos = cos + F.cosine_similarity(pred.detach(), target, dim=2, eps=1e-12).mean()
        total.backward()
        n = len(b.links)
        return {"sg/loss": total.detach(), "sg/pred_norm": pred_norm / n, "sg/target_norm": target_norm / n,
                "sg/target_cos": cos / n}
