"""``sg=oracle``: no M; the exact future gradient, by BPTT over the look-ahead the task serves
(to the episode's end for Copy, ``sg.oracle_lookahead`` steps on PTB), is given to the core at
each boundary: the ceiling of what any synthetic gradient could deliver."""

from __future__ import annotations

import torch

from sgrnn.sg.base import Boundary, Method, register


@register("oracle")
class Oracle(Method):
    def __init__(self, cfg, ctx):
        super().__init__(cfg, ctx)
        top = cfg.placement == "top"
        self.cols = slice(ctx.state_size - ctx.top_size, ctx.state_size) if top else slice(None)
        self.scale = cfg.scale

    def predict(self, s_start, s_end, top=None, links=(), last=False, step=0, seg=None) -> Boundary:
        b = Boundary(s_start, s_end, last=last, inject=step >= self.cfg.start_step)
        if not last:
            b.g_hat = b.given = self.ctx.oracle(s_end.detach())[:, self.cols]
        return b

    def backward(self, loss: torch.Tensor, b: Boundary) -> None:
        if b.g_hat is not None and b.inject:
            loss = loss + self.scale * (b.given * b.s_end[:, self.cols]).sum() / b.s_end.shape[0]
        loss.backward()
