"""The report's optional tables (``sgrnn report RUNS_DIR --study --time-to-result``), from the
runs' summary.json files alone.

- ``--study``: one row per method and lever at each task and T, as the defaults study compares
  them (docs/study/defaults.md): median [min-max] length solved, the seeds,
  median updates and milliseconds per update, the wall seconds to the first length BPTT never
  reached, the SG's parameter-space cosine (median over the run, then over seeds), and the
  instruments where the run ended (the mean of its last five measurements, at the length it was
  learning; median over seeds): parameter-space cosine, that of the sequence-specific parts, its
  norm ratio, the state-space cosine, and the cosine of M's target with the true future gradient.
- ``--time-to-result``: for each curriculum task and T, the wall seconds (and updates) at which
  each method first solved each length, median over the seeds that got there.
"""

from __future__ import annotations

from typing import Optional

from sgrnn.report import run_median
from sgrnn.runs import finished, fmt, group, is_curriculum, med_of, median, order_key, result, title


def spread(values: list) -> str:
    """**median** [min–max] of the values that are not None, or "-"."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return "-"
    return f"**{fmt(median(values))}** [{fmt(values[0])}–{fmt(values[-1])}]"


def solved_time(s: dict, length: int) -> Optional[float]:
    """Wall seconds until the run first solved ``length`` or longer."""
    return next((m["wall_s"] for m in s.get("solved_at", []) if m["length"] >= length), None)


def at_end(s: dict, key: str, last: int = 5) -> Optional[float]:
    """The mean of a run's last ``last`` measurements of ``key`` (where it stopped learning)."""
    values = [q[key] for q in s.get("sg_quality", []) if q.get(key) is not None][-last:]
    return sum(values) / len(values) if values else None


AT_END = ("sg_param_cos", "sg_param_cos_seq", "sg_param_norm_ratio", "sg_mean_cos", "sg_state_cos", "sg_target_cos")


def study_section(runs: list[dict]) -> list[str]:
    lines = ["## The study table: methods and levers side by side", "",
             "Median [min–max] over seeds; *s to BPTT's best + 1*: wall seconds until the run first solved a length "
             "that no BPTT seed at that T solved (how many seeds got there); *param cos*: the SG's parameter-space "
             "cosine, median over the run's measurements; *at the end*: the mean of the run's last five measurements "
             "(median over seeds): the parameter-space cosine, and the same of the sequence-specific parts (each boundary's "
             "batch mean out: what a placebo cannot match), the norm ratio, the cosine of the batch means of g_hat and g_true "
             "in state space (*mean cos*: the part common to the batch), the state-space cosine and M's target's cosine.",
             "",
             "| task | T | method (levers) | length solved | seeds | updates | ms/update | s to BPTT's best + 1 | param cos "
             "| at the end: param cos | seq. param cos | param norm ratio | mean cos | state cos | target cos |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    cells = group([s for s in runs if is_curriculum(s)])
    keys = sorted(((T, k) for k in cells for T in cells[k]), key=lambda tk: (order_key(tk[1])[:2], tk[0], order_key(tk[1])))
    for T, key in keys:
        done = finished(cells[key][T])
        if not done:
            continue
        base = max((result(s) or 0 for s in finished(cells.get((key[0], "BPTT"), {}).get(T, []))), default=None)
        target = None if base is None else base + 1
        reached = [t for t in (solved_time(s, target) for s in done) if t is not None] if target else []
        when = f"{spread(reached)} ({len(reached)} of {len(done)})" if target and key[1] != "BPTT" else "-"
        lines.append(
            f"| {title(key[0])} | {T} | {key[1]} | {spread([result(s) for s in done])} | "
            f"{','.join(str(s['seed']) for s in sorted(done, key=lambda s: s['seed']))} | "
            f"{fmt(med_of(done, lambda s: s.get('steps')))} | {fmt(med_of(done, lambda s: (s.get('cost') or {}).get('update_ms')))} | "
            f"{when} | {fmt(med_of(done, lambda s: run_median(s, 'sg_param_cos')))} | "
            + " | ".join(fmt(med_of(done, lambda s: at_end(s, k))) for k in AT_END) + " |")
    if len(lines) == 6:
        lines.append("(no finished Copy or Repeat Copy run)")
    return lines + [""]


def time_to_result_section(runs: list[dict]) -> list[str]:
    lines = ["## Time to result: when each length was first solved", "",
             "Wall seconds (updates) until the run first solved each length, median over the seeds that did; "
             "(k of n) when not every finished seed did.", ""]
    cells = group([s for s in runs if is_curriculum(s)])
    tables = 0
    for task in sorted({k[0] for k in cells}, key=lambda t: order_key((t, ""))):
        keys = sorted((k for k in cells if k[0] == task), key=order_key)
        for T in sorted({T for k in keys for T in cells[k]}):
            per = {k: finished(cells[k].get(T, [])) for k in keys}
            per = {k: v for k, v in per.items() if v}
            lengths = sorted({m["length"] for v in per.values() for s in v for m in s.get("solved_at", [])})
            if not lengths:
                continue
            tables += 1
            lines += [f"### {title(task)}, T={T}", "",
                      "| length solved | " + " | ".join(f"{k[1]}: wall s (updates)" for k in per) + " |",
                      "|---|" + "---|" * len(per)]
            for length in lengths:
                row = []
                for done in per.values():
                    hits = [next(m for m in s.get("solved_at", []) if m["length"] >= length) for s in done
                            if solved_time(s, length) is not None]
                    if not hits:
                        row.append("not reached")
                        continue
                    some = f" ({len(hits)} of {len(done)})" if len(hits) < len(done) else ""
                    row.append(f"{fmt(median([m['wall_s'] for m in hits]))} ({fmt(median([m['step'] for m in hits]))}){some}")
                lines.append(f"| {length} | " + " | ".join(row) + " |")
            lines.append("")
    if not tables:
        lines += ["(no finished Copy or Repeat Copy run solved a length)", ""]
    return lines
