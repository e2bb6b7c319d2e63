"""Where a run executes: its device and threads, its place in a sweep, the lock on its folder,
and the signals that stop it cleanly.

- :class:`RunLock`: an exclusive OS lock (``filelock``, ``flock`` on Linux) on the run folder
  for as long as the run trains. A second process for the same folder stops at once with one
  line; the lock dies with its process, so after a SIGKILL the same command resumes at once.
- :func:`stop_signals`: SIGINT, SIGTERM and the cluster's preemption signal (SLURM's
  ``--signal``, which submitit sets to SIGUSR2 or ``$SUBMITIT_PREEMPT_SIGNAL``) set a flag that
  the loop reads between updates; the trainer then writes a checkpoint and stops.
  :func:`hand_over` then passes the preemption signal to the handler that was there before
  (submitit's, which requeues the job); the requeued job resumes from that checkpoint.
"""

from __future__ import annotations

import os
import platform
import shlex
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from filelock import FileLock, Timeout

from sgrnn.errors import Refused, UserError

LOCK, LOCK_INFO = ".sgrnn.lock", ".sgrnn.lock.owner"


@dataclass(frozen=True)
class Slot:
    """Where a cell runs among the cells of a sweep that run at once (Hydra's joblib launcher)."""

    index: int = 0  # the cell's job number in the sweep
    jobs: int = 1  # cells running at the same time on this machine


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


def host(device: torch.device) -> dict:
    """What a run ran on, for its summary: the report prints it beside every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    out = {"cpu": cpu, "cores": usable_cores(), "torch": torch.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def cell_command() -> Optional[str]:
    """The command that reruns this cell alone (``sgrnn train`` and the cell's own overrides)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return " ".join(["sgrnn train", *map(shlex.quote, HydraConfig.get().overrides.task)])


def save_hydra_files(cfg, run_dir: Path) -> None:
    """The run's ``.hydra/`` (config.yaml, hydra.yaml, overrides.yaml, as Hydra writes them), once
    the command is accepted: Hydra's own writing is off (``hydra.output_subdir: null`` in
    conf/config.yaml) so that a refused command cannot overwrite another run's."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    folder = Path(run_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    for name, node in (("config.yaml", cfg), ("hydra.yaml", OmegaConf.create({"hydra": hydra_cfg})),
                       ("overrides.yaml", OmegaConf.create(list(hydra_cfg.overrides.task)))):
        OmegaConf.save(node, folder / name)


def source_commit() -> Optional[str]:
    """The git commit of the sgrnn source that ran (None outside a git checkout), '+' if edited."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "sgrnn"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + "+" * bool(dirty)) or None


class InUse(Refused):
    """The run folder is locked by another live process; nothing in it was touched."""


class RunLock:
    """``with RunLock(folder):`` holds an exclusive lock on ``folder`` or raises :class:`InUse`.

    The lock is ``flock`` on ``.sgrnn.lock`` (the kernel releases it when the process dies,
    however it dies). Who holds it (pid, start time) is in ``.sgrnn.lock.owner``, written by
    :meth:`claim` once the command is accepted (a refused command leaves the last owner's line):
    filelock truncates the lock file itself when it tries to take it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.lock = FileLock(str(self.folder / LOCK), timeout=0)

    def __enter__(self) -> "RunLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
        except Timeout:
            raise InUse(f"{self.folder} is in use by another sgrnn process ({self.owner()})") from None
        return self

    def claim(self) -> None:
        """Record this process as the folder's owner (after the command was accepted)."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        (self.folder / LOCK_INFO).write_text(f"pid {os.getpid()}, since {since}\n")

    def __exit__(self, *exc) -> None:
        self.lock.release()

    def owner(self) -> str:
        try:
            return (self.folder / LOCK_INFO).read_text().strip()
        except OSError:
            return "pid unknown"


def preemption_signal() -> signal.Signals:
    """The signal a cluster sends before a time limit or a preemption: submitit's (SIGUSR2, or
    ``$SUBMITIT_PREEMPT_SIGNAL``), the one SLURM's ``--signal`` names."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, f"SIG{name}", signal.SIGUSR2)


class Interrupted(Exception):
    """A stop signal: a checkpoint was written; the same command resumes the run."""

    def __init__(self, signal_name: str, step: int):
        super().__init__(f"{signal_name} at update {step}: checkpoint written; run the same command to resume")
        self.exit_code = 128 + getattr(signal, signal_name)


class Caught(list):
    """The names of the stop signals caught (the loop stops on the first), and the handlers
    that were installed before, for :func:`hand_over`."""

    previous: dict


@contextmanager
def stop_signals():
    """SIGINT, SIGTERM and the preemption signal set a flag that the loop reads between updates
    (a second one acts as before). Yields the :class:`Caught` list the signal's name goes in."""
    caught = Caught()
    signals = (signal.SIGINT, signal.SIGTERM, preemption_signal())

    def handler(signum, frame):
        caught.append(signal.Signals(signum).name)
        signal.signal(signum, caught.previous[signum])

    caught.previous = {s: signal.getsignal(s) for s in signals}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for s in caught.previous:
            signal.signal(s, handler)
    try:
        yield caught
    finally:
        if in_main:
            for s, h in caught.previous.items():
                signal.signal(s, h)


def hand_over(caught: Caught) -> Optional[bool]:
    """After the checkpoint: give the preemption signal to the Python handler that had it before
    (submitit's checkpoint-and-requeue, which exits). Returns None when there was none."""
    signum = getattr(signal, caught[0])
    before = caught.previous.get(signum)
    if signum != preemption_signal() or not callable(before):
        return None
    before(signum, None)
    return True
