"""Runs that survive: kill and resume, signals, idempotent sweeps, and bad input (issue 5)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sgrnn import checkpoint
from sgrnn.config import make_config
from sgrnn.errors import Refused, UserError
from sgrnn.tasks.copy import CopyStream
from sgrnn.train import train

RUN = ["task=copy", "sg=on", "T=3", "model.hidden_size=32", "task.batch_size=16", "train.threads=1",
       "train.log_every=10", "train.checkpoint_every=50", "device=cpu"]
# The kill and signal tests: episodes of 5 segments (N=4 at T=2) and checkpoints off the episodes'
# ends, so that the default SG target has segments pending at every checkpoint (issue 24).
KILL_RUN = [*[a for a in RUN if not a.startswith(("T=", "train.checkpoint_every="))], "T=2", "task.start_N=4",
            "train.checkpoint_every=47"]


def cli(*args, wait=True, env=None):
    cmd = [sys.executable, "-m", "sgrnn.cli", "train", *args]
    env = {**os.environ, **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def comparable(summary: dict) -> dict:
    """Everything but wall-clock time."""
    out = {k: v for k, v in summary.items() if k not in ("wall_s", "cost")}
    out["solved_at"] = [{k: v for k, v in m.items() if k != "wall_s"} for m in summary.get("solved_at", [])]
    return out


def wait_for_checkpoint(folder: Path, proc, timeout=120.0) -> int:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if (folder / checkpoint.LATEST).exists() and proc.poll() is None:
            time.sleep(0.3)  # somewhere between two checkpoints
            return proc.pid
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint appeared; stderr: {proc.stderr.read() if proc.poll() is not None else ''}")


def scalar_steps(folder: Path, tag: str) -> list[int]:
    ea = EventAccumulator(str(folder))
    ea.Reload()
    return [e.step for e in ea.Scalars(tag)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full")
    r = cli(*KILL_RUN, "train.max_steps=400", f"hydra.run.dir={folder}")
    assert r.returncode == 0, r.stderr
    return folder


def test_sigkill_then_same_command_resumes_to_the_same_summary(tmp_path, uninterrupted):
    args = [*KILL_RUN, "train.max_steps=400", f"hydra.run.dir={tmp_path}"]
    proc = cli(*args, wait=False)
    os.kill(wait_for_checkpoint(tmp_path, proc), signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(tmp_path / checkpoint.LATEST, weights_only=False)["step"]
    assert 0 < killed_at < 400 and not (tmp_path / "summary.json").exists()
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"resuming from step {killed_at}" in (tmp_path / "sgrnn.log").read_text()
    full = json.loads((uninterrupted / "summary.json").read_text())
    resumed = json.loads((tmp_path / "summary.json").read_text())
    assert comparable(resumed) == comparable(full)
    # One TensorBoard run, no step written twice, the same steps as the uninterrupted run.
    steps = scalar_steps(tmp_path, "train/loss")
    assert steps == sorted(set(steps)) == scalar_steps(uninterrupted, "train/loss")


@pytest.mark.slow  # SIGTERM in a subprocess; tests/test_resume.py checks it in-process in the default run
def test_sigterm_checkpoints_and_the_run_resumes(tmp_path, uninterrupted):
    args = [*KILL_RUN, "train.max_steps=400", f"hydra.run.dir={tmp_path}"]
    proc = cli(*args, wait=False)
    os.kill(wait_for_checkpoint(tmp_path, proc), signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "SIGTERM at update" in err
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["status"] == "interrupted" and s["steps"] == torch.load(tmp_path / checkpoint.LATEST, weights_only=False)["step"]
    assert cli(*args).returncode == 0
    assert comparable(json.loads((tmp_path / "summary.json").read_text())) == comparable(
        json.loads((uninterrupted / "summary.json").read_text()))


def test_relaunched_sweep_skips_finished_cells_and_a_failing_cell_loses_nothing(tmp_path):
    args = ["-m", "task=copy,ptb", *RUN[1:], "train.max_steps=20", f"hydra.sweep.dir={tmp_path}"]
    bad = tmp_path / "bad-ptb"  # files that exist (the sweep's check before any cell) but fail their checksum
    bad.mkdir()
    for split in ("train", "valid", "test"):
        (bad / f"ptb.char.{split}.txt").write_text("a b ")
    env = {"SGRNN_DATA_DIR": str(bad)}  # the PTB cell fails at run time, the Copy cell does not
    r = cli(*args, env=env)
    assert r.returncode == 1
    assert "1 cell(s) of the sweep failed" in r.stderr and "fails its SHA-256 check" in r.stderr
    (copy_summary,) = tmp_path.glob("copy/*/summary.json")
    (ptb_summary,) = tmp_path.glob("ptb/*/summary.json")
    assert json.loads(copy_summary.read_text())["status"] == "complete"
    assert json.loads(ptb_summary.read_text())["status"] == "failed"
    before = copy_summary.read_bytes(), copy_summary.stat().st_mtime_ns
    r = cli(*args, env=env)
    assert r.returncode == 1 and "complete already" in (copy_summary.parent / "sgrnn.log").read_text()
    assert (copy_summary.read_bytes(), copy_summary.stat().st_mtime_ns) == before


def run_in_process(folder: Path, *overrides: str) -> dict:
    return train(make_config(*RUN, *overrides), folder)


def test_resuming_with_a_changed_config_is_refused_unless_forced(tmp_path):
    run_in_process(tmp_path, "train.max_steps=20")
    (tmp_path / "summary.json").unlink()  # an unfinished run: only its checkpoint is there
    with pytest.raises(UserError, match=r"another config \(optim.lr: 0.003 -> 0.001\)"):
        run_in_process(tmp_path, "train.max_steps=40", "optim.lr=0.001")
    s = run_in_process(tmp_path, "train.max_steps=40", "optim.lr=0.001", "train.resume=force")
    assert s["steps"] == 40 and s["status"] == "complete"
    with pytest.raises(UserError, match="finished run with another config"):
        run_in_process(tmp_path, "train.max_steps=40", "T=4")


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    run_in_process(tmp_path, "train.max_steps=100")  # checkpoints at 50 and 100
    (tmp_path / "summary.json").unlink()
    (tmp_path / checkpoint.LATEST).write_bytes(b"not a checkpoint")
    assert checkpoint.load(tmp_path)["step"] == 50
    assert "checkpoint.pt is corrupt" in caplog.text
    assert run_in_process(tmp_path, "train.max_steps=100")["steps"] == 100
    # The save after the fallback never rotated the corrupt file over the good one.
    assert torch.load(tmp_path / checkpoint.PREVIOUS, weights_only=False)["step"] == 50
    assert (tmp_path / (checkpoint.LATEST + ".corrupt")).read_bytes() == b"not a checkpoint"
    (tmp_path / "summary.json").unlink()
    for name in (checkpoint.LATEST, checkpoint.PREVIOUS):
        (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(UserError, match="no readable checkpoint is left"):
        run_in_process(tmp_path, "train.max_steps=100")


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run_in_process(tmp_path, "train.max_steps=50")
    (tmp_path / "summary.json").unlink()

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(UserError, match="No space left on device; the previous checkpoint .* is kept"):
        run_in_process(tmp_path, "train.max_steps=100")
    monkeypatch.undo()
    assert checkpoint.load(tmp_path)["step"] == 50
    assert not list(tmp_path.glob("*.tmp"))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_loss = CopyStream.loss

    def poisoned(self, logits, y, mask):
        calls["n"] += 1
        loss = real_loss(self, logits, y, mask)
        return loss * float("nan") if calls["n"] == 63 else loss

    monkeypatch.setattr(CopyStream, "loss", poisoned)
    with pytest.raises(UserError, match="NaN or inf at update 63"):
        run_in_process(tmp_path, "train.max_steps=200")
    ckpt = checkpoint.load(tmp_path)
    assert ckpt["step"] == 50 and all(torch.isfinite(v).all() for v in ckpt["core"].values())


@pytest.mark.parametrize("args, line", [
    (["task=nope"], "sgrnn: error: unknown task option 'nope' (valid: copy, ptb, repeat-copy)"),
    (["-m", "sg=off,maybe"], "sgrnn: error: unknown sg option 'maybe' (valid: aux, batch-mean, centred, constant, frozen, off, on, oracle, placebo, tracked)"),
    (["T=0"], "sgrnn: error: T must be positive, got 0"),
    (["-m", "experiment=copy-dni", "--cfg", "job"], "sgrnn: error: -m and --cfg: one of --multirun, --cfg, --info at a time "
     "(Hydra's modes); for a sweep's config, --cfg job with the sweep's first values"),
    (["T=2.5"], "sgrnn: error: Error merging override T=2.5: Value '2.5' of type 'float' could not be converted to Integer"),
    (["-m", "T=3,-1"], "sgrnn: error: T must be positive, got -1"),
    (["model.hidden_size=0"], "sgrnn: error: model.hidden_size must be positive, got 0"),
    (["optim.lr=0"], "sgrnn: error: optim.lr must be positive, got 0.0"),
    (["sg.lr=-1e-3"], "sgrnn: error: sg.lr must be positive, got -0.001"),
    pytest.param(["device=cuda"], "sgrnn: error: device=cuda but no CUDA GPU is visible to PyTorch (use device=cpu or device=auto)",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")),
    (["hydra.run.dir=/proc/sgrnn/run"], "sgrnn: error: cannot create the run folder /proc/sgrnn/run: cannot write in /proc"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, line):
    if "device=cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    extra = [] if any(a.startswith("hydra.") for a in args) else [f"hydra.run.dir={tmp_path}/run"]
    keys = {a.split("=")[0] for a in args}
    r = cli(*args, *[a for a in RUN[:-1] if a.split("=")[0] not in keys], "train.max_steps=5", *extra)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line) and "Traceback" not in r.stdout


# ---------------------------------------------------------------------------- issue 13


@pytest.mark.parametrize("args, line", [
    (["task.bits=0"], "sgrnn: error: task.bits must be positive, got 0"),
    (["sg.scale=nan"], "sgrnn: error: sg.scale must be finite, got nan"),
    (["sg.scale=-0.1"], "sgrnn: error: sg.scale must be >= 0, got -0.1"),
    (["optim.lr=inf"], "sgrnn: error: optim.lr must be finite, got inf"),
    (["train.max_minutes=nan"], "sgrnn: error: train.max_minutes must be finite, got nan"),
    (["task.threshold=0"], "sgrnn: error: task.threshold must be positive, got 0.0"),
    (["task.threshold_unit=bit", "task.threshold=1.5"],
     "sgrnn: error: task.threshold must be below 1 bit with task.threshold_unit=bit, got 1.5"),
    (["task.window=0"], "sgrnn: error: task.window must be positive, got 0"),
    (["task.start_N=5", "task.max_N=3"], "sgrnn: error: task.start_N must be <= task.max_N, got 5 > 3"),
    (["task.repeat_norm=0"], "sgrnn: error: task.repeat_norm must be positive, got 0.0"),
    (["sg.lambda_=1.5"], "sgrnn: error: sg.lambda_ must be in [0, 1], got 1.5"),
    (["sg.window=0"], "sgrnn: error: sg.window must be positive, got 0"),
    (["sg.clip=-1"], "sgrnn: error: sg.clip must be >= 0, got -1.0"),
    (["sg.loss_weight=0"], "sgrnn: error: sg.loss_weight must be positive, got 0.0"),
    (["sg.aux_weight=nan"], "sgrnn: error: sg.aux_weight must be finite, got nan"),
    (["train.checkpoint_every=0"], "sgrnn: error: train.checkpoint_every must be positive, got 0"),
    (["train.max_samples=-5"], "sgrnn: error: train.max_samples must be >= 0, got -5"),
    (["diag.every=-1"], "sgrnn: error: diag.every must be >= 0, got -1"),
    (["train.stop_flat=1"], "sgrnn: error: train.stop_flat must be in [0, 1), got 1.0"),
    (["train.stop_flat=0.3", "train.flat_after=100", "train.max_samples=50"],
     "sgrnn: error: train.flat_after=100 is past train.max_samples=50: the run would never stop flat"),
    (["model.num_layers=0"], "sgrnn: error: model.num_layers must be positive, got 0"),
    (["-m", "sg.scale=0.1,nan"], "sgrnn: error: sg.scale must be finite, got nan"),
    (["sg.placement=middle"], "sgrnn: error: Error merging override sg.placement=middle: Invalid value 'middle', "
                              "expected one of [all, top, between-layers]"),
    (["sg.target=td"], "sgrnn: error: Error merging override sg.target=td: Invalid value 'td', expected one of [bootstrap, lambda]"),
    (["task.threshold_unit=nats"], "sgrnn: error: Error merging override task.threshold_unit=nats: Invalid value 'nats', "
                                   "expected one of [sequence, bit]"),
    (["sg.placement=between-layers"], "sgrnn: error: sg.placement=between-layers needs sg=on and model.num_layers >= 2"),
    (["seed=99999999999999999999"], "sgrnn: error: seed must be an integer in [0, 2^62), got 99999999999999999999"),
    (["seed=-1"], "sgrnn: error: seed must be an integer in [0, 2^62), got -1"),
    (["model.hidden_size=100000000"], "sgrnn: error: model.hidden_size=100000000 with 1 layer(s) needs about "),
    (["~T"], "sgrnn: error: ~T removes a key sgrnn needs; set it instead (T=VALUE)"),
    (["~sg.scale"], "sgrnn: error: ~sg.scale removes a key sgrnn needs"),
    (["+sg.scael=0.1"], "sgrnn: error: +sg.scael: sgrnn's config has no key sg.scael (did you mean sg.scale?)"),
    (["+sg.scale=0.1"], "sgrnn: error: +sg.scale: sgrnn has this key already; set it without '+' (sg.scale=...)"),
    (["-m", "task=ptb", "sg=off,on", "task.data_dir=/nonexistent"], "sgrnn: error: PTB data not found: ptb.char.train.txt"),
])
def test_every_numeric_value_is_checked_before_any_work(tmp_path, args, line):
    from sgrnn.cli import preflight

    keys = {a.split("=")[0] for a in args}
    with pytest.raises(UserError) as e:
        preflight([*args, *[a for a in RUN if a.split("=")[0] not in keys], f"hydra.run.dir={tmp_path}/run"])
    assert f"sgrnn: error: {e.value}".startswith(line) and "\n" not in str(e.value)
    assert not any(tmp_path.iterdir())  # nothing started


@pytest.mark.parametrize("args, line", [
    (["task.bits=0"], "sgrnn: error: task.bits must be positive, got 0\n"),
    (["-m", "sg.scale=0.1,nan"], "sgrnn: error: sg.scale must be finite, got nan\n"),
])
def test_a_bad_value_from_the_command_line_is_one_line_exit_2_and_nothing_runs(tmp_path, args, line):
    r = cli(*args, *RUN, "train.max_steps=5", f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep")
    assert r.returncode == 2 and r.stderr == line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args", [["task=ptb", "task.batch_size=0"], ["task=ptb", "task.patience=0"]])
def test_the_ptb_node_is_checked_too(args):
    from sgrnn.config import check

    with pytest.raises(UserError, match=r"task\.(batch_size|patience) must be positive, got 0"):
        check(make_config(*args))
    with pytest.raises(UserError, match=r"^train\.stop_flat needs a curriculum task \(copy, repeat-copy\), not task=ptb"):
        check(make_config("task=ptb", "train.stop_flat=0.3"))
    for task in (["task=ptb"], ["task=copy", "task.protocol=continuous"]):
        with pytest.raises(UserError, match=r"^optim\.step_every=episode steps the core at each episode's end: task=.* has no episodes"):
            check(make_config(*task, "optim.step_every=episode"))


def test_two_processes_for_one_folder_one_trains_the_other_exits_2_touching_nothing(tmp_path):
    args = [*RUN, "train.max_steps=1000000", f"hydra.run.dir={tmp_path}"]
    first = cli(*args, wait=False)
    wait_for_checkpoint(tmp_path, first)
    log_before = (tmp_path / "sgrnn.log").read_text()
    hydra_before = {p.name: p.read_bytes() for p in (tmp_path / ".hydra").iterdir()}
    second = cli(*args[:-1], "optim.lr=0.001", args[-1])  # another command for the same folder
    assert {p.name: p.read_bytes() for p in (tmp_path / ".hydra").iterdir()} == hydra_before
    second = cli(*args)
    assert first.poll() is None  # still training
    assert second.returncode == 2, second.stderr
    (line,) = second.stderr.strip().splitlines()
    assert line.startswith(f"sgrnn: error: {tmp_path} is in use by another sgrnn process (pid {first.pid}, since ")
    os.kill(first.pid, signal.SIGINT)
    first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGINT
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_reason"] == "SIGINT"  # the first run's, not the second's
    assert (tmp_path / "sgrnn.log").read_text().startswith(log_before)


def test_the_lock_dies_with_a_killed_process_and_the_same_command_resumes(tmp_path):
    # 600 steps (about 10 ms each here): the kill lands seconds before the end even when the test's
    # own process is starved of CPU; with 200 a loaded machine once let the run finish first
    args = [*RUN, "train.max_steps=600", f"hydra.run.dir={tmp_path}"]
    proc = cli(*args, wait=False)
    os.kill(wait_for_checkpoint(tmp_path, proc), signal.SIGKILL)
    proc.wait()
    assert (tmp_path / ".sgrnn.lock").exists()  # left behind, but no process holds it
    summary = tmp_path / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text())["status"] != "complete"  # killed mid-run
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "resuming from step" in (tmp_path / "sgrnn.log").read_text()


@pytest.mark.slow  # tests/test_report.py runs a local parallel sweep in the default run
def test_a_parallel_sweep_gives_every_cell_its_own_folder(tmp_path):
    r = cli("-m", *RUN[:-1], "sg=off,on", "seed=0,1", "train.max_steps=30", "hydra/launcher=local",
            f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    folders = [p.parent for p in tmp_path.rglob("summary.json")]
    assert len(folders) == len(set(folders)) == 4
    assert all(len(list(f.glob("events.out.tfevents.*"))) == 1 for f in folders)


def test_the_preemption_signal_checkpoints_and_the_requeued_run_resumes(tmp_path, uninterrupted):
    """SLURM's --signal (USR2 under submitit) on a real ``sgrnn train``: checkpoint, clean stop,
    then the same command (what a requeued job runs) resumes to the uninterrupted summary."""
    args = [*KILL_RUN, "train.max_steps=400", f"hydra.run.dir={tmp_path}"]
    proc = cli(*args, wait=False)
    os.kill(wait_for_checkpoint(tmp_path, proc), signal.SIGUSR2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGUSR2 and "SIGUSR2 at update" in err
    stopped = json.loads((tmp_path / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["stop_reason"] == "SIGUSR2"
    assert stopped["steps"] == torch.load(tmp_path / checkpoint.LATEST, weights_only=False)["step"]
    r = cli(*args)
    assert r.returncode == 0 and f"resuming from step {stopped['steps']}" in (tmp_path / "sgrnn.log").read_text()
    assert comparable(json.loads((tmp_path / "summary.json").read_text())) == comparable(
        json.loads((uninterrupted / "summary.json").read_text()))


REQUEUE = """
import signal, sys
from pathlib import Path
from sgrnn.config import make_config
from sgrnn.train import train
folder = Path(sys.argv[1])
def submitit_like(signum, frame):  # what submitit's handler does: checkpoint the callable, requeue, exit
    (folder / "requeued").write_text(str(sorted(p.name for p in folder.iterdir())))
    sys.exit(-1)
