"""Data streams of the paper's RNN tasks, cut into segments of T steps for truncated BPTT.

:class:`Stream` is all the trainer (``sgrnn.train``), the instruments (``sgrnn.diag``,
``sgrnn.sg.quality``), the logger (``sgrnn.tracking``) and checkpoints know about a task; the
report reads only what ``summary()`` puts in ``summary.json``: a curriculum task's ``max_solved``
(a length: higher is better) or a language model's ``test_bpc`` (lower is better).

Adding a task is one module here, whose builder registers under the task's name
(``@register_task("name")``: ``build(cfg, T, device, generator) -> Stream``), plus its entry in
``sgrnn.config.TASKS``: a typed config dataclass whose ``check`` holds the task's own checks.
``tests/test_extending.py`` adds one and trains and reports it without editing any other module.
"""


from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

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


BUILDERS: dict[str, Callable] = {}


def register_task(name: str) -> Callable[[Callable], Callable]:
    """Decorator: ``build(cfg, T, device, generator) -> Stream`` makes the stream of ``task=name``."""
    def put(build: Callable) -> Callable:
        BUILDERS[name] = build
        return build
    return put


def make_task(cfg, T: int, device: torch.device, generator: torch.Generator) -> Stream:
    """The stream of ``cfg.task.name``, from the builder its module registered."""
    if cfg.task.name not in BUILDERS:
        for module in pkgutil.iter_modules(__path__):  # every task module registers its builder
            importlib.import_module(f"{__name__}.{module.name}")
    if cfg.task.name not in BUILDERS:
        raise ValueError(f"no stream is registered for task {cfg.task.name!r} (sgrnn.tasks.register_task)")
    return BUILDERS[cfg.task.name](cfg, T, device, generator)
