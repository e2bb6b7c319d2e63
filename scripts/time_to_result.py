"""Time to result: wall time for Copy (default T=3) to reach each curriculum length, sg=off vs
sg=on, the two runs side by side (one process each, the cores split between them).

    python scripts/time_to_result.py --minutes 12            # runs both, then prints the table
    python scripts/time_to_result.py --report runs/ttr       # table from finished runs only

Each run is a normal `sgrnn train` run under OUT (default runs/ttr); the table comes from the
`solved_at` list in each summary.json (length, update, timestep-samples, wall seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def launch(out: Path, minutes: float, T: int, task: str, extra: list[str]) -> None:
    threads = max(1, (os.cpu_count() or 2) // 2)
    procs = []
    for sg in ("off", "on"):
        cmd = [sys.executable, "-m", "sgrnn.cli", "train", f"task={task}", f"sg={sg}", f"T={T}",
               f"train.max_minutes={minutes}", f"train.threads={threads}", "train.progress=false",
               f"hydra.run.dir={out}/{task}-T{T}-sg-{sg}", *extra]
        print("$ sgrnn", " ".join(cmd[3:]), flush=True)
        procs.append(subprocess.Popen(cmd))
    if any(p.wait() for p in procs):
        sys.exit("a run failed; see its folder under " + str(out))


def report(out: Path) -> None:
    runs = {}
    for path in sorted(out.glob("*/summary.json")):
        s = json.loads(path.read_text())
        runs[f"{s['task']} T={s['T']} sg={s['sg']}"] = s
    if not runs:
        sys.exit(f"no summary.json under {out}")
    lengths = sorted({m["length"] for s in runs.values() for m in s.get("solved_at", [])})
    names = list(runs)
    print("| length solved | " + " | ".join(f"{n}: wall s (updates)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for length in lengths:
        cells = []
        for n in names:
            hit = [m for m in runs[n].get("solved_at", []) if m["length"] == length]
            cells.append(f"{hit[0]['wall_s']:.0f} ({hit[0]['step']})" if hit else "not reached")
        print(f"| {length} | " + " | ".join(cells) + " |")
    for n, s in runs.items():
        print(f"# {n}: max_solved {s['max_solved']}, {s['steps']} updates in {s['wall_s']:.0f} s, "
              f"{s['threads']} thread(s), {s['device']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/ttr"))
    p.add_argument("--minutes", type=float, default=10.0, help="budget of each run")
    p.add_argument("--T", type=int, default=3)
    p.add_argument("--task", default="copy", choices=["copy", "repeat-copy"])
    p.add_argument("--report", type=Path, help="only print the table for the runs in this folder")
    p.add_argument("overrides", nargs="*", help="extra `sgrnn train` overrides for both runs")
    args = p.parse_args()
    if args.report:
        report(args.report)
        return
    launch(args.out, args.minutes, args.T, args.task, args.overrides)
    report(args.out)


if __name__ == "__main__":
    main()
