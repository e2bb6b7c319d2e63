"""Exact resume for every method and task: a run killed at any update and re-run from its folder
ends with the same summary.json, parameters, optimiser state and TensorBoard scalars as the run
that was never interrupted (wall times aside). The kill is in-process (an exception out of the
loop right after an update, as SIGKILL leaves things: no checkpoint, no summary), so the kill
points are exact; tests/test_robustness.py kills real processes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import sgrnn.tasks.ptb as ptb
import sgrnn.train as trainer
from sgrnn import checkpoint
from sgrnn.config import make_config
from sgrnn.runtime import Interrupted

TINY = ["model.hidden_size=12", "train.log_every=4", "train.checkpoint_every=7", "train.threads=1", "device=cpu",
        "diag.every=10", "diag.batch_size=4", "diag.probe_k=4"]
COPY = ["task=copy", "T=2", "task.start_N=4", "task.batch_size=8"]  # episodes of 10 steps: 5 segments
REPEAT = ["task=repeat-copy", "T=2", "task.start_N=3", "task.start_R=2", "task.batch_size=8"]
PTB = ["task=ptb", "T=4", "task.batch_size=4", "task.embedding_size=8", "task.val_every=9", "task.val_symbols=300",
       "task.eval_batch_size=8", "diag.length=8", "sg.oracle_lookahead=8"]
STEPS = 45
KILLS = (5, 10, 23, 24)  # before the first checkpoint; 3 after one (mid-episode); 2 after one; at once after resuming at 21

METHODS = {
    "off": ["sg=off"],
    "on-lambda": ["sg=on"],
    "on-bootstrap": ["sg=on", "sg.target=bootstrap"],
    "on-lambda-window3": ["sg=on", "sg.window=3", "sg.lambda_=0.5"],
    "on-undiscounted": ["sg=on", "sg.scale_in_target=false"],
    "on-ridge": ["sg=on", "sg.fit=ridge", "sg.ridge_every=3", "sg.input_norm=rms"],
    "on-history": ["sg=on", "sg.history=4", "sg.input_norm=rms", "sg.scale=1"],
    "aux": ["sg=aux"],
    "placebo": ["sg=placebo"],
    "frozen": ["sg=frozen"],  # its random map is in the checkpoint
    "constant": ["sg=constant"],
    "tracked": ["sg=tracked", "sg.mean_decay=0.5"],  # its running means and its place in the episode too
    "oracle": ["sg=oracle"],
    "on-episode": ["sg=on", "optim.step_every=episode"],  # the core's summed gradient mid-episode is in the checkpoint
    "between-layers": ["sg=on", "sg.placement=between-layers", "sg.history=0", "model.num_layers=2"],
}
CASES = [(m, "copy") for m in METHODS] + [("on-lambda", "repeat-copy"), ("aux", "repeat-copy"),
                                          ("on-lambda", "ptb"), ("oracle", "ptb"), ("off", "ptb"),
                                          ("on-history", "ptb")]


class Killed(Exception):
    pass


@pytest.fixture(autouse=True)
def event_files_in_order(monkeypatch):
    """TensorBoard reads a folder's event files in name order: time (seconds), host, pid, then a
    per-process counter. Processes differ in time or pid; the in-process runs here share both,
    so the counter is zero-padded to keep the writers' order (9 before 10)."""
    from tensorboard.summary.writer import event_file_writer

    count = iter(range(10**6))
    monkeypatch.setattr(event_file_writer, "_global_uid", type("Uid", (), {"get": lambda self: f"{next(count):06d}"})())


@pytest.fixture
def tiny_ptb(tmp_path, monkeypatch) -> Path:
    """A synthetic corpus in PTB's file format, accepted in place of the real files' checksums."""
    gen = torch.Generator().manual_seed(0)
    folder = tmp_path / "tiny-ptb"
    folder.mkdir()
    letters = "abcdefgh\n"
    sums = {}
    for split, n in (("train", 4000), ("valid", 600), ("test", 600)):
        text = "".join(letters[i] for i in torch.randint(len(letters), (n,), generator=gen).tolist()) + letters
        raw = "".join(f"{c} " for c in text).encode()
        (folder / ptb.FILES[split]).write_bytes(raw)
        sums[split] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(ptb, "SHA256", sums)
    return folder


def overrides(method: str, task: str, data: Path | None) -> list[str]:
    base = {"copy": COPY, "repeat-copy": REPEAT, "ptb": PTB}[task]
    return [*base, *METHODS[method], *TINY, f"train.max_steps={STEPS}",
            *([f"task.data_dir={data}"] if data else [])]


