"""Where a Copy or Repeat Copy run was learning when it ended: stalled, or still going.

From the run's TensorBoard events (one point per episode: the curriculum's (N, R) and the error it
compares with its threshold, ``train/bits`` or with ``task.threshold_unit=bit``
``train/loss_per_bit``): the length the run was learning at its end, since which update, and its
error there, as the mean of the first and of the last tenth of its episodes at that length. Then
the rate the error fell over the last half of them (a least-squares line through the logarithm of
ten block means): how many updates it took to halve, and how many more it would need to reach the
threshold at that rate (an extrapolation). A run whose error at the frontier is flat is stalled; one
whose error halves every few thousand updates is still learning, however long ago its last length
was solved. Nothing is rebuilt or written: it reads the run folder's event files only.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Optional

from sgrnn.analyse import summary_of
from sgrnn.errors import UserError
from sgrnn.runs import method_of


def measurable(s: dict) -> bool:
    """A Copy or Repeat Copy run, from its summary.json."""
    return "max_solved" in s


def events(folder: Path) -> dict[str, dict[int, float]]:
    """The run's scalars, step -> value per tag; where a resumed run wrote a step again, its last value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = defaultdict(dict)

    def started(f: Path) -> tuple:  # events.out.tfevents.<unix seconds>.<host>...: the order they were begun in
        stamp = f.name.split(".")[3]
        return (int(stamp) if stamp.isdigit() else 0, f.stat().st_mtime)

    for f in sorted(folder.glob("events.out.tfevents.*"), key=started):
        ea = EventAccumulator(str(f), size_guidance={"scalars": 0})
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            for e in ea.Scalars(tag):
                out[tag][e.step] = e.value
    return out


def log_slope(xs: list[float], ys: list[float]) -> float:
    """The least-squares slope of log(y) against x."""
    ly = [math.log(max(y, 1e-6)) for y in ys]
    mx, my = statistics.fmean(xs), statistics.fmean(ly)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ly)) / sxx if sxx else 0.0


def frontier(folder: Path, summary: dict) -> dict:
    """The frontier of one run: see the module's docstring."""
    scalars = events(folder)
    cfg = summary.get("config", {}).get("task", {})
    key = "train/loss_per_bit" if cfg.get("threshold_unit") == "bit" else "train/bits"
    if key not in scalars or "curriculum/N" not in scalars:
        raise UserError(f"{folder}: no TensorBoard events with {key} and curriculum/N (a Copy or Repeat Copy run's)")
    N, R = scalars["curriculum/N"], scalars.get("curriculum/R", {})
    steps = sorted(s for s in scalars[key] if s in N)
    at = (N[steps[-1]], R.get(steps[-1], 1.0))
    since = len(steps)
    while since and (N[steps[since - 1]], R.get(steps[since - 1], 1.0)) == at:
        since -= 1
    here = steps[since:]
    err = [scalars[key][s] for s in here]
    tenth = max(1, len(err) // 10)
    out = {"N": int(at[0]), "R": int(at[1]), "since": here[0], "updates": here[-1] - here[0] + 1, "episodes": len(err),
           "share": (here[-1] - here[0] + 1) / max(here[-1], 1), "first": statistics.fmean(err[:tenth]),
           "last": statistics.fmean(err[-tenth:]), "threshold": cfg.get("threshold"), "halving": None, "to_threshold": None}
    half = list(zip(here, err))[len(err) // 2:]
    if len(half) >= 10:
        blocks = [half[i * len(half) // 10:(i + 1) * len(half) // 10] for i in range(10)]
        xs = [statistics.fmean(s for s, _ in b) for b in blocks]
        slope = log_slope(xs, [statistics.fmean(e for _, e in b) for b in blocks])
        if slope < 0:
            out["halving"] = math.log(2) / -slope
            if out["threshold"] and out["last"] > out["threshold"]:
                out["to_threshold"] = math.log(out["threshold"] / out["last"]) / slope
    return out


def add_arguments(p) -> None:
    p.add_argument("--json", default=None, metavar="FILE", help="also write the per-run numbers to this JSON file")


def _n(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _or(v) -> str:
    return "-" if v is None else str(v)


def run(folders: list[Path], ns) -> None:
    if ns.json and Path(ns.json).is_dir():
        raise UserError(f"--json {ns.json} is a folder, not a file")
    rows = {}
    print("| run | length solved | learning N, R | since update | its share of the run | episodes | error: first tenth "
          "| last tenth | threshold | updates per halving (last half) | more updates to the threshold at that rate |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for folder in folders:
        s = summary_of(folder) or {}
        f = frontier(folder, s)
        f["method"], f["seed"], f["T"] = method_of({**s, "dir": str(folder)}) if s else "?", s.get("seed"), s.get("T")
        f["solved"] = (s.get("max_solved") or {}).get("length")
        rows[str(folder)] = f
        print(f"| {folder.name} | {_or(f['solved'])} | {f['N']}, {f['R']} | {f['since']:,} | {f['share']:.0%} | {f['episodes']:,} "
              f"| {f['first']:.2f} | {f['last']:.2f} | {_or(f['threshold'])} | {_n(f['halving'])} | {_n(f['to_threshold'])} |",
              flush=True)
    if ns.json:
        Path(ns.json).write_text(json.dumps(rows, indent=1))
        print(f"per-run numbers: {ns.json}")
