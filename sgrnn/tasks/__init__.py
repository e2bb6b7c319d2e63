"""Data streams of the paper's RNN tasks, cut into segments of T steps for truncated BPTT.

A task object is all the trainer knows about a task:

- ``next_segment()`` -> :class:`Segment` (inputs, targets, and where episodes start and end);
- ``loss(logits, seg)`` -> the segment's loss (a 0-d tensor);
- ``record(logits, seg)`` -> scalars to log when an episode ends (curriculum), else ``{}``;
- ``evaluate(core, step)`` -> held-out scalars every so often (PTB validation), else ``{}``;
- ``done`` (early stopping), ``finish(core)`` and ``summary()`` for ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class Segment:
    x: torch.Tensor  # [T', B, input] floats or [T', B] symbol ids (T' <= T at an episode end)
    y: torch.Tensor  # targets aligned with x
    mask: Optional[torch.Tensor]  # [T', 1, 1] 1 where scored (None: every step is scored)
    first: bool  # starts from a reset state: no boundary, so no synthetic-gradient target here
    last: bool  # the episode ends here: the future gradient is exactly 0


def make_task(cfg, T: int, device: torch.device, generator: torch.Generator):
    if cfg.task.name in ("copy", "repeat-copy"):
        from sgrnn.tasks.copy import CopyStream

        return CopyStream(cfg.task, T, device, generator)
    if cfg.task.name == "ptb":
        from sgrnn.tasks.ptb import PTBStream

        return PTBStream(cfg.task, T, device)
    raise ValueError(f"unknown task {cfg.task.name!r}")
