"""Random overrides drawn from sgrnn's schema (right and wrong types, ranges, non-finite values,
empty strings, unknown keys, '+' and '~'), each on a tiny budget: every draw must end as the
command would end it with rc 0 (the run finishes) or rc 2 (one readable line), never with a
traceback. The checks are the command's own, in-process: ``preflight`` (what ``sgrnn train`` runs
before Hydra) and then ``train``. A few dozen draws in the default run; ``-m slow`` runs more,
and ``SGRNN_FUZZ_SEED`` picks another sample."""

from __future__ import annotations

import os
import random

import pytest
from omegaconf import OmegaConf

from sgrnn.cli import preflight
from sgrnn.config import flatten, make_config
from sgrnn.errors import UserError
from sgrnn.train import train

TINY = {"model.hidden_size": "8", "task.batch_size": "4", "train.max_steps": "3", "train.threads": "1",
        "device": "cpu", "diag.every": "2", "diag.batch_size": "2", "diag.probe_k": "3", "train.progress": "false"}
NEVER = ("train.max_minutes", "train.max_steps", "train.max_samples", "train.resume", "task.data_dir", "device",
         "task.max_N", "train.threads")  # budgets stay tiny; the data folder and the device are fixed
VALUES = ["0", "1", "2", "3", "-1", "0.5", "1e-9", "1e30", "nan", "inf", "-inf", "''", "abc", "true", "null",
          "[1]", "99999999999999999999", "1e9"]


def schema_leaves() -> list[str]:
    return [k for k in flatten(OmegaConf.to_container(make_config("task=copy", "sg=on"))) if not k.startswith(NEVER)]


def draw(rng: random.Random, keys: list[str]) -> list[str]:
    """1 to 3 overrides: a schema key with an odd value, now and then an unknown, added or
    deleted key, or another method or task."""
    picks = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        key = rng.choice(keys)
        if kind < 0.08:
            picks.append(f"+{key.rsplit('.', 1)[0]}.{key.rsplit('.', 1)[-1][::-1]}={rng.choice(VALUES)}")
        elif kind < 0.12:
            picks.append(f"~{key}")
        elif kind < 0.16:
            picks.append(f"{key}x={rng.choice(VALUES)}")
        elif kind < 0.28:
            picks.append(f"sg={rng.choice(['off', 'on', 'aux', 'placebo', 'oracle', 'nope', ''])}")
        elif kind < 0.32:
            picks.append(f"task={rng.choice(['copy', 'repeat-copy', ''])}")
        else:
            picks.append(f"{key}={rng.choice(VALUES)}")
    return picks


def one_draw(overrides: list[str], folder) -> str:
    """'ok' or 'refused: LINE'; anything else escapes as the failure it is."""
    args = {k: v for k, v in TINY.items()}
    extra = []
    for o in overrides:
        k, _, v = o.partition("=")
        if k in args:
            args[k] = v
        else:
            extra.append(o)
    cmd = [f"{k}={v}" for k, v in args.items()] + extra + [f"hydra.run.dir={folder}"]
    try:
        preflight(cmd)
        cfg = make_config(*[c for c in cmd if not c.startswith("hydra.")])
        train(cfg, folder)
    except UserError as e:
        line = str(e)
        assert line and "\n" not in line and "Traceback" not in line, (cmd, line)
        return f"refused: {line}"
    return "ok"


def fuzz(seed: int, draws: int, tmp_path) -> dict:
    rng = random.Random(seed)
    keys = schema_leaves()
    seen = {"ok": 0, "refused": 0}
    for i in range(draws):
        overrides = draw(rng, keys)
        try:
            outcome = one_draw(overrides, tmp_path / f"draw{i}")
        except Exception as e:  # noqa: BLE001  (the failure under test: a traceback where one line was due)
            pytest.fail(f"overrides {overrides}: {type(e).__name__}: {e}")
        seen[outcome.split(":")[0]] += 1
    return seen


def test_random_overrides_end_in_a_run_or_one_line(tmp_path):
    seen = fuzz(int(os.environ.get("SGRNN_FUZZ_SEED", 0)), 25, tmp_path)
    assert seen["ok"] > 0 and seen["refused"] > 0  # the sample exercises both ends


@pytest.mark.slow
def test_many_random_overrides_end_in_a_run_or_one_line(tmp_path):
    seen = fuzz(int(os.environ.get("SGRNN_FUZZ_SEED", 1)), 400, tmp_path)
    assert seen["ok"] > 0 and seen["refused"] > 0
