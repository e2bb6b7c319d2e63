"""End to end through the real `sgrnn` command: one tiny run per task, a sweep, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

COMMON = ["train.max_steps=12", "train.log_every=4", "model.hidden_size=16", "device=cpu"]
KEYS = {"task", "sg", "T", "seed", "steps", "samples", "wall_s", "device", "status"}


def sgrnn(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgrnn.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("task, sg", [("copy", "on"), ("repeat-copy", "on"), ("ptb", "on")])
def test_tiny_train_writes_a_complete_summary(tmp_path, ptb_dir, task, sg):
    extra = [f"task.data_dir={ptb_dir}", "task.val_every=5", "task.val_symbols=2000"]
    r = sgrnn("train", f"task={task}", f"sg={sg}", "T=4", "seed=1", *COMMON, *(extra if task == "ptb" else []),
              f"hydra.run.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert KEYS <= s.keys() and s["status"] == "complete"
    assert (s["task"], s["sg"], s["T"], s["seed"], s["steps"], s["device"]) == (task, sg, 4, 1, 12, "cpu")
    assert s["samples"] > 0 and s["wall_s"] > 0
    # What it ran on and the command that reruns it: the report prints both beside its figures.
    assert s["host"]["cores"] >= 1 and s["host"]["cpu"] and s["host"]["torch"]
    assert s["command"].startswith(f"sgrnn train task={task} sg={sg} T=4 seed=1 ")
    if task == "ptb":
        assert 0 < s["best_valid_bpc"] < 6 and 0 < s["test_bpc"] < 6
        assert s["samples"] == 12 * 4 * 128
    else:
        assert set(s["max_solved"]) == {"N", "R", "length", "span"}
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_a_non_editable_install_ships_its_configs(tmp_path):
    """`pip install .` (not -e) must find conf/: the wheel carries it as sgrnn/conf."""
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(Path(__file__).resolve().parent.parent)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    names = set(zipfile.ZipFile(next(tmp_path.glob("sgrnn-*.whl"))).namelist())
    assert {"sgrnn/conf/config.yaml", "sgrnn/conf/experiment/copy-dni.yaml", "sgrnn/conf/hydra/launcher/local.yaml"} <= names


def test_multirun_sweep_writes_one_folder_per_cell(tmp_path):
    r = sgrnn("train", "-m", "sg=off,on", "T=2,3", *COMMON, f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr
    found = sorted(p.parent.name for p in tmp_path.glob("copy/*/summary.json"))
    suffix = ",model.hidden_size=16,train.max_steps=12"
    assert found == [f"sg={s},T={T},seed=0{suffix}" for s in ("off", "on") for T in (2, 3)]


def test_bad_value_is_one_line_and_a_nonzero_exit(tmp_path):
    r = sgrnn("train", "T=0", *COMMON, f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "sgrnn: error: T must be positive, got 0"
    assert "Traceback" not in r.stderr


def test_missing_ptb_data_is_one_line(tmp_path):
    r = sgrnn("train", "task=ptb", f"task.data_dir={tmp_path}/none", *COMMON, f"hydra.run.dir={tmp_path}/run")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("sgrnn: error: PTB data not found") and "fetch-ptb" in last


def test_unknown_group_option_lists_the_valid_ones(tmp_path):
    r = sgrnn("train", "task=nope", f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0
    assert "copy" in r.stderr and "repeat-copy" in r.stderr and "ptb" in r.stderr


def test_hydra_features_work_through_the_subcommand():
    r = sgrnn("train", "--cfg", "job", "task=repeat-copy", "sg=on", "T=5")
    assert r.returncode == 0 and "repeat: true" in r.stdout and "T: 5" in r.stdout
    r = sgrnn("train", "--help")
    assert r.returncode == 0 and "sgrnn train" in r.stdout and "task: copy, ptb, repeat-copy" in r.stdout
    r = sgrnn("nope")
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_fetch_ptb_help_is_help_and_writes_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sgrnn.cli", "fetch-ptb", "--help"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("usage: sgrnn fetch-ptb") and not any(tmp_path.iterdir())


def test_a_finished_run_ends_with_a_readable_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sgrnn.cli", "train", "task=copy", "sg=on", "model.hidden_size=8",
                        "task.batch_size=4", "train.max_steps=40", "diag.every=0", "device=cpu",
                        f"hydra.run.dir={tmp_path}"], capture_output=True, text=True)
    last = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0 and last.startswith("copy sg=on T=3 seed=0: ") and "{" not in last
    assert ("no length solved" in last or "solved (N=" in last) and f"-> {tmp_path}/summary.json" in last
