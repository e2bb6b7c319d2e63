"""What a run leaves behind: TensorBoard scalars (namespaced), a tqdm bar, and summary.json.

Per-update values stay on the device and are summed there; the host reads them once every
``train.log_every`` updates, so logging adds no sync to the hot path.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from tqdm import tqdm

from sgrnn.errors import UserError
from sgrnn.runtime import cell_command, host, source_commit


def atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Stopwatch:
    """Wall time per phase of the updates, summed over the run. On a GPU each lap synchronises
    (``train.timing=false`` turns the laps off there)."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.enabled, self.sync = enabled, device.type == "cuda"
        self.totals: dict[str, float] = {}
        self.t = 0.0

    def start(self) -> None:
        if self.enabled:
            self.t = self._now()

    def lap(self, phase: str) -> None:
        if self.enabled:
            now = self._now()
            self.totals[phase] = self.totals.get(phase, 0.0) + now - self.t
            self.t = now

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def per_update_ms(self, updates: int) -> dict:
        ms = {f"{k}_ms": round(1e3 * v / max(updates, 1), 4) for k, v in self.totals.items()}
        return {**ms, "update_ms": round(sum(ms.values()), 4)} if ms else {}


class NonFiniteLoss(UserError):
    def __init__(self, step: int):
        super().__init__(f"the loss became NaN or inf at update {step}")
        self.step = step


