"""The truncated-BPTT trainer, with or without synthetic gradients (DNI section 3.1).

One parameter update per segment of T steps. ``train(cfg, run_dir)`` is the whole experiment
(the CLI is a thin Hydra wrapper around it); tests call it with shrunken configs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.utils import clip_grad_norm_

from sgrnn import checkpoint
from sgrnn.errors import UserError
from sgrnn.model import LSTMCore
from sgrnn.diag import diagnostics
from sgrnn.sg import Context, Method, future_gradients, make_method
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
    sg: Method  # the synthetic-gradient method (sgrnn.sg), truncated BPTT for sg=off
    opt: torch.optim.Optimizer
    log: RunLog
    diag_rng: torch.Generator  # held-out data for the instruments (sgrnn.diag), apart from training data
    state: Optional[torch.Tensor] = None  # the recurrent state carried into the next segment
    step: int = 0  # parameter updates done


@dataclass(frozen=True)
class Slot:
    """Where a cell runs among the cells of a sweep that run at once (Hydra's joblib launcher)."""

    index: int = 0  # the cell's job number in the sweep
    jobs: int = 1  # cells running at the same time on this machine


def setup(cfg: DictConfig, run_dir: str | Path, slot: Slot = Slot()) -> Run:
    """Build a run; resume it from the run folder's checkpoint when there is one."""
    validate(cfg)
    ckpt = resume_point(cfg, Path(run_dir))
    device = pick_device(cfg.device, slot)
    torch.set_num_threads(cfg.train.threads or max(1, usable_cores() // slot.jobs))
    torch.manual_seed(cfg.seed)
    task = make_task(cfg, cfg.T, device, torch.Generator(device).manual_seed(cfg.seed))
    H, layers = cfg.model.hidden_size, cfg.model.num_layers
    sg_size = 2 * H if cfg.sg.placement == "top" else 2 * H * layers  # what M reads and predicts
    core = LSTMCore(task.input_size, task.output_size, H, layers, task.vocab_size,
                    aux_size=sg_size if cfg.sg.name == "aux" else 0)
    core.to(device)
    ctx = Context(core.state_size, 2 * H, device, core, task.loss,
                  oracle=partial(oracle_gradient, core, task, cfg.sg.oracle_lookahead, cfg.T))
    sg = make_method(cfg.sg, ctx)
    groups = [{"params": list(core.parameters()), "lr": cfg.optim.lr}]
    if cfg.sg.name != "off":
        groups.append({"params": sg.parameters(), "lr": cfg.sg.lr})  # M's own group (empty for the oracle)
    log.info("%s sg=%s T=%d on %s, run dir %s", cfg.task.name, cfg.sg.name, cfg.T, device, run_dir)
    run_log = RunLog(run_dir, cfg, device, task, purge_step=ckpt["step"] + 1 if ckpt else None)
    # The fused Adam kernel: on a 2-core CPU 13x faster than the default for-each Adam (README).
    diag_rng = torch.Generator(device).manual_seed(cfg.seed + 7919)
    run = Run(cfg, device, task, core, sg, torch.optim.Adam(groups, fused=True), run_log, diag_rng)
    if ckpt:
        checkpoint.restore(run, ckpt)
        log.info("resuming from step %d (checkpoint in %s)", run.step, run_dir)
    return run


def resume_point(cfg: DictConfig, run_dir: Path) -> Optional[dict]:
    """The checkpoint to continue from, after checking it was made with the same config."""
    if cfg.train.resume == "restart":
        return None
    ckpt = checkpoint.load(run_dir)
    if ckpt and cfg.train.resume != "force":
        changes = checkpoint.config_changes(ckpt["config"], OmegaConf.to_container(cfg, resolve=True))
        if changes:
            raise UserError(f"{run_dir} holds a run with another config ({'; '.join(changes)}); "
                            "use another hydra.run.dir, train.resume=force to continue it anyway, "
                            "or train.resume=restart to start over")
    return ckpt


def completed(cfg: DictConfig, run_dir: Path) -> Optional[dict]:
    """The summary of a finished run of this config in ``run_dir`` (re-runs skip it)."""
    path = run_dir / "summary.json"
    if cfg.train.resume == "restart" or not path.is_file():
        return None
    summary = json.loads(path.read_text())
    if summary.get("status") != "complete":
        return None
    changes = checkpoint.config_changes(summary["config"], OmegaConf.to_container(cfg, resolve=True))
    if changes and cfg.train.resume != "force":
        raise UserError(f"{run_dir} holds a finished run with another config ({'; '.join(changes)}); "
                        "use another hydra.run.dir, or train.resume=restart to replace it")
    return summary


def update(run: Run) -> None:
    """One truncated-BPTT update over the next segment of T steps."""
    task, core, sg, cfg, clock = run.task, run.core, run.sg, run.cfg, run.log.clock
    clock.start()
    seg = task.next_segment()
    if seg.first:  # an episode starts from a reset state
        run.state = core.zero_state(seg.x.shape[1], run.device)
    clock.lap("data")
    s_start = sg.start(run.state, seg.first)  # a leaf at a boundary, where M's target arrives
    logits, s_end, top, links = core(seg.x, s_start, hidden=True, decouple=sg.decouple)
    loss = task.loss(logits, seg.y, seg.mask)
    clock.lap("forward")
    b = sg.predict(s_start, s_end, top, links, seg.last, run.step, seg)  # what the core is given at s_end
    clock.lap("sg")
    sg.backward(loss, b)  # the core's gradients: one pass through the segment
    clock.lap("backward")
    sg_stats = sg.learn(b)  # M regresses onto its target
    if cfg.sg.clip and sg_stats is not None:
        clip_grad_norm_(sg.parameters(), cfg.sg.clip)
    clock.lap("sg")
    grad_norm = clip_grad_norm_(core.parameters(), cfg.optim.clip) if cfg.optim.clip else None
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    run.state, run.step = s_end.detach(), run.step + 1
    run.log.update(run.step, seg, loss.detach(), grad_norm, sg_stats, task.record(logits.detach(), seg))
    clock.lap("other")  # clipping, optimiser, bookkeeping, logging
    run.log.scalars(run.step, task.evaluate(core, run.step))


def train(cfg: DictConfig, run_dir: str | Path, slot: Slot = Slot()) -> dict:
    """The whole experiment; returns (and writes) summary.json. Re-running it in the same folder
    skips a finished run and resumes an unfinished one."""
    run_dir = Path(run_dir)
    if (done := completed(cfg, run_dir)) is not None:
        log.info("%s is complete already (%d updates); nothing to do", run_dir, done["steps"])
        return done
    run = setup(cfg, run_dir, slot)
    budget_s, every = 60 * cfg.train.max_minutes, cfg.train.checkpoint_every
    with stop_signals() as signal_name:
        while (stop := stop_reason(run, budget_s, signal_name)) is None:
            update(run)
            if cfg.diag.every and run.step % cfg.diag.every == 0:
                run.log.scalars(run.step, diagnostics(run, run.diag_rng))
            if run.step % every == 0:
                save_checkpoint(run)
    if stop.startswith("SIG"):
        save_checkpoint(run)
        run.log.close(run.step, stop, run.task.summary(), status="interrupted")
        raise Interrupted(stop, run.step)
    run.log.scalars(run.step, run.task.finish(run.core, run.step))
    if run.step % every:  # otherwise the last update's checkpoint is on disk already
        save_checkpoint(run)
    return run.log.close(run.step, stop, run.task.summary())


def oracle_gradient(core, task, lookahead: int, T: int, s_end: torch.Tensor) -> torch.Tensor:
    """sg=oracle: the exact per-sequence gradient of the losses ahead (to the episode's end, or
    ``lookahead`` steps) with respect to s_end, by BPTT with the current parameters."""
    x, y, mask = task.lookahead(lookahead)
    _, grads = future_gradients(core, task.loss, x, y, mask, s_end, T)
    return grads[0]


def stop_reason(run: Run, budget_s: float, signal_name: list) -> Optional[str]:
    if signal_name:
        return signal_name[0]
    if run.task.done:
        return "early_stopping"
    if run.step >= run.cfg.train.max_steps:
        return "max_steps"
    if run.cfg.train.max_samples and run.log.samples >= run.cfg.train.max_samples:
        return "max_samples"
    if run.log.elapsed() > budget_s:
        return "max_minutes"
    return None


def save_checkpoint(run: Run) -> None:
    run.log.check_finite()  # never save parameters that a NaN has reached
    checkpoint.save(run, run.log.elapsed())


class Interrupted(Exception):
    """SIGINT or SIGTERM: a checkpoint was written; the same command resumes the run."""

    def __init__(self, signal_name: str, step: int):
        super().__init__(f"{signal_name} at update {step}: checkpoint written; run the same command to resume")
        self.exit_code = 128 + getattr(signal, signal_name)


@contextmanager
def stop_signals():
    """SIGINT / SIGTERM set a flag that the loop reads between updates (a second one acts as usual)."""
    caught: list[str] = []

    def handler(signum, frame):
        caught.append(signal.Signals(signum).name)
        signal.signal(signum, previous[signum])

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for s in previous:
            signal.signal(s, handler)
    try:
        yield caught
    finally:
        if in_main:
            for s, h in previous.items():
                signal.signal(s, h)


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
        "train.checkpoint_every": cfg.train.checkpoint_every,
        "diag.batch_size": cfg.diag.batch_size,
        "diag.length": cfg.diag.length,
        "diag.probe_k": cfg.diag.probe_k,
    }
    for key, value in checks.items():
        if not value > 0:
            raise UserError(f"{key} must be positive, got {value}")
    if cfg.train.resume not in ("auto", "force", "restart"):
        raise UserError(f"train.resume must be auto, force or restart, got {cfg.train.resume!r}")
    if cfg.sg.placement not in ("all", "top", "between-layers"):
        raise UserError(f"sg.placement must be all, top or between-layers, got {cfg.sg.placement!r}")
    if cfg.sg.dtype not in ("float32", "bfloat16"):
        raise UserError(f"sg.dtype must be float32 or bfloat16, got {cfg.sg.dtype!r}")
    if cfg.sg.placement == "between-layers" and (cfg.model.num_layers < 2 or cfg.sg.name != "on"):
        raise UserError("sg.placement=between-layers needs sg=on and model.num_layers >= 2")
    for key in ("train.max_samples", "optim.clip", "sg.clip", "sg.hidden_size", "sg.start_step", "sg.oracle_lookahead", "train.threads", "diag.every"):
        value = cfg[key.split(".")[0]][key.split(".")[1]]
        if value < 0:
            raise UserError(f"{key} must be >= 0, got {value}")


def pick_device(name: str, slot: Slot = Slot()) -> torch.device:
    """cpu, or a GPU: with several cells at once on a machine with several GPUs, each cell its own
    (job number mod the number of GPUs)."""
    if name not in ("auto", "cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA GPU is visible to PyTorch (use device=cpu or device=auto)")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    gpus = torch.cuda.device_count()
    return torch.device("cuda", slot.index % gpus if slot.jobs > 1 else 0)


def usable_cores() -> int:
    """The cores this process may run on (a SLURM job's cpus_per_task, a taskset), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