def train_killed_at(cfg, folder: Path, at: int, monkeypatch) -> None:
    """Train in ``folder`` until update ``at`` is done, then stop as a SIGKILL would."""
    real = trainer.update
    held = {}

    def update(run):
        real(run)
        held["run"] = run
        if run.step == at:
            raise Killed

    monkeypatch.setattr(trainer, "update", update)
    with pytest.raises(Killed):
        trainer.train(cfg, folder)
    monkeypatch.setattr(trainer, "update", real)
    held["run"].log.writer.close()  # (its events past the checkpoint are purged on resume)


def train_signalled_at(cfg, folder: Path, at: int, signum, monkeypatch) -> None:
    """Train in ``folder`` and send this process ``signum`` during update ``at``: the run stops
    as under SIGTERM or a cluster's preemption signal (checkpoint, interrupted summary)."""
    real = trainer.update

    def update(run):
        real(run)
        if run.step == at:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(trainer, "update", update)
    with pytest.raises(Interrupted):
        trainer.train(cfg, folder)
    monkeypatch.setattr(trainer, "update", real)
    assert json.loads((folder / "summary.json").read_text())["status"] == "interrupted"


def comparable(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in ("wall_s", "cost")}
    for key in ("solved_at", "valid_curve"):
        if key in out:
            out[key] = [{k: v for k, v in m.items() if k != "wall_s"} for m in out[key]]
    return out


def scalars(folder: Path) -> dict:
    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]
            if not tag.startswith("perf/steps_per_s")}