signal.signal(signal.SIGUSR2, submitit_like)
train(make_config(*sys.argv[2:]), folder)
"""


def test_under_submitit_the_signal_reaches_its_requeue_after_the_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", REQUEUE, str(tmp_path), *RUN, "train.max_steps=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.kill(wait_for_checkpoint(tmp_path, proc), signal.SIGUSR2)
    proc.communicate(timeout=60)
    assert proc.returncode == 255  # submitit's exit after requeueing
    seen = (tmp_path / "requeued").read_text()
    assert "checkpoint.pt" in seen and "summary.json" in seen  # written before the handler ran
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "interrupted"


def snapshot(folder: Path) -> dict:
    """Every file in ``folder`` with its bytes and modification time (the flock file aside: taking
    the lock to look is not a write)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".sgrnn.lock"}


@pytest.mark.parametrize("state", ["interrupted", "complete"])
def test_a_refused_command_writes_nothing_in_the_folder(tmp_path, state):
    """An sg=on run's folder, re-launched by mistake with sg=off: refused, and its summary.json,
    .hydra/, log, checkpoints and events are exactly as they were."""
    args = [*RUN, "train.max_steps=60", f"hydra.run.dir={tmp_path}"]
    assert cli(*args).returncode == 0
    if state == "interrupted":  # as a killed run leaves it: the checkpoint, an interrupted summary
        s = json.loads((tmp_path / "summary.json").read_text())
        (tmp_path / "summary.json").write_text(json.dumps({**s, "status": "interrupted"}))
    before = snapshot(tmp_path)
    assert (tmp_path / ".hydra" / "config.yaml").is_file() and "sg=on" in (tmp_path / ".hydra" / "overrides.yaml").read_text()
    for wrong in (["sg=off"], ["optim.lr=0.001"]):
        r = cli(*args, *wrong)
        assert r.returncode == 2 and "holds a" in r.stderr and "another config" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert snapshot(tmp_path) == before
    r = cli(*args)  # the right command is accepted
    assert r.returncode == 0


