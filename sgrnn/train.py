"""The truncated-BPTT trainer, with or without synthetic gradients (DNI section 3.1).

One parameter update per segment of T steps (``optim.step_every=episode``: the core's at an
episode's end, its gradient summed over the episode's segments). ``train(cfg, run_dir)`` is the
whole experiment (the CLI is a thin Hydra wrapper around it); tests call it with shrunken configs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.utils import clip_grad_norm_

from sgrnn import checkpoint
from sgrnn.config import check as validate, make_config
from sgrnn.runtime import (Interrupted, RunLock, Slot, hand_over, pick_device, save_hydra_files, source_commit,
                            stop_signals, usable_cores)
from sgrnn.model import LSTMCore
from sgrnn.diag import diagnostics
from sgrnn.errors import UserError
from sgrnn.runs import last_gain
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
    step: int = 0  # segments trained on: updates, one a segment (the core's once an episode with optim.step_every=episode)


FIND = object()  # setup's default: look for the run folder's checkpoint


def setup(cfg: DictConfig, run_dir: str | Path, slot: Slot = Slot(), ckpt: Any = FIND) -> Run:
    """Build a run; resume it from the run folder's checkpoint when there is one (``ckpt``: the
    one :func:`checkpoint.resume_point` accepted, when the caller looked already)."""
    validate(cfg)
    if ckpt is FIND:
        ckpt = checkpoint.resume_point(cfg, Path(run_dir))
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
                  oracle=partial(oracle_gradient, core, task, cfg.sg.oracle_lookahead, cfg.T),
                  input_size=task.input_size, vocab_size=task.vocab_size)
    sg = make_method(cfg.sg, ctx)
    groups = [{"params": list(core.parameters()), "lr": cfg.optim.lr}]
    if cfg.sg.name != "off":
        groups.append({"params": sg.parameters(), "lr": cfg.sg.lr})  # M's own group (empty for the oracle)
    log.info("%s sg=%s T=%d on %s, run dir %s", cfg.task.name, cfg.sg.name, cfg.T, device, run_dir)
    run_log = RunLog(run_dir, cfg, device, task, purge_step=ckpt["step"] + 1 if ckpt else None)
    # The fused Adam kernel (since 64535b9): one kernel for all parameters, not for-each Adam's loop.
    diag_rng = torch.Generator(device).manual_seed(cfg.seed + 7919)
    run = Run(cfg, device, task, core, sg, torch.optim.Adam(groups, fused=True), run_log, diag_rng)
    if ckpt:
        checkpoint.set_aside_corrupt(Path(run_dir), ckpt)
        checkpoint.restore(run, ckpt)
        log.info("resuming from step %d (checkpoint in %s)", run.step, run_dir)
    return run


@contextmanager
def reopened(run_dir: str | Path) -> Iterator[Run]:
    """A run rebuilt from its last readable checkpoint, to measure it, read-only: the checkpoints
    are copied to a temporary folder, which the rebuilt run's log writes to and which goes at the
    end. It runs on this machine's CPU, one thread, whatever it was made on (``train.resume=force``:
    a measurement, not a continuation)."""
    folder = Path(run_dir)
    ckpt = checkpoint.load(folder) if folder.is_dir() else None  # a corrupt one: UserError, or the previous
    if ckpt is None:
        raise UserError(f"no {checkpoint.LATEST} in {run_dir}: nothing to measure")
    old = ckpt["config"]
    cfg = OmegaConf.merge(make_config(f"task={old['task']['name']}", f"sg={old['sg']['name']}"), old)
    cfg.train.threads, cfg.device, cfg.train.resume = 1, "cpu", "force"
    with tempfile.TemporaryDirectory() as tmp:
        for name in (checkpoint.LATEST, checkpoint.PREVIOUS):
            if (folder / name).exists():
                shutil.copy(folder / name, Path(tmp) / name)
        run = setup(cfg, tmp)
        try:
            yield run
        finally:
            run.log.close(run.step, "measured", run.task.summary(), status="measured")


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
    grad_norm = step(run, cfg.optim.step_every == "segment" or seg.last)
    run.state, run.step = s_end.detach(), run.step + 1
    run.log.update(run.step, seg, loss.detach(), grad_norm, sg_stats, task.record(logits.detach(), seg))
    clock.lap("other")  # clipping, optimiser, bookkeeping, logging
    run.log.scalars(run.step, task.evaluate(core, run.step))


def step(run: Run, core_too: bool) -> Optional[torch.Tensor]:
    """The optimiser's step: M's group always; the core's when ``core_too`` (every segment, or
    with optim.step_every=episode at an episode's end: until then its .grad sums the segments').
    Returns the core's gradient norm before clipping when it stepped and is clipped."""
    if not core_too:
        core = list(run.core.parameters())
        held = [p.grad for p in core]
        for p in core:
            p.grad = None  # Adam passes over a parameter without a gradient
        run.opt.step()
        run.opt.zero_grad(set_to_none=True)
        for p, g in zip(core, held):
            p.grad = g
        return None
    grad_norm = clip_grad_norm_(run.core.parameters(), run.cfg.optim.clip) if run.cfg.optim.clip else None
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    return grad_norm


