"""SG quality of finished runs, from their last checkpoints: every Copy or Repeat Copy run folder
under RUNS_DIR whose method has an M (sg=on, aux, placebo) is rebuilt read-only on this machine's
CPU (``sgrnn.train.reopened``) and measured on fresh held-out episodes at its final curriculum
length with the instruments of ``sgrnn.sg.quality`` (parameter-space cosine, its
sequence-specific part, state cosine, target cosine, linear ceiling). For runs made before those
instruments existed.

    python scripts/quality_of_runs.py studies/defaults [--batch 256] [--fit 8192] [--out FILE.json]

Prints a markdown table (median [min-max] over seeds per method and variant) and writes the
per-run numbers as JSON."""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from sgrnn.runs import method_of
from sgrnn.sg import sg_quality
from sgrnn.train import reopened

KEYS = ["sg_param_cos", "sg_param_cos_seq", "sg_param_norm_ratio", "sg_state_cos", "sg_target_cos", "sg_ceiling_cos", "sg_ceiling_cos_fit"]


def measurable(s: dict) -> bool:
    """A Copy or Repeat Copy run, from its summary.json, whose method has an M at the top layer."""
    return s["task"] != "ptb" and s["sg"] in ("on", "aux", "placebo") and s.get("sg_placement") != "between-layers"


def measure(run_dir: Path, batch: int, fit: int, seed: int) -> dict:
    with reopened(run_dir) as run:
        cfg, g = run.cfg, torch.Generator().manual_seed(seed)
        x, y, mask = run.task.heldout(batch, cfg.diag.length, g)
        q = sg_quality(run.sg, run.core, run.task.loss, x, y, mask, cfg.T, run.task.heldout(fit, cfg.diag.length, g))
        return {k[5:]: v for k, v in q.items()} | {"N": run.task.curriculum.N, "step": run.step}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs_dir")
    p.add_argument("--batch", type=int, default=256, help="held-out sequences measured")
    p.add_argument("--fit", type=int, default=8192, help="held-out sequences the linear ceiling is fitted on")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--out", default=None, help="JSON file for the per-run numbers (default RUNS_DIR/quality.json)")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = Path(args.runs_dir)
    rows, cells = {}, defaultdict(list)
    for summary in sorted(root.rglob("summary.json")):
        s = json.loads(summary.read_text())
        if s.get("status") != "complete" or not measurable(s) or not (summary.parent / "checkpoint.pt").exists():
            continue
        q = measure(summary.parent, args.batch, args.fit, args.seed)
        rows[str(summary.parent)] = q
        cells[(s["task"], method_of({**s, "dir": str(summary.parent)}), s["T"])].append(q)
        print(f"{summary.parent.name}: " + ", ".join(f"{k} {q[k]:.3f}" for k in KEYS if k in q), flush=True)
    out = Path(args.out) if args.out else root / "quality.json"
    out.write_text(json.dumps(rows, indent=1))
    print("\n| task | method | T | n | " + " | ".join(KEYS) + " |")
    print("|---|---|---|---|" + "---|" * len(KEYS))
    for (task, method, T), qs in sorted(cells.items()):
        def cell(k):
            v = [q[k] for q in qs if k in q]
            return f"{statistics.median(v):.3f} [{min(v):.3f}, {max(v):.3f}]" if v else "-"
        print(f"| {task} | {method} | {T} | {len(qs)} | " + " | ".join(cell(k) for k in KEYS) + " |")


if __name__ == "__main__":
    main()
