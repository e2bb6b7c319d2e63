"""hydra/sweeper=search: Optuna over the synthetic gradient's levers, in an SQLite study that
a re-launched search continues."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest


@pytest.mark.slow  # an Optuna study of real runs (14 s)
def test_a_search_records_each_trials_objective_and_a_relaunch_continues_the_study(tmp_path):
    args = [sys.executable, "-m", "sgrnn.cli", "train", "-m", "task=copy", "sg=on", "T=3", "hydra/sweeper=search",
            "hydra.sweeper.n_trials=1", "model.hidden_size=16", "task.batch_size=8", "train.max_steps=30",
            "diag.every=0", "train.threads=1", "device=cpu", f"hydra.sweep.dir={tmp_path}/runs"]
    for launch in (1, 2):
        r = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        study = optuna.load_study(study_name="sgrnn-copy-on-T3", storage=f"sqlite:///{tmp_path}/sgrnn-search-copy-on-T3.db")
        trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert len(trials) == launch  # the second launch added to the same study
        # The sampler is seeded, so a re-launch proposes the finished trial again: read from its folder, not re-run.
        folders = sorted((tmp_path / "runs" / "copy").iterdir())
        assert len(folders) == 1 and all(f"sg.scale={t.params['sg.scale']}" in "".join(map(str, folders))
                                                  for t in trials)
        for t in trials:  # each trial's value is its run's length solved
            (folder,) = [f for f in folders if f"sg.scale={t.params['sg.scale']}," in f.name]
            assert t.value == json.loads((folder / "summary.json").read_text())["max_solved"]["length"]
