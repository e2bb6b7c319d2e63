"""SG quality of finished runs: the instruments of sgrnn.sg.quality, measured afresh.

For runs made before those instruments existed. Each run whose method has an M (sg=on, aux,
placebo; at the top layer) is measured on fresh held-out episodes at its final curriculum length:
parameter-space cosine, its sequence-specific part and norm ratio, state cosine, target cosine,
linear ceiling. Prints one line per run, then a table (median [min, max] over seeds per task,
method and T); --json FILE also writes the per-run numbers.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from sgrnn.config import M_METHODS
from sgrnn.errors import UserError
from sgrnn.runs import method_of
from sgrnn.sg import sg_quality
from sgrnn.train import reopened

KEYS = ["sg_param_cos", "sg_param_cos_seq", "sg_param_norm_ratio", "sg_param_cos_centred", "sg_param_norm_ratio_centred",
        "sg_mean_cos", "sg_mean_norm_ratio", "sg_given_mean_cos", "sg_given_mean_norm_ratio", "sg_state_cos", "sg_target_cos", "sg_ceiling_cos", "sg_ceiling_cos_fit"]


def measurable(s: dict) -> bool:
    """A Copy or Repeat Copy run, from its summary.json, whose method has an M at the top layer."""
    return "max_solved" in s and s.get("sg") in M_METHODS and s.get("sg_placement") != "between-layers"


def measure(folder: Path, batch: int, fit: int, seed: int) -> dict:
    with reopened(folder) as run:
        cfg, g = run.cfg, torch.Generator().manual_seed(seed)
        if not hasattr(run.task, "curriculum") or not hasattr(run.sg, "model"):
            raise UserError(f"{folder}: a {cfg.task.name} run with sg={cfg.sg.name}: Copy or Repeat Copy runs "
                            f"with an M (sg={', '.join(M_METHODS)}) only")
        x, y, mask = run.task.heldout(batch, cfg.diag.length, g)
        q = sg_quality(run.sg, run.core, run.task.loss, x, y, mask, cfg.T, run.task.heldout(fit, cfg.diag.length, g))
        return {k[5:]: v for k, v in q.items()} | {"N": run.task.curriculum.N, "step": run.step}


def add_arguments(p) -> None:
    p.add_argument("--batch", type=int, default=256, help="held-out sequences measured (default 256)")
    p.add_argument("--fit", type=int, default=8192, help="held-out sequences the linear ceiling is fitted on (default 8192)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the held-out episodes")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the per-run numbers to this JSON file")


def run(folders: list[Path], ns) -> None:
    if ns.json and Path(ns.json).is_dir():
        raise UserError(f"--json {ns.json} is a folder, not a file")
    rows, cells = {}, defaultdict(list)
    for folder in folders:
        q = measure(folder, ns.batch, ns.fit, ns.seed)
        s = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
        rows[str(folder)] = q
        cells[(s.get("task", "?"), method_of({**s, "dir": str(folder)}) if s else "?", s.get("T", "?"))].append(q)
        print(f"{folder.name}: " + ", ".join(f"{k} {q[k]:.3f}" for k in KEYS if q.get(k) is not None), flush=True)
    print("\n| task | method | T | n | " + " | ".join(KEYS) + " |")
    print("|---|---|---|---|" + "---|" * len(KEYS))
    for (task, method, T), qs in sorted(cells.items(), key=str):
        def cell(k):
            v = [q[k] for q in qs if q.get(k) is not None]
            return f"{statistics.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]" if v else "-"
        print(f"| {task} | {method} | {T} | {len(qs)} | " + " | ".join(cell(k) for k in KEYS) + " |")
    if ns.json:
        Path(ns.json).write_text(json.dumps(rows, indent=1))
        print(f"per-run numbers: {ns.json}")
