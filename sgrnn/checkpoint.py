"""Checkpoints that let a run continue exactly where it stopped.

A checkpoint holds everything the next update depends on: the core, M, the optimiser (both
parameter groups), the global and the task's RNG states, the task's stream position and
curriculum (or PTB's early-stopping state), the carried recurrent state, the step, and the
logger's running sums. Written atomically (temporary file, flush, fsync, rename); the previous
checkpoint is kept as ``checkpoint.prev.pt``, the fallback when the newest is unreadable.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from sgrnn.config import schema_default
from sgrnn.errors import Refused, UserError
from sgrnn.runs import last_gain

log = logging.getLogger(__name__)

LATEST, PREVIOUS = "checkpoint.pt", "checkpoint.prev.pt"
# Keys that may change between a run and its resumption: budgets and presentation only.
RESUMABLE_CHANGES = {
    "train.max_steps", "train.max_minutes", "train.max_samples", "train.stop_flat", "train.flat_after",
    "train.progress", "train.threads", "train.resume",
    "train.log_every", "train.checkpoint_every", "task.data_dir",
}


def save(run, elapsed_s: float) -> Path:
    """Write the checkpoint of ``run`` atomically; on failure the previous one is untouched."""
    state = {
        "step": run.step,
        "elapsed_s": elapsed_s,
        "config": OmegaConf.to_container(run.cfg, resolve=True),
        "core": run.core.state_dict(),
        "sg": run.sg.state_dict(),
        "opt": run.opt.state_dict(),
        "rng": torch.get_rng_state(),
        "diag_rng": run.diag_rng.get_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else None,
        "task": run.task.state_dict(),
        "log": run.log.state_dict(),
        "state": run.state,
        "grads": [p.grad for p in run.core.parameters()],  # summed so far (optim.step_every=episode), else None
    }
    folder = run.log.dir
    tmp = folder / (LATEST + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if (folder / LATEST).exists():
            os.replace(folder / LATEST, folder / PREVIOUS)
        os.replace(tmp, folder / LATEST)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = f"the previous checkpoint ({LATEST if (folder / LATEST).exists() else PREVIOUS}) is kept" if any(
            (folder / n).exists() for n in (LATEST, PREVIOUS)) else "no earlier checkpoint exists"
        raise UserError(f"cannot write a checkpoint in {folder} at step {run.step}: {e.strerror or e}; {kept}") from None
    return folder / LATEST


def load(folder: Path) -> dict | None:
    """The newest readable checkpoint in ``folder`` (None if there is none). An unreadable one is
    reported, and the previous one is used when it is readable."""
    errors = []
    for name in (LATEST, PREVIOUS):
        path = folder / name
        if not path.exists():
            continue
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            if not isinstance(ckpt, dict) or "step" not in ckpt:
                raise ValueError("not an sgrnn checkpoint")
        except Exception as e:  # noqa: BLE001  (any unpickling error means the file is corrupt)
            errors.append(f"{path} is corrupt ({type(e).__name__}: {str(e)[:80]})")
            log.warning("%s", errors[-1])
            continue
        if errors:
            log.warning("falling back to %s (step %d)", path, ckpt["step"])
        ckpt["source"] = name  # which file it came from (not saved back)
        return ckpt
    if errors:
        raise UserError("; ".join(errors) + "; no readable checkpoint is left: delete the folder's checkpoint*.pt "
                        "files to start over, or use another hydra.run.dir")
    return None


# What a checkpoint's tensors are shaped by: under train.resume=force these must not change.
STRUCTURE = {"task.name", "task.bits", "task.embedding_size", "model.hidden_size", "model.num_layers",
             "sg.hidden_size", "sg.placement", "sg.fit"}


def structure(config: dict) -> str:
    """The method's kind as its checkpoint holds it: placebo, batch-mean and centred train the same M as on
    and keep nothing else (frozen keeps its random map too)."""
    name = (config.get("sg") or {}).get("name", "off")
    return {"placebo": "on", "batch-mean": "on", "centred": "on"}.get(name, name)


def config_changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """'key: old -> new' for every leaf that differs, except budgets and presentation."""
    out = []
    for key in sorted(set(old) | set(new)):
        full = f"{prefix}{key}"
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, full + ".")
        elif a != b and full not in RESUMABLE_CHANGES and not (a == "<absent>" and b == schema_default(full)):
            # (an option the old run predates ran as its default does: only another value is a change)
            out.append(f"{full}: {a} -> {b}")
    return out


def set_aside_corrupt(folder: Path, ckpt: dict) -> None:
    """After a fallback to the previous checkpoint, the corrupt newest one is renamed
    (``checkpoint.pt.corrupt``): the next save must not rotate it over the good one."""
    if ckpt.get("source") == PREVIOUS and (folder / LATEST).exists():
        os.replace(folder / LATEST, folder / (LATEST + ".corrupt"))
        log.warning("%s set aside as %s.corrupt; %s is kept until a newer checkpoint is written",
                    folder / LATEST, LATEST, PREVIOUS)


def restore(run, ckpt: dict) -> None:
    """Put a run back in the state it was in when ``ckpt`` was written (``resume_point`` has
    refused a checkpoint of another model or method, forced or not)."""
    run.core.load_state_dict(ckpt["core"])
    run.sg.load_state_dict(ckpt["sg"])
    rates = [g["lr"] for g in run.opt.param_groups]  # the config's (optim.lr, sg.lr)
    run.opt.load_state_dict(ckpt["opt"])  # Adam's moments, and the rates they were saved with
    for group, lr in zip(run.opt.param_groups, rates):  # a forced resume with other rates runs at them
        group["lr"] = lr
    torch.set_rng_state(ckpt["rng"])
    run.diag_rng.set_state(ckpt["diag_rng"])
    if ckpt["cuda_rng"] is not None and run.device.type == "cuda":
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    run.task.load_state_dict(ckpt["task"])
    run.log.load_state_dict(ckpt["log"])
    run.state = None if ckpt["state"] is None else ckpt["state"].to(run.device)
    run.step = ckpt["step"]
    for p, g in zip(run.core.parameters(), ckpt.get("grads") or []):  # (none in checkpoints before the option)
        p.grad = None if g is None else g.to(run.device)


# ---------------------------------------------------------------------------- resume policy


def resume_point(cfg: DictConfig, run_dir: Path) -> Optional[dict]:
    """The checkpoint to continue from, after checking it was made with the same config."""
    if cfg.train.resume == "restart":
        return None
    ckpt = load(run_dir)
    if ckpt and cfg.train.resume == "force":
        new = OmegaConf.to_container(cfg, resolve=True)
        changes = [c for c in config_changes(ckpt["config"], new) if c.split(":")[0] in STRUCTURE]
        if changes or structure(ckpt["config"]) != structure(new):
            raise Refused(f"{run_dir} holds a run of another model or method ({'; '.join(changes) or 'sg'}): "
                          "train.resume=force continues a run of the same model and method only; use another "
                          "hydra.run.dir, or train.resume=restart to start over")
    if ckpt and cfg.train.resume != "force":
        changes = config_changes(ckpt["config"], OmegaConf.to_container(cfg, resolve=True))
        if changes:
            raise Refused(f"{run_dir} holds a run with another config ({'; '.join(changes)}); "
                            "use another hydra.run.dir, train.resume=force to continue it anyway, "
                            "or train.resume=restart to start over")
    return ckpt


def completed(cfg: DictConfig, run_dir: Path) -> Optional[dict]:
    """The summary of a finished run of this config in ``run_dir`` (re-runs skip it)."""
    path = run_dir / "summary.json"
    if cfg.train.resume == "restart" or not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("%s is unreadable (%s): the run continues from its checkpoint, if any, and rewrites it", path, e)
        return None
    if not isinstance(summary, dict) or summary.get("status") != "complete" or not isinstance(summary.get("config"), dict):
        return None
    changes = config_changes(summary["config"], OmegaConf.to_container(cfg, resolve=True))
    if changes and cfg.train.resume != "force":
        raise Refused(f"{run_dir} holds a finished run with another config ({'; '.join(changes)}); "
                        "use another hydra.run.dir, or train.resume=restart to replace it")
    # A run that stopped at a budget goes on when, at what it spent, no budget is spent any more.
    if (summary.get("stop_reason") in BUDGETS and (run_dir / LATEST).exists()
            and summary_spent(cfg.train, summary) is None):
        log.info("%s finished at its %s; the budget is larger now (train.max_steps=%s, max_samples=%s, max_minutes=%s, "
                 "stop_flat=%s, flat_after=%s): it continues from its last checkpoint", run_dir, summary["stop_reason"],
                 cfg.train.max_steps, cfg.train.max_samples, cfg.train.max_minutes, cfg.train.stop_flat,
                 cfg.train.flat_after)
        return None
    return summary


BUDGETS = ("max_steps", "max_samples", "max_minutes", "flat")


def budget_spent(train, steps: int, samples: int, elapsed_s: float, gained_at: int = 0) -> Optional[str]:
    """The budget of ``train`` (the config's train node) that a run has spent at these counts, if
    any: the trainer stops there, and a finished run whose budget is raised past it goes on.
    ``gained_at``: the timestep-samples at which a curriculum run last solved a longer length
    (0: never; ``sgrnn.runs.last_gain``), for ``train.stop_flat``."""
    if steps >= train.max_steps:
        return "max_steps"
    if train.max_samples and samples >= train.max_samples:
        return "max_samples"
    if elapsed_s > 60 * train.max_minutes:
        return "max_minutes"
    if train.get("stop_flat") and samples >= train.flat_after and gained_at <= (1 - train.stop_flat) * samples:
        return "flat"
    return None


def summary_spent(train, summary: dict) -> Optional[str]:
    """``budget_spent`` at a finished run's counts, as its summary.json records them."""
    return budget_spent(train, summary.get("steps", 0), summary.get("samples", 0), summary.get("wall_s", 0),
                        last_gain(summary.get("solved_at") or []))
