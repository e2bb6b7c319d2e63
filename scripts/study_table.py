"""The defaults study's table (README "Making the synthetic gradient pay"), from the summary.json
files of sweep folders: one row per method and lever at each task and T: median [min-max] length
solved, seeds, median updates and milliseconds per update, median wall seconds to each length BPTT never reached, the
SG's parameter-space cosine (median over the run, then over seeds), and the instruments where the run ended (the
mean of its last five measurements, at the length it was learning; median over seeds): the parameter-space cosine
and norm ratio, and the cosine of M's target with the true future gradient.

    python scripts/study_table.py RUNS_DIR [RUNS_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from sgrnn.report import run_median
from sgrnn.runs import TASKS, finished, fmt, group, load_runs, med_of, order_key, result


def spread(values: list) -> str:
    values = sorted(v for v in values if v is not None)
    if not values:
        return "-"
    mid = values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
    return f"**{fmt(mid)}** [{fmt(values[0])}–{fmt(values[-1])}]"


def solved_time(s: dict, length: int):
    return next((m["wall_s"] for m in s.get("solved_at", []) if m["length"] >= length), None)


def at_end(s: dict, key: str, last: int = 5):
    """The mean of a run's last ``last`` measurements of ``key`` (where it stopped learning)."""
    values = [q[key] for q in s.get("sg_quality", []) if q.get(key) is not None][-last:]
    return sum(values) / len(values) if values else None


def main(folders: list[str]) -> None:
    runs = [r for f in folders for r in load_runs(Path(f))]
    cells = group(runs)
    print("| task | T | method (levers) | length solved | seeds | updates | ms/update | s to BPTT's best + 1 | param cos "
          "| at the end: param cos | param norm ratio | target cos |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for T, key in sorted(((T, k) for k in cells for T in cells[k]), key=lambda tk: (order_key(tk[1])[0], tk[0], order_key(tk[1]))):
        group_runs = cells[key][T]
        done = finished(group_runs)
        base = max((result(s) or 0 for s in finished(cells.get((key[0], "BPTT"), {}).get(T, []))), default=None)
        target = None if base is None else base + 1
        times = [solved_time(s, target) for s in done] if target else []
        reached = [t for t in times if t is not None]
        when = f"{spread(reached)} ({len(reached)} of {len(done)})" if target and key[1] != "BPTT" else "-"
        pcos = med_of(done, lambda s: run_median(s, "sg_param_cos"))
        print(f"| {TASKS.get(key[0], key[0])} | {T} | {key[1]} | {spread([result(s) for s in done])} | "
              f"{','.join(str(s['seed']) for s in sorted(done, key=lambda s: s['seed']))} | "
              f"{fmt(med_of(done, lambda s: s['steps']))} | {fmt(med_of(done, lambda s: (s.get('cost') or {}).get('update_ms')))} | "
              f"{when} | {fmt(pcos)} | {fmt(med_of(done, lambda s: at_end(s, 'sg_param_cos')))} | "
              f"{fmt(med_of(done, lambda s: at_end(s, 'sg_param_norm_ratio')))} | "
              f"{fmt(med_of(done, lambda s: at_end(s, 'sg_target_cos')))} |")


if __name__ == "__main__":
    main(sys.argv[1:])
