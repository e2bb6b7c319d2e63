"""``sg.history=K``: M reads the last K input steps besides the boundary state.

Why (docs/study/plateau): on Copy at the plateau the future gradient at a boundary is mostly
about bits the core has seen but not stored, so they are not in the state M reads. A ridge fit
from the state alone reaches a cosine of 0.04-0.11 with the true future gradient, by boundary,
where the same fit from the state and the inputs so far reaches 0.04-0.42 (`sg.scale=1
sg.input_norm=rms`, seed 201, where it stopped at N=6; fitted on 2,048 held-out sequences). The
inputs are what the network was given up to the boundary, so M stays causal; the core is
unchanged.

The window holds the last K steps' inputs, oldest first, flattened to K x F columns per sequence
(F: the input width, or the vocabulary for symbol ids, one-hot), zero before the episode's (or
the stream's) first step. It is state that the method carries between updates, so it is in the
checkpoint.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


class InputHistory:
    def __init__(self, steps: int, input_size: int, vocab_size: int = 0):
        self.steps, self.vocab = steps, vocab_size
        self.per_step = vocab_size or input_size
        self.width = steps * self.per_step  # M's extra input columns
        self.window: Optional[torch.Tensor] = None  # [B, width]: the last K steps before the next segment

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[T', B, F] floats (or [T', B] symbol ids) -> [B, T' x F], time-major per sequence."""
        if self.vocab:
            x = F.one_hot(x.long(), self.vocab).float()
        return x.permute(1, 0, 2).reshape(x.shape[1], -1)

    def advance(self, x: torch.Tensor, first: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The window at the segment's start and at its end, after reading the segment ``x``;
        ``first``: the segment starts from a reset state (the window empties)."""
        new = self.features(x)
        if first or self.window is None or self.window.shape[0] != new.shape[0]:
            self.window = torch.zeros(new.shape[0], self.width, device=new.device, dtype=new.dtype)
        before = self.window
        self.window = torch.cat([before, new], dim=1)[:, -self.width:]
        return before, self.window

    def at(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The window after step t - 1 of an episode ``x`` read from its start (the instruments)."""
        new = self.features(x[max(0, t - self.steps):t])
        pad = torch.zeros(new.shape[0], self.width - new.shape[1], device=new.device, dtype=new.dtype)
        return torch.cat([pad, new], dim=1)

    def state_dict(self) -> dict:
        return {"window": None if self.window is None else self.window.clone()}

    def load_state_dict(self, state: dict, device) -> None:
        w = state.get("window")
        self.window = None if w is None else w.to(device)
