"""Data streams of the paper's RNN tasks, cut into segments of T steps for truncated BPTT.

:class:`Stream` is all the trainer (``sgrnn.train``), the instruments (``sgrnn.diag``,
``sgrnn.sg.quality``), the logger (``sgrnn.tracking``) and checkpoints know about a task; the
report reads only what ``summary()`` puts in ``summary.json``. Adding a task is one module here
with a class that satisfies it, one branch in :func:`make_task`, and one config entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import torch


@dataclass
class Segment:
    x: torch.Tensor  # [T', B, input] floats or [T', B] symbol ids (T' <= T at an episode end)
    y: torch.Tensor  # targets aligned with x
    mask: Optional[torch.Tensor]  # [T', 1, 1] 1 where scored (None: every step is scored)
    first: bool  # starts from a reset state: no boundary, so no synthetic-gradient target here
    last: bool  # the episode ends here: the future gradient is exactly 0


class Stream(Protocol):
    """A task as a stream of segments (sgrnn.tasks.copy.CopyStream, sgrnn.tasks.ptb.PTBStream).
    Optional: ``error_by_distance(logits, y, mask)`` (Copy tasks), read by the instruments."""

    input_size: int  # input features per step (PTB: the embedding width)
    output_size: int  # logits per step
    vocab_size: int  # symbols embedded by the core (0: inputs are float vectors)
    done: bool  # early stopping asks the trainer to stop

    def next_segment(self) -> Segment:
        """The next T steps of training data (shorter at an episode's end)."""

    def loss(self, logits: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """The segment's training loss, a 0-d tensor (Copy: nats per sequence; PTB: per symbol)."""

    def step_losses(self, logits: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Per-step losses [T'] (the dependency probe differentiates each)."""

    def lookahead(self, steps: int) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """(x, y, mask) after the segment just served: the rest of the episode, or ``steps``
        steps of the stream (0 = to the episode's end), for the oracle's exact future gradient."""

    def heldout(self, batch: int, length: int, generator: torch.Generator):
        """(x, y, mask) held-out data for the instruments, from their own generator."""

    def record(self, logits: torch.Tensor, seg: Segment) -> dict:
        """Scalars to log after an update (an episode's end: the curriculum's step), else {}."""

    def evaluate(self, core, step: int) -> dict:
        """Held-out scalars every so often (PTB validation and early stopping), else {}."""

    def finish(self, core, step: int) -> dict:
        """Final held-out scalars (PTB: test BPC at the best validation point)."""

    def progress(self) -> dict:
        """A few values for the progress bar."""

    def state_dict(self) -> dict:
        """Everything the next segment depends on (checkpoints)."""

    def load_state_dict(self, state: dict) -> None: ...

    def summary(self) -> dict:
        """The task's part of summary.json (Copy: max_solved, solved lengths; PTB: BPCs)."""


def make_task(cfg, T: int, device: torch.device, generator: torch.Generator) -> Stream:
    if cfg.task.name in ("copy", "repeat-copy"):
        from sgrnn.tasks.copy import ContinuousCopyStream, CopyStream

        stream = ContinuousCopyStream if cfg.task.get("protocol", "episodic") == "continuous" else CopyStream
        return stream(cfg.task, T, device, generator)
    if cfg.task.name == "ptb":
        from sgrnn.tasks.ptb import PTBStream

        stream = PTBStream(cfg.task, T, device)
        if cfg.diag.every:  # the instruments' held-out draws must fit the validation text
            stream.check_heldout(cfg.diag.batch_size, cfg.diag.length, "diag.batch_size")
            stream.check_heldout(cfg.diag.ceiling_batch, cfg.diag.length, "diag.ceiling_batch")
        return stream
    raise ValueError(f"unknown task {cfg.task.name!r}")