class RunLog:
    def __init__(self, run_dir: str | Path, cfg, device: torch.device, task, purge_step: int | None = None):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg, self.device, self.task = cfg, device, task
        # On resumption, events the interrupted run wrote after its checkpoint are dropped; a run
        # that starts over where one was killed before its first checkpoint drops all of them.
        fresh = purge_step is None
        if fresh and any(self.dir.glob("events.out.tfevents.*")):
            purge_step = 0
        self.writer = SummaryWriter(str(self.dir), purge_step=purge_step)
        if fresh:  # written once, at step 0 (a resumed run has them already)
            self.writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```", 0)
        if cfg.sg.name != "off" and fresh:  # the SG scale factor the paper leaves open: visible
            self.writer.add_scalar("sg/scale", cfg.sg.scale, 0)
            self.writer.add_scalar("sg/scale_in_target", float(cfg.sg.scale_in_target), 0)
        self.every = cfg.train.log_every
        self.samples = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.start = self.last_time = time.monotonic()
        self.last_step = 0
        self.solved_at: list[dict] = []  # time to result: when each curriculum length was solved
        self.clock = Stopwatch(device, cfg.train.timing)
        # Curves from the held-out instruments (sgrnn.diag), for summary.json.
        # Curves over training, saved in summary.json (sgrnn report reads them): the instruments'
        # (sgrnn.diag) and, for PTB, each validation.
        self.diag: dict = {"sg_quality": [], "dependency_profiles": [], "valid_curve": []}
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # first update with a non-finite loss
        show = cfg.train.progress if cfg.train.progress is not None else sys.stderr.isatty()
        self.budget_s = 60 * cfg.train.max_minutes
        self.bar = tqdm(total=100, disable=not show, unit="%", bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")

    def update(self, step: int, seg, loss, grad_norm, sg_stats, episode: dict) -> None:
        """Called once per update with on-device tensors; writes every ``log_every`` updates."""
        self.samples += seg.x.shape[0] * seg.x.shape[1]
        bad = (self.first_bad < 0) & ~torch.isfinite(loss)  # kept on the device: no sync per update
        self.first_bad = torch.where(bad, torch.full_like(self.first_bad, step), self.first_bad)
        self._add("train/loss", loss)
        if grad_norm is not None:
            self._add("train/grad_norm", grad_norm)
        for k, v in (sg_stats or {}).items():
            self._add(k, v)
        self.count += 1
        self.scalars(step, episode)
        if step % self.every == 0:
            self.flush(step)

    def _add(self, key: str, value: torch.Tensor) -> None:
        self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()

    def scalars(self, step: int, values: dict) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        if "curriculum/length_solved" in values:
            wall = round(self.elapsed(), 3)
            self.solved_at.append({"length": values["curriculum/length_solved"], "step": step,
                                   "samples": self.samples, "wall_s": wall})
        if "val/bpc" in values:
            self.diag.setdefault("valid_curve", []).append(
                {"step": step, "samples": self.samples, "wall_s": round(self.elapsed(), 3), "bpc": values["val/bpc"]})
        if values:
            self.bar.set_postfix(self.task.progress(), refresh=False)

    def elapsed(self) -> float:
        """Wall seconds of the run, earlier sessions of a resumed run included."""
        return time.monotonic() - self.start

    def check_finite(self) -> None:
        """Stop with a clear line when a loss was NaN or inf (one host sync)."""
        bad = int(self.first_bad)
        if bad >= 0:
            raise NonFiniteLoss(bad)

    def state_dict(self) -> dict:
        return {"samples": self.samples, "sums": self.sums, "count": self.count, "solved_at": self.solved_at,
                "last_step": self.last_step, "elapsed_s": self.elapsed(), "clock": self.clock.totals, "diag": self.diag}

    def load_state_dict(self, state: dict) -> None:
        self.samples, self.count, self.solved_at = state["samples"], state["count"], state["solved_at"]
        self.clock.totals, self.diag = dict(state["clock"]), state["diag"]
        self.sums = {k: v.to(self.device) for k, v in state["sums"].items()}
        self.last_step = state["last_step"] + state["count"]  # perf/steps_per_s restarts its window here
        self.last_time = time.monotonic()
        self.start = self.last_time - state["elapsed_s"]

    def flush(self, step: int) -> None:
        self.check_finite()
        now = time.monotonic()
        means = {k: (v / self.count).item() for k, v in self.sums.items()}  # the one host sync
        for k, v in means.items():
            self.writer.add_scalar(k, v, step)
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.writer.add_scalar("perf/steps_per_s", rate, step)
        self.writer.add_scalar("perf/samples", self.samples, step)
        self.sums, self.count, self.last_time, self.last_step = {}, 0, now, step
        self.bar.set_postfix({"step": step, "loss": f"{means.get('train/loss', math.nan):.3f}", **self.task.progress()},
                             refresh=False)
        done = max(step / self.cfg.train.max_steps, self.elapsed() / self.budget_s,
                   self.samples / (self.cfg.train.max_samples or math.inf))
        self.bar.update(min(100.0, 100.0 * done) - self.bar.n)

    def close(self, step: int, stop: str, task_summary: dict, status: str = "complete") -> dict:
        """Write summary.json; for a finished run also the last window's means and the result
        scalars. An interrupted run writes no scalar: its running sums are in the checkpoint,
        and the resumed run writes them where the uninterrupted one would."""
        final = status == "complete"
        if self.count and final:
            self.flush(step)
        self.bar.close()
        cfg = self.cfg
        summary = {
            "status": status,
            "stop_reason": stop,
            "task": cfg.task.name,
            "sg": cfg.sg.name,
            "T": cfg.T,
            "seed": cfg.seed,
            "steps": step,
            "samples": self.samples,
            "wall_s": round(self.elapsed(), 3),
            # Cost accounting: mean wall time per update by phase, and throughput.
            "cost": {**self.clock.per_update_ms(step), "samples_per_s": round(self.samples / max(self.elapsed(), 1e-9), 1)},
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "host": host(self.device),
            "command": cell_command(),
            "commit": source_commit(),
            "sg_scale": cfg.sg.scale if cfg.sg.name != "off" else None,
            "sg_scale_in_target": cfg.sg.scale_in_target if cfg.sg.name != "off" else None,
            "sg_placement": cfg.sg.placement if cfg.sg.name != "off" else None,
            "sg_start_step": cfg.sg.start_step if cfg.sg.name != "off" else None,
            **task_summary,
            **({"solved_at": self.solved_at} if "max_solved" in task_summary else {}),
            **self.diag,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        metrics = _flat_metrics(task_summary)
        hp = {"task": cfg.task.name, "sg": cfg.sg.name, "T": cfg.T, "seed": cfg.seed, "sg_scale": cfg.sg.scale,
              "hidden": cfg.model.hidden_size, "lr": cfg.optim.lr, "sg_lr": cfg.sg.lr}
        if final:
            for part in hparams(hp, metrics):
                self.writer.file_writer.add_summary(part)
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, step)
        self.writer.close()
        atomic_write_json(self.dir / "summary.json", summary)
        return summary


def _flat_metrics(task_summary: dict) -> dict:
    """The headline numbers, as TensorBoard hparams metrics."""
    out = {}
    if "max_solved" in task_summary:
        for k in ("length", "span", "N", "R"):
            out[f"result/max_solved_{k}"] = float(task_summary["max_solved"][k])
    for k in ("best_valid_bpc", "test_bpc"):
        if k in task_summary and math.isfinite(task_summary[k]):
            out[f"result/{k}"] = float(task_summary[k])
    return out
