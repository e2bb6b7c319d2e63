"""Extending sgrnn as the README says: a task is one file (its stream, registered with
``@register_task``) plus one config entry (``sgrnn.config.TASKS``); an SG method is one file (its
class, registered with ``@register``) plus one config entry (``sgrnn.config.SG_OPTIONS``). Both
are added here, in this file alone, then trained and reported without editing any other module."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from sgrnn import config
from sgrnn.config import CopyTaskConfig, SGConfig, make_config
from sgrnn.report import report
from sgrnn.sg.base import METHODS, register
from sgrnn.sg.boundary import BoundarySG
from sgrnn.tasks import BUILDERS, register_task
from sgrnn.tasks.copy import CopyStream, CopyTask, Episode
from sgrnn.train import train


# ---------------------------------------------------------------------------- a task: Reverse Copy


class ReverseCopyTask(CopyTask):
    """Copy, but the N vectors are to be output last first."""

    def sample(self, N, R, batch, generator, device) -> Episode:
        ep = super().sample(N, R, batch, generator, device)
        out = slice(N + 1, 2 * N + 1)
        ep.y[out] = ep.y[out].flip(0)
        return ep


@dataclass
class ReverseCopyConfig(CopyTaskConfig):
    name: str = "reverse-copy"  # the task's name: task=reverse-copy

    def check(self) -> None:  # called with the composed config node (sgrnn.config.check)
        CopyTaskConfig.check(self)
        if self.repeat:
            raise config.UserError("task.repeat is not a Reverse Copy option")


def build(cfg, T, device, generator):
    stream = CopyStream(cfg.task, T, device, generator)
    stream.task = ReverseCopyTask(cfg.task.bits)
    return stream


# ---------------------------------------------------------------------------- an SG method: half the prediction


class Halved(BoundarySG):
    """DNI whose core is given half of M's prediction (M's own target is built as with sg=on)."""

    def give(self, g_hat: torch.Tensor, m_in: torch.Tensor) -> torch.Tensor:
        return 0.5 * g_hat


@pytest.fixture
def extended(monkeypatch):
    """The two files' registrations and config entries, undone after the test."""
    monkeypatch.setitem(config.TASKS, "reverse-copy", ReverseCopyConfig())
    monkeypatch.setitem(BUILDERS, "reverse-copy", BUILDERS.get("reverse-copy"))
    register_task("reverse-copy")(build)
    monkeypatch.setitem(config.SG_OPTIONS, "halved", SGConfig(name="halved", scale=0.1, target="lambda"))
    monkeypatch.setitem(METHODS, "halved", None)
    register("halved")(Halved)
    yield
    config.register_configs()


TINY = ["model.hidden_size=16", "task.batch_size=4", "train.max_steps=40", "train.max_minutes=5",
        "train.progress=false", "train.log_every=10", "diag.every=20", "diag.batch_size=4", "train.threads=1"]


def test_a_new_task_and_a_new_method_train_and_report(extended, tmp_path):
    runs = tmp_path / "runs"
    for sg in ("off", "halved"):
        cfg = make_config("task=reverse-copy", f"sg={sg}", "T=3", *TINY)
        summary = train(cfg, runs / "reverse-copy" / f"sg={sg},T=3,seed=0")
        assert summary["status"] == "complete" and summary["steps"] == 40
        assert summary["max_solved"]["length"] >= 0
    # the task's own data: outputs reversed
    stream = build(make_config("task=reverse-copy", *TINY), 3, torch.device("cpu"), torch.Generator().manual_seed(0))
    ep = stream.task.sample(3, 1, 2, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(ep.y[4:7, :, :8], ep.x[0:3, :, :8].flip(0))
    out = report(runs, tmp_path / "report")
    table = (out / "report.md").read_text()
    assert "### Reverse Copy: largest length solved" in table
    assert "| halved |" in table and "| BPTT |" in table


def test_a_new_task_keeps_its_own_checks(extended):
    with pytest.raises(config.UserError, match="task.repeat is not a Reverse Copy option"):
        config.check(make_config("task=reverse-copy", "task.repeat=true"))
    with pytest.raises(config.UserError, match="task.bits must be positive"):
        config.check(make_config("task=reverse-copy", "task.bits=0"))


def test_every_preset_without_m_runs_its_first_cell():
    """`sgrnn train experiment=NAME` (no -m) runs the preset's first T and seed, never the global T=3."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    config.register_configs()
    names = sorted(p.stem for p in (Path(config.conf_dir()) / "experiment").glob("*.yaml"))
    assert len(names) >= 20
    with initialize_config_dir(config_dir=config.conf_dir(), version_base="1.3"):
        for name in names:
            cfg = compose(config_name="config", overrides=[f"experiment={name}"], return_hydra_config=True)
            params = cfg.hydra.sweeper.params
            first_T = int(str(params["T"]).split(",")[0])
            assert cfg.T == first_T, name
            assert cfg.seed == int(str(params["seed"]).split(",")[0]), name