def test_an_unreadable_summary_is_rebuilt_from_the_checkpoint(tmp_path):
    run_in_process(tmp_path, "train.max_steps=60")
    good = json.loads((tmp_path / "summary.json").read_text())
    for junk in ('{"status": "comp', '"a JSON string"', "[1, 2]"):
        (tmp_path / "summary.json").write_text(junk)
        s = run_in_process(tmp_path, "train.max_steps=60")
        assert s["status"] == "complete" and s["steps"] == 60 and s["max_solved"] == good["max_solved"]
        assert json.loads((tmp_path / "summary.json").read_text())["status"] == "complete"


def test_a_file_where_the_runs_folder_goes_is_one_line(tmp_path):
    from sgrnn.cli import preflight

    (tmp_path / "copy").write_text("")
    with pytest.raises(UserError, match=f"cannot create the run folders: {tmp_path}/copy is a file, not a folder"):
        preflight([*RUN, f"hydra.sweep.dir={tmp_path}", "-m", "seed=0,1"])


def test_forcing_a_resume_with_another_model_or_method_is_refused_and_writes_nothing(tmp_path):
    run_in_process(tmp_path, "train.max_steps=20")
    (tmp_path / "summary.json").unlink()
    before = snapshot(tmp_path)
    for other, what in ((["model.hidden_size=16"], "model.hidden_size: 32 -> 16"), (["sg=aux"], "sg"),
                        (["sg=off"], "sg")):
        with pytest.raises(Refused, match=rf"another model or method \({what}\).*train.resume=restart"):
            run_in_process(tmp_path, "train.max_steps=40", "train.resume=force", *other)
        assert snapshot(tmp_path) == before
    # A method with the same modules (the placebo trains the same M) is what force is for.
    assert run_in_process(tmp_path, "train.max_steps=40", "train.resume=force", "sg=placebo")["steps"] == 40


@pytest.mark.parametrize("args", [
    ["+hydra.launcher.additional_parameters.mail_type=END", "hydra/launcher=slurm"],
    ["+hydra.job.env_set.X=1"],
    ["experiment=copy-dni", "~hydra.sweeper.params.seed"],
    ["++sg.lr=0.01"],
    ["~experiment"],
])
def test_hydra_s_own_add_and_delete_overrides_are_not_refused(tmp_path, args):
    from sgrnn.cli import preflight

    preflight([*RUN, *args, f"hydra.run.dir={tmp_path}/run"])