def train(cfg: DictConfig, run_dir: str | Path, slot: Slot = Slot()) -> dict:
    """The whole experiment; returns (and writes) summary.json. Re-running it in the same folder
    skips a finished run and resumes an unfinished one."""
    run_dir = Path(run_dir)
    validate(cfg)
    with RunLock(run_dir) as lock:  # a second process for this folder stops here, touching nothing
        # A refusal (sgrnn.errors.Refused: another run's config is here) comes before any write.
        if (done := checkpoint.completed(cfg, run_dir)) is not None:
            log.info("%s", finished_note(run_dir, done, source_commit()))
            return done
        ckpt = checkpoint.resume_point(cfg, run_dir)
        lock.claim()
        save_hydra_files(cfg, run_dir)
        return train_locked(setup(cfg, run_dir, slot, ckpt))


def finished_note(run_dir: Path, done: dict, now: Optional[str]) -> str:
    """What a re-launched finished run says: the commit it finished at, and how to measure again."""
    then = done.get("commit") or "unknown"
    code = (f"; the code is now at {now}: train.resume=restart measures it again with this code (replacing it)"
            if now and now != then else "; train.resume=restart measures it again (replacing it)")
    return f"{run_dir} is complete already ({done.get('steps')} updates, finished at commit {then}): nothing to do{code}"


def train_locked(run: Run) -> dict:
    """The loop, with the run folder's lock held: updates until a budget, early stopping or a
    stop signal (then a checkpoint, and for the preemption signal the launcher's requeue)."""
    cfg = run.cfg
    every = cfg.train.checkpoint_every
    with stop_signals() as caught:
        while (stop := stop_reason(run, caught)) is None:
            update(run)
            if cfg.diag.every and run.step % cfg.diag.every == 0:
                run.log.scalars(run.step, diagnostics(run, run.diag_rng))
            if run.step % every == 0:
                save_checkpoint(run)
    if stop.startswith("SIG"):
        save_checkpoint(run)
        run.log.close(run.step, stop, run.task.summary(), status="interrupted")
        hand_over(caught)  # the preemption signal, under submitit: requeue the job (and exit)
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


def stop_reason(run: Run, signal_name: list) -> Optional[str]:
    if signal_name:
        return signal_name[0]
    if run.task.done:
        return "early_stopping"
    return checkpoint.budget_spent(run.cfg.train, run.step, run.log.samples, run.log.elapsed(),
                                   last_gain(run.log.solved_at))


def save_checkpoint(run: Run) -> None:
    run.log.check_finite()  # never save parameters that a NaN has reached
    checkpoint.save(run, run.log.elapsed())