def same_tensors(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("method,task", CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_a_run_killed_anywhere_resumes_to_exactly_the_uninterrupted_run(method, task, tmp_path, monkeypatch, request):
    data = request.getfixturevalue("tiny_ptb") if task == "ptb" else None
    cfg = make_config(*overrides(method, task, data))
    full = trainer.train(cfg, tmp_path / "full")
    for at in KILLS:
        train_killed_at(cfg, tmp_path / "killed", at, monkeypatch)
        assert not (tmp_path / "killed" / "summary.json").exists()
    resumed = trainer.train(cfg, tmp_path / "killed")
    assert resumed["steps"] == full["steps"] == STEPS
    assert comparable(resumed) == comparable(full)
    a = torch.load(tmp_path / "full" / checkpoint.LATEST, weights_only=False)
    b = torch.load(tmp_path / "killed" / checkpoint.LATEST, weights_only=False)
    for part in ("core", "sg", "opt", "rng", "task", "state"):
        same_tensors(a[part], b[part], part)
    assert scalars(tmp_path / "killed") == scalars(tmp_path / "full")


def test_the_lambda_targets_waiting_at_a_checkpoint_are_in_it(tmp_path):
    """What made resume inexact: the segments whose target was still pending were dropped."""
    run = trainer.setup(make_config(*overrides("on-lambda", "copy", None), "sg.window=3"), tmp_path)
    for _ in range(3):  # the episode's first segment, then two boundaries: both still pending
        trainer.update(run)
    assert len(run.sg.target.pending) == 2
    trainer.save_checkpoint(run)
    again = trainer.setup(make_config(*overrides("on-lambda", "copy", None), "sg.window=3"), tmp_path)
    assert len(again.sg.target.pending) == 2
    for p, q in zip(run.sg.target.pending, again.sg.target.pending):
        same_tensors(vars(p), vars(q))


@pytest.mark.parametrize("method", ["on-lambda", "placebo"])
def test_a_run_stopped_by_signals_resumes_to_exactly_the_uninterrupted_run(method, tmp_path, monkeypatch):
    """SIGTERM, then the preemption signal (SIGUSR2), each mid-episode: the interrupted run's
    summary and its resumptions leave no scalar the uninterrupted run does not have."""
    cfg = make_config(*overrides(method, "copy", None))
    full = trainer.train(cfg, tmp_path / "full")
    for at, signum in ((9, signal.SIGTERM), (23, signal.SIGUSR2)):
        train_signalled_at(cfg, tmp_path / "stopped", at, signum, monkeypatch)
    resumed = trainer.train(cfg, tmp_path / "stopped")
    assert comparable(resumed) == comparable(full)
    assert scalars(tmp_path / "stopped") == scalars(tmp_path / "full")


@pytest.mark.parametrize("budget", [["train.max_steps=23"], ["train.max_samples=368", "train.max_steps=1000"]])
def test_a_finished_run_given_a_larger_budget_continues_to_exactly_the_run_with_that_budget(budget, tmp_path):
    """A run that ended at its budget goes on from its last checkpoint when the budget is raised
    (the long-budget studies extend their cells); the same budget again does nothing."""
    base = overrides("on-lambda", "copy", None)[:-1]  # less train.max_steps
    full = trainer.train(make_config(*base, f"train.max_steps={STEPS}"), tmp_path / "full")
    first = trainer.train(make_config(*base, *budget), tmp_path / "grown")
    assert first["stop_reason"] == budget[0].split("=")[0].split(".")[1] and 20 <= first["steps"] < STEPS
    written = (tmp_path / "grown" / "summary.json").read_bytes()
    trainer.train(make_config(*base, *budget), tmp_path / "grown")
    assert (tmp_path / "grown" / "summary.json").read_bytes() == written  # nothing to do: the same budget
    grown = trainer.train(make_config(*base, f"train.max_steps={STEPS}"), tmp_path / "grown")
    assert grown["steps"] == STEPS and comparable(grown) == comparable(full)
    # TensorBoard keeps the first budget's end-of-run points (at a step where the uninterrupted
    # run, logging every 4 updates, has none); every other point is the uninterrupted run's.
    end = first["steps"]
    assert end % 4 and {tag: [p for p in points if p[0] != end] for tag, points in scalars(tmp_path / "grown").items()} \
        == scalars(tmp_path / "full")


def test_a_curriculum_run_stops_once_its_length_is_flat_and_goes_on_exactly_when_the_rule_is_lifted(tmp_path):
    """train.stop_flat: past train.flat_after timestep-samples, the run stops at the first update
    where its largest length has not grown over that fraction of its samples (a length solved
    again at task.max_N is no gain); lifting the rule continues it to exactly the run without it."""
    from sgrnn.runs import last_gain

    base = [*overrides("off", "copy", None)[:-1], "task.start_N=1", "task.max_N=2", "task.threshold=100",
            "train.max_steps=60"]  # every episode "solved": N=1 at update 10, N=2 at 25, then again every 15
    full = trainer.train(make_config(*base), tmp_path / "full")
    assert [p["length"] for p in full["solved_at"]] == [4, 5, 5, 5] and full["stop_reason"] == "max_steps"
    gain = full["solved_at"][1]["samples"]
    flat = trainer.train(make_config(*base, "train.stop_flat=0.4", f"train.flat_after={gain}"), tmp_path / "flat")
    assert flat["stop_reason"] == "flat" and flat["steps"] < 60 and len(flat["solved_at"]) == 3  # 5 solved twice
    assert last_gain(flat["solved_at"]) == gain <= 0.6 * flat["samples"]  # from the first time 5 was solved
    assert comparable(flat)["solved_at"] == [p for p in comparable(full)["solved_at"] if p["samples"] <= flat["samples"]]
    early = trainer.train(make_config(*base, "train.stop_flat=0.4", f"train.flat_after={gain}",
                                      f"train.max_steps={flat['steps'] - 1}"), tmp_path / "early")
    assert early["stop_reason"] == "max_steps"  # one update before, the rule did not hold yet
    assert last_gain(early["solved_at"]) > 0.6 * early["samples"]
    grown = trainer.train(make_config(*base), tmp_path / "flat")
    assert comparable(grown) == comparable(full)


def test_a_forced_resume_with_other_learning_rates_runs_at_them(tmp_path):
    """Adam's state comes back from the checkpoint, its rates from the config: a run resumed with
    train.resume=force and a lower optim.lr (a step-size drop at a plateau) uses the lower rate."""
    small = ["sg=on", "model.hidden_size=12", "task.batch_size=8", "device=cpu", "T=3", "train.threads=1"]
    run = trainer.setup(make_config(*small), tmp_path / "a")
    for _ in range(3):
        trainer.update(run)
    checkpoint.save(run, 1.0)
    lower = trainer.setup(make_config(*small, "optim.lr=0.0001", "sg.lr=0.0002", "train.resume=force"), tmp_path / "b",
                          ckpt=checkpoint.load(tmp_path / "a"))
    assert lower.step == 3 and [g["lr"] for g in lower.opt.param_groups] == [1e-4, 2e-4]
    moments = [lower.opt.state[p]["exp_avg"] for p in lower.core.parameters()]
    saved = [run.opt.state[p]["exp_avg"] for p in run.core.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(moments, saved))
    same = trainer.setup(make_config(*small), tmp_path / "c", ckpt=checkpoint.load(tmp_path / "a"))
    assert [g["lr"] for g in same.opt.param_groups] == [3e-3, 1e-3]
