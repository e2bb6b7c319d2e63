"""The truncated-BPTT trainer, with or without synthetic gradients (DNI section 3.1).

One parameter update per segment of T steps. ``train(cfg, run_dir)`` is the whole experiment
(the CLI is a thin Hydra wrapper around it); tests call it with shrunken configs.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch
from torch.nn.utils import clip_grad_norm_

from sgrnn.errors import UserError
from sgrnn.model import LSTMCore
from sgrnn.sg import DNI
from sgrnn.tasks import make_task
from sgrnn.tracking import RunLog

log = logging.getLogger(__name__)


def train(cfg, run_dir: str | Path) -> dict:
    validate(cfg)
    device = pick_device(cfg.device)
    torch.set_num_threads(cfg.train.threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device).manual_seed(cfg.seed)
    task = make_task(cfg, cfg.T, device, generator)
    core = LSTMCore(task.input_size, task.output_size, cfg.model.hidden_size, cfg.model.num_layers, task.vocab_size)
    core.to(device)
    sg = DNI(cfg.sg, core.state_size, device)
    groups = [{"params": list(core.parameters()), "lr": cfg.optim.lr}]
    if sg.enabled:
        groups.append({"params": sg.parameters(), "lr": cfg.sg.lr})  # M's own group
    opt = torch.optim.Adam(groups)
    run = RunLog(run_dir, cfg, device, task)
    log.info("%s sg=%s T=%d on %s, run dir %s", cfg.task.name, cfg.sg.name, cfg.T, device, run_dir)

    state, step, stop = None, 0, "max_steps"
    deadline = time.monotonic() + 60 * cfg.train.max_minutes
    while step < cfg.train.max_steps:
        seg = task.next_segment()
        if seg.first:  # an episode starts from a reset state
            state = core.zero_state(seg.x.shape[1], device)
        s_start = sg.start(state, seg.first)
        logits, s_end = core(seg.x, s_start)
        loss = task.loss(logits, seg)
        sg.backward(loss, s_start, s_end, sg.predict(s_end, seg.last))
        sg_stats = sg.learn(s_start)  # M regresses onto the bootstrapped target
        grad_norm = clip_grad_norm_(core.parameters(), cfg.optim.clip) if cfg.optim.clip else None
        if sg.enabled and cfg.sg.clip:
            clip_grad_norm_(sg.parameters(), cfg.sg.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state, step = s_end.detach(), step + 1
        run.update(step, seg, loss.detach(), grad_norm, sg_stats, task.record(logits.detach(), seg))
        run.scalars(step, task.evaluate(core, step))
        if task.done:
            stop = "early_stopping"
            break
        if time.monotonic() > deadline:
            stop = "max_minutes"
            break
    run.scalars(step, task.finish(core, step))
    return run.close(step, stop, task.summary())


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
