"""Where a Copy or Repeat Copy run fails: wrong bits per sequence at each output step.

For each output step, whether the input it reproduces lies in the same truncation segment (a
gradient path to it) or in an earlier one (none, for truncated BPTT). Each run runs fresh
episodes at its curriculum's current length (where it stopped; or --N, --R), from a reset state,
as in training. Prints one line per run (its error summed over the outputs whose input is in the
same segment, and over the rest, beside the curriculum's threshold), then a table for each task,
method, T and length: each output step (t), its input's step, their segments, and the wrong bits
per sequence there, median [min-max] over the runs given (seeds). Runs that cannot be measured
(not Copy or Repeat Copy, the continuous protocol) stop it there with one line.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import torch

from sgrnn.errors import UserError
from sgrnn.runs import median, method_of
from sgrnn.train import reopened


def measurable(s: dict) -> bool:
    """Of a folder of runs: the Copy and Repeat Copy runs of the episodic protocol."""
    task = (s.get("config") or {}).get("task", {})
    return "max_solved" in s and task.get("protocol", "episodic") == "episodic"


@torch.no_grad()
def output_errors(run, episodes: int, N: int | None = None, R: int | None = None, seed: int = 12345) -> dict:
    """Per scored step of one episode at (N, R) (default: the curriculum's current length):
    input step, same segment or not, mean wrong bits per sequence."""
    stream, T, task_cfg = run.task, run.cfg.T, run.cfg.task
    if not hasattr(stream, "curriculum"):
        raise UserError(f"{task_cfg.name} has no output steps to locate: Copy and Repeat Copy only")
    if task_cfg.get("protocol", "episodic") != "episodic":
        raise UserError(f"task.protocol={task_cfg.protocol}: segments do not start at each episode's start, "
                        "so they cannot be located from T alone (episodic runs only)")
    N = N or stream.curriculum.N
    R = (R or stream.curriculum.R) if stream.task.repeat else 1
    ep = stream.task.sample(N, R, episodes, torch.Generator().manual_seed(seed), "cpu")
    logits, _ = run.core(ep.x, run.core.zero_state(episodes, "cpu"))
    wrong = ((logits > 0).float() != ep.y).float().sum(-1).mean(-1)  # [L]: wrong bits per sequence
    dist = stream.task.distances(N, R)
    steps = [{"t": t, "input": t - d, "same_segment": t // T == (t - d) // T, "wrong_bits": wrong[t].item()}
             for t, d in enumerate(dist.tolist()) if d > 0]
    per_sequence = task_cfg.get("threshold_unit", "sequence") == "sequence"  # else another unit: not shown
    return {"N": N, "R": R, "T": T, "threshold": stream.curriculum.threshold if per_sequence else None, "steps": steps}


def line(name: str, r: dict) -> str:
    def total(same: bool) -> str:
        v = [s["wrong_bits"] for s in r["steps"] if s["same_segment"] == same]
        return f"{sum(v):.2f} over {len(v)} steps" if v else "none"
    threshold = f" (threshold {r['threshold']:.2f})" if r["threshold"] is not None else ""
    return (f"{name} N={r['N']} R={r['R']}: wrong bits per sequence, outputs whose input is in the same "
            f"segment {total(True)}; in an earlier segment {total(False)}{threshold}")


def table(key: tuple, results: list[dict]) -> list[str]:
    """One row per output step: its input, the segments, wrong bits median [min-max] over runs."""
    task, method, T, N, R = key
    rows = [f"{task}, {method}, T={T}, N={N}, R={R} ({len(results)} runs): wrong bits per sequence, median [min-max]",
            "", f"| t | input t | segments (T={T}) | wrong bits per sequence |", "|---|---|---|---|"]
    for k, step in enumerate(results[0]["steps"]):
        v = [r["steps"][k]["wrong_bits"] for r in results]
        where = "same" if step["same_segment"] else f"{step['input'] // T} -> {step['t'] // T}"
        rows.append(f"| {step['t']} | {step['input']} | {where} | {median(v):.2f} [{min(v):.2f}-{max(v):.2f}] |")
    return rows + [""]


def add_arguments(p) -> None:
    p.add_argument("--episodes", type=int, default=1024, help="fresh episodes measured (default 1024)")
    p.add_argument("--N", type=int, default=None, help="episode length N (default: the run's current)")
    p.add_argument("--R", type=int, default=None, help="repeats R (Repeat Copy; default: the run's current)")


def run(folders: list[Path], ns) -> None:
    groups = defaultdict(list)
    for folder in folders:
        with reopened(folder) as rebuilt:
            r = output_errors(rebuilt, ns.episodes, ns.N, ns.R)
            cfg = rebuilt.cfg
        print(line(f"{cfg.task.name} {folder.name}", r), flush=True)
        summary = folder / "summary.json"  # placement, warm-up, layers: the method's full name
        s = json.loads(summary.read_text()) if summary.is_file() else {"sg": cfg.sg.name}
        method = method_of({**s, "dir": str(folder)})
        groups[(cfg.task.name, method, cfg.T, r["N"], r["R"])].append(r)
    print()
    for key, results in sorted(groups.items()):
        print("\n".join(table(key, results)))
