"""The truncated-BPTT trainer, with or without synthetic gradients (DNI section 3.1).

One parameter update per segment of T steps. ``train(cfg, run_dir)`` is the whole experiment
(the CLI is a thin Hydra wrapper around it); tests call it with shrunken configs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig
from torch.nn.utils import clip_grad_norm_

from sgrnn.errors import UserError
from sgrnn.model import LSTMCore
from sgrnn.sg import DNI
from sgrnn.tasks import make_task
from sgrnn.tracking import RunLog

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything one training run holds."""

    cfg: DictConfig
    device: torch.device
    task: Any  # a stream from sgrnn.tasks
    core: LSTMCore
    sg: DNI
    opt: torch.optim.Optimizer
    log: RunLog
    state: Optional[torch.Tensor] = None  # the recurrent state carried into the next segment
    step: int = 0  # parameter updates done


def setup(cfg: DictConfig, run_dir: str | Path) -> Run:
    validate(cfg)
    device = pick_device(cfg.device)
    torch.set_num_threads(cfg.train.threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, cfg.T, device, torch.Generator(device).manual_seed(cfg.seed))
    core = LSTMCore(task.input_size, task.output_size, cfg.model.hidden_size, cfg.model.num_layers, task.vocab_size)
    core.to(device)
    sg = DNI(cfg.sg, core.state_size, device)
    groups = [{"params": list(core.parameters()), "lr": cfg.optim.lr}]
    if sg.enabled:
        groups.append({"params": sg.parameters(), "lr": cfg.sg.lr})  # M's own group
    return Run(cfg, device, task, core, sg, torch.optim.Adam(groups), RunLog(run_dir, cfg, device, task))


def update(run: Run) -> None:
    """One truncated-BPTT update over the next segment of T steps."""
    task, core, sg, cfg = run.task, run.core, run.sg, run.cfg
    seg = task.next_segment()
    if seg.first:  # an episode starts from a reset state
        run.state = core.zero_state(seg.x.shape[1], run.device)
    s_start = sg.start(run.state, seg.first)
    logits, s_end = core(seg.x, s_start)
    loss = task.loss(logits, seg)
    sg.backward(loss, s_start, s_end, sg.predict(s_end, seg.last))  # the one pass through the core
    sg_stats = sg.learn(s_start)  # M regresses onto the bootstrapped target
    grad_norm = clip_grad_norm_(core.parameters(), cfg.optim.clip) if cfg.optim.clip else None
    if sg.enabled and cfg.sg.clip:
        clip_grad_norm_(sg.parameters(), cfg.sg.clip)
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    run.state, run.step = s_end.detach(), run.step + 1
    run.log.update(run.step, seg, loss.detach(), grad_norm, sg_stats, task.record(logits.detach(), seg))
    run.log.scalars(run.step, task.evaluate(core, run.step))


def train(cfg: DictConfig, run_dir: str | Path) -> dict:
    """The whole experiment; returns (and writes) summary.json."""
    run = setup(cfg, run_dir)
    log.info("%s sg=%s T=%d on %s, run dir %s", cfg.task.name, cfg.sg.name, cfg.T, run.device, run_dir)
    deadline = time.monotonic() + 60 * cfg.train.max_minutes
    stop = "max_steps"
    while run.step < cfg.train.max_steps:
        update(run)
        if run.task.done:
            stop = "early_stopping"
            break
        if time.monotonic() > deadline:
            stop = "max_minutes"
            break
    run.log.scalars(run.step, run.task.finish(run.core, run.step))
    return run.log.close(run.step, stop, run.task.summary())


def validate(cfg) -> None:
    """Reject values that cannot work, with one readable line."""
    checks = {
        "T": cfg.T,
        "model.hidden_size": cfg.model.hidden_size,
        "model.num_layers": cfg.model.num_layers,
        "task.batch_size": cfg.task.batch_size,
        "optim.lr": cfg.optim.lr,
        "sg.lr": cfg.sg.lr,
        "train.max_steps": cfg.train.max_steps,
        "train.max_minutes": cfg.train.max_minutes,
        "train.log_every": cfg.train.log_every,
    }
    for key, value in checks.items():
        if not value > 0:
            raise UserError(f"{key} must be positive, got {value}")
    for key in ("optim.clip", "sg.clip", "sg.hidden_size", "train.threads"):
        value = cfg[key.split(".")[0]][key.split(".")[1]]
        if value < 0:
            raise UserError(f"{key} must be >= 0, got {value}")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is visible to PyTorch (use device=cpu or device=auto)")
    if name not in ("cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)
