"""``sgrnn report RUNS_DIR``: the paper's Table 1 and the answer to "what does the synthetic
gradient buy?", built from the runs' summary.json files alone.

Writes into ``RUNS_DIR/report`` (or ``--out``): ``report.md`` (Table 1 with the paper's numbers
beside each cell, then cost, benefit, SG quality and warm-up), ``table1.csv`` (one row per
task x method x T) and, with matplotlib installed, PNG plots. A cell with no run says
"missing", one whose runs failed says "failed"; neither is ever shown as a number. ``--study``
and ``--time-to-result`` add those tables (sgrnn.study; also as ``study_table.md`` and
``time_to_result.md``); ``--readme`` rewrites the README's Table 1 block (sgrnn.readme).
"""

from __future__ import annotations

import csv
import math
import shlex
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional

from sgrnn.errors import UserError
from sgrnn.runs import (FULL_T, PAPER, baseline_of, is_curriculum, language_tasks, title, finished, fmt, group, load_runs, med_of, median, order_key, result,
                        last_gain, length_at, sg_curve, structure_of)

METRIC = {True: "largest length solved (higher is better)", False: "test BPC (lower is better)"}  # by is_curriculum


# ---------------------------------------------------------------------------- collecting runs


# ---------------------------------------------------------------------------- Table 1


def cell_stats(runs: list[dict]) -> dict:
    done = [s for s in runs if s.get("status") == "complete" and result(s) is not None]
    values = [result(s) for s in done]
    return {
        "n": len(done),
        "failed": sum(s.get("status") == "failed" for s in runs),
        "unfinished": sum(s.get("status") not in ("complete", "failed") for s in runs),
        "median": median(values),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "seeds": sorted(s.get("seed") for s in done),
    }


def cell_text(st: Optional[dict], paper) -> str:
    beside = f" · paper {fmt(paper)}" if paper is not None else ""
    if st is None:
        return f"missing{beside}"
    notes = [f"{st['failed']} failed"] * bool(st["failed"]) + [f"{st['unfinished']} unfinished"] * bool(st["unfinished"])
    if not st["n"]:
        return f"{'failed' if st['failed'] else 'unfinished'} ({', '.join(notes)}){beside}"
    spread = f" [{fmt(st['min'])}–{fmt(st['max'])}]" if st["n"] > 1 else ""
    extra = f", {', '.join(notes)}" if notes else ""
    return f"**{fmt(st['median'])}**{spread} (n={st['n']}{extra}){beside}"


def table1(cells: dict) -> tuple[list[str], list[dict]]:
    """Markdown lines (one table per task) and CSV rows."""
    lines, rows, lm = [], [], language_tasks(cells)
    for task in sorted({t for t, _ in cells}, key=lambda t: order_key((t, ""))):
        keys = sorted((k for k in cells if k[0] == task), key=order_key)
        # Untruncated rows (Full BPTT) do not depend on T: one set of runs, shown in every column.
        untruncated = {k for k in keys if all(T >= FULL_T for T in cells[k])}
        Ts = sorted({T for k in keys if k not in untruncated for T in cells[k]}
                    | {T for k in keys for T in PAPER.get(k, {})}) or sorted({T for k in keys for T in cells[k]})
        metric = METRIC[task not in lm]
        lines += [f"### {title(task)}: {metric}", "",
                  "| method | " + " | ".join(f"T={T}" for T in Ts) + " |", "|---" * (len(Ts) + 1) + "|"]
        for key in keys:
            texts = []
            for T in Ts:
                runs_at = [s for runs in cells[key].values() for s in runs] if key in untruncated else cells[key].get(T)
                st = cell_stats(runs_at) if runs_at else None
                # A lever's row (e.g. sg.scale=0.3) is still the paper's method; a warm-up is not.
                paper = PAPER.get((task, structure_of(next(iter(cells[key].values()))[0])), {}).get(T)
                texts.append(cell_text(st, paper))
                rows.append({"task": task, "method": key[1], "T": T, "metric": metric,
                             "median": st["median"] if st else None, "min": st["min"] if st else None,
                             "max": st["max"] if st else None, "n": st["n"] if st else 0,
                             "failed": st["failed"] if st else 0, "unfinished": st["unfinished"] if st else 0,
                             "status": "missing" if st is None else ("ok" if st["n"] else "failed"), "paper": paper})
            lines.append(f"| {key[1]} | " + " | ".join(texts) + " |")
        lines += ["", "Cells: median over seeds **bold**, [min–max], n finished runs; paper's number beside."
                  + curriculum_note([s for k in keys for runs in cells[k].values() for s in runs]), ""]
    return lines, rows


def curriculum_note(runs: list[dict]) -> str:
    """Which curriculum threshold and unit a Copy table's lengths rest on (it changes every length)."""
    units = {"sequence": "wrong bits per sequence", "bit": "bits of loss per bit per output step"}
    seen = sorted({(float(t.get("threshold", 0.15)), t.get("threshold_unit", "sequence"))
                   for s in runs if "threshold" in (t := (s.get("config") or {}).get("task", {}))})
    if not seen:
        return ""
    return " Curriculum threshold: " + "; ".join(f"{fmt(v)} {units.get(u, u)} (`task.threshold_unit={u}`)" for v, u in seen) + "."


# ---------------------------------------------------------------------------- the answer


def time_to(s: dict, target: float) -> Optional[float]:
    """Wall seconds until the run first reached ``target`` (a length for Copy, a BPC for PTB)."""
    if not is_curriculum(s):
        hits = [p["wall_s"] for p in s.get("valid_curve", []) if p["bpc"] <= target]
    else:
        hits = [p["wall_s"] for p in s.get("solved_at", []) if p["length"] >= target]
    return min(hits) if hits else None


def cost_section(cells: dict) -> list[str]:
    lines = ["## Cost: what an update costs, and what progress costs", "",
             "Per update (median over seeds, ms): forward, backward through the core, SG work (M's prediction, "
             "its regression, the aux loss), everything else. Throughput in timestep-samples/s, and its ratio to "
             "BPTT with the same network at the same T (Copy: partial last segments make it depend on the length "
             "reached; update ms does not). *Time to target*: wall seconds until the run first reached the level that every "
             "method of the task reached at that T (Copy: a solved length; PTB: a validation BPC).", "",
             "| task | method | T | update ms | forward | backward | SG | other | samples/s | vs BPTT | target | s to target |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lm = language_tasks(cells)
    for task in sorted({t for t, _ in cells}, key=lambda t: order_key((t, ""))):
        keys = sorted((k for k in cells if k[0] == task), key=order_key)
        for T in sorted({T for k in keys for T in cells[k]}):
            per = {k: finished(cells[k].get(T, [])) for k in keys}
            per = {k: v for k, v in per.items() if v}
            if not per:
                continue
            if task in lm:
                levels = [med_of(v, lambda s: s.get("best_valid_bpc")) for v in per.values()]
                target = max((x for x in levels if x is not None and math.isfinite(x)), default=None)
            else:
                levels = [med_of(v, result) for v in per.values()]
                target = min((x for x in levels if x is not None), default=None)
                target = target if target else None
            for k, runs in per.items():
                base = med_of(per.get((task, baseline_of(k[1])), []), lambda s: s.get("cost", {}).get("samples_per_s"))
                c = lambda name: med_of(runs, lambda s: s.get("cost", {}).get(name))  # noqa: E731
                sps = c("samples_per_s")
                ratio = f"{sps / base:.2f}" if sps and base else "-"
                ttt = med_of(runs, lambda s: time_to(s, target)) if target is not None else None
                lines.append(f"| {title(task)} | {k[1]} | {T} | {fmt(c('update_ms'))} | {fmt(c('forward_ms'))} | "
                             f"{fmt(c('backward_ms'))} | {fmt(c('sg_ms'))} | {fmt(c('other_ms'))} | {fmt(sps)} | {ratio} | "
                             f"{fmt(target)} | {fmt(ttt)} |")
    return lines + [""]


def benefit_section(cells: dict) -> list[str]:
    lines = ["## Benefit: how far back dependencies were learned", "",
             "Copy / Repeat Copy: median over seeds of the largest length solved and of the dependency span "
             "(time steps between an input and its last use) vs T. A span beyond T was learned across "
             "truncation boundaries.", ""]
    lm = language_tasks(cells)
    keys = sorted((k for k in cells if k[0] not in lm), key=order_key)
    if not keys:
        return lines + ["(no Copy or Repeat Copy runs)", ""]
    lines += ["| task | method | T | length | span | span / T |", "|---|---|---|---|---|---|"]
    for k in keys:
        for T in sorted(cells[k]):
            runs = cells[k][T]
            length = med_of(runs, result)
            span = med_of(runs, lambda s: s.get("max_solved", {}).get("span"))
            ratio = f"{span / T:.1f}" if span is not None else "-"
            lines.append(f"| {title(k[0])} | {k[1]} | {T} | {fmt(length)} | {fmt(span)} | {ratio} |")
    return lines + [""]


def samples_to(s: dict, length: float) -> Optional[float]:
    """Timestep-samples at which a run first solved ``length`` (None if it never did)."""
    hits = [p["samples"] for p in s.get("solved_at", []) if p["length"] >= length]
    return float(min(hits)) if hits else None


# A run this short says nothing about the paper's budget: its curriculum has barely started (a
# Table 1 cell spends 3.5M).
MIN_EXTRAPOLATE = 1e6
TAIL = 1 / 3  # a run "stopped" when its length did not grow in this last part of its budget (train.stop_flat in the long presets)


def growth(s: dict) -> dict:
    """One run's length against its budget B: the samples at its last new length, whether that
    was in the last third of B, and the length gained over the last decade (B/10 to B)."""
    budget, length = s.get("samples") or 0, result(s) or 0
    last = last_gain(s.get("solved_at", []))
    return {"budget": budget, "last": last, "grew": last > (1 - TAIL) * budget,
            "gain": length - length_at(s, budget / 10)}


def stops_section(cells: dict) -> list[str]:
    """Where each cell's length stopped growing, or how fast it still grew; and, where it still
    grew, the budget the paper's length would need at that rate (an extrapolation)."""
    lines = ["## Where learning stops: the length against the budget", "",
             "Per run: the timestep-samples at its last new length, whether it grew in the last third of its "
             "budget, and the length gained over the last decade of samples (from a tenth of the budget to all "
             "of it). Median over seeds. Where the runs still grew, the samples the paper's length would need "
             "if the length kept growing by that gain per decade (an extrapolation, not a measurement: longer "
             "lengths are harder, so likely more); where every run reached it, the samples at which they did "
             "(measured).", "",
             "| task | method | T | length | budget | last new length at | grew in the last third | gain per decade "
             "| paper | samples to the paper's | hours at this rate |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    lm = language_tasks(cells)
    for k in sorted((k for k in cells if k[0] not in lm), key=order_key):
        for T in sorted(cells[k]):
            runs = [s for s in finished(cells[k][T]) if result(s) is not None]
            if not runs:
                continue
            g = [growth(s) for s in runs]
            length, budget = med_of(runs, result), median([x["budget"] for x in g])
            last, gain = median([x["last"] for x in g]), median([x["gain"] for x in g])
            grew = sum(x["grew"] for x in g)
            paper = PAPER.get((k[0], structure_of(runs[0])), {}).get(T)
            sps = med_of(runs, lambda s: s.get("cost", {}).get("samples_per_s"))
            need, how = None, "-"
            if paper is not None:
                if all(result(s) >= paper for s in runs):
                    need = median([samples_to(s, paper) or s["samples"] for s in runs])
                    how = f"{need:.3g} (measured)"
                elif budget < MIN_EXTRAPOLATE:
                    how = f"too short to extrapolate (under {MIN_EXTRAPOLATE:.0e})"
                elif not grew or gain <= 0:
                    how = "not at this rate: flat"
                else:
                    need = budget * 10 ** ((paper - length) / gain)
                    how = f"{need:.2g} (extrapolated)"
            hours = f"{need / sps / 3600:.2g}" if need and sps else "-"
            rows.append(f"| {title(k[0])} | {k[1]} | {T} | {fmt(length)} | {budget:.3g} | {last:.3g} | {grew}/{len(g)} "
                        f"| {fmt(gain)} | {paper if paper is not None else '-'} | {how} | {hours} |")
    if not rows:
        return lines[:2] + ["(no finished Copy or Repeat Copy run)", ""]
    return lines + rows + [""]


def quality_section(cells: dict) -> list[str]:
    lines = ["## SG quality: is the predicted gradient right, and is the true one negligible?", "",
             "On held-out data at the truncation boundaries (`diag.every`), at the first and the last measurement "
             "(median over seeds): *state cos* = cos(g_hat, g_true) per sequence in state space, |g_hat| / |g_true| "
             "and |g_true|; *param cos* = cos(sum J^T g_given, sum J^T g_true), the weight update the injected "
             "gradient causes against the one the true future gradient would (J: the boundary state's Jacobian "
             "in the core's parameters), and its norm ratio; *target cos*: M's regression target against g_true.", ""]
    rows = []
    for k in sorted(cells, key=order_key):
        for T in sorted(cells[k]):
            runs = [s for s in finished(cells[k][T]) if sg_curve(s)]
            if not runs:
                continue
            q = lambda i, name: med_of(runs, lambda s: sg_curve(s)[i].get(name))  # noqa: E731
            rows.append(f"| {title(k[0])} | {k[1]} | {T} | {fmt(q(0, 'sg_cos'))} → {fmt(q(-1, 'sg_cos'))} | "
                        f"{fmt(q(0, 'sg_norm_ratio'))} → {fmt(q(-1, 'sg_norm_ratio'))} | "
                        f"{fmt(q(0, 'true_grad_norm'))} → {fmt(q(-1, 'true_grad_norm'))} | "
                        + " | ".join(f"{fmt(q(0, n))} → {fmt(q(-1, n))}" for n in ("sg_param_cos", "sg_param_norm_ratio", "sg_target_cos"))
                        + f" | {fmt(med_of(runs, lambda s: run_median(s, 'sg_param_cos')))} |")
    if not rows:
        return lines + ["(no run holds SG-quality measurements)", ""]
    return lines + ["| task | method | T | state cos | norm ratio | abs g_true | param cos | param norm ratio | target cos "
                    "| param cos, run median |", "|---|---|---|---|---|---|---|---|---|---|", *rows, ""]


def run_median(s: dict, name: str) -> Optional[float]:
    """The median of one SG-quality measure over all of a run's measurements."""
    values = [p[name] for p in sg_curve(s) if isinstance(p.get(name), (int, float))]
    return median(values)


def warmup_section(cells: dict) -> list[str]:
    lines = ["## Warm-up: plain BPTT first, SG later (`sg.start_step`)", ""]
    rows = []
    for (task, method), byT in sorted(cells.items(), key=lambda kv: order_key(kv[0])):
        if "warm-up" not in method:
            continue
        base = method.split(" (")[0]
        for T, runs in sorted(byT.items()):
            plain = cells.get((task, base), {}).get(T, [])
            rows.append(f"| {title(task)} | {method} | {T} | {fmt(med_of(runs, result))} | "
                        f"{base}: {fmt(med_of(plain, result)) if plain else 'missing'} |")
    if not rows:
        return lines + ["(no runs with sg.start_step > 0)", ""]
    return lines + ["| task | method | T | result | without warm-up |", "|---|---|---|---|---|", *rows, ""]


# ---------------------------------------------------------------------------- provenance


def sweep_commands(runs: list[dict]) -> list[str]:
    """The cells' own commands folded back into sweeps: cells that differ only in T and seed
    become one ``sgrnn train -m ... T=a,b seed=c,d`` line (runs from before summaries recorded
    their command are counted apart)."""
    sweeps: dict = defaultdict(lambda: (set(), set()))
    for s in runs:
        if not s.get("command"):
            continue
        words = shlex.split(s["command"])
        rest = tuple(w for w in words[2:] if not w.startswith(("T=", "seed=")))
        Ts, seeds = sweeps[rest]
        Ts.add(int(s["T"]))
        seeds.add(int(s["seed"]))
    join = lambda xs: ",".join(map(str, sorted(xs)))  # noqa: E731
    return [f"sgrnn train -m {shlex.join(rest)} T={join(Ts)} seed={join(seeds)}" for rest, (Ts, seeds) in
            sorted(sweeps.items())]


def provenance(runs: list[dict]) -> list[str]:
    """What the runs ran on, how long they took and the commands that made them."""
    done = finished(runs)
    hosts = Counter(", ".join(f"{k} {v}" for k, v in s["host"].items()) if s.get("host") else "not recorded"
                    for s in done)
    commits = Counter(s.get("commit") or "not recorded" for s in done)
    lines = ["Hardware (finished runs): " + "; ".join(f"{h} ({n} run{'s' * (n != 1)})" for h, n in hosts.most_common()) + ".",
             "Threads per run: " + ", ".join(sorted({str(s.get("threads")) for s in done})) + "; source commit: "
             + ", ".join(f"{c} ({n})" for c, n in commits.most_common()) + ".", ""]
    lines += ["| task | method | cells | wall minutes per cell, median [min–max] | cell-hours |", "|---|---|---|---|---|"]
    for (task, method), byT in sorted(group(done).items(), key=lambda kv: order_key(kv[0])):
        walls = [s["wall_s"] / 60 for runs in byT.values() for s in runs if s.get("wall_s")]
        if walls:
            lines.append(f"| {title(task)} | {method} | {len(walls)} | {median(walls):.1f} "
                         f"[{min(walls):.1f}–{max(walls):.1f}] | {sum(walls) / 60:.2f} |")
    total = sum(s.get("wall_s") or 0 for s in done) / 3600
    lines += ["", f"In all {total:.2f} cell-hours (the sum of the cells' wall times).", ""]
    commands = sweep_commands(done)
    unrecorded = sum(not s.get("command") for s in done)
    if commands:
        lines += ["Commands (each cell's own, folded into sweeps):", "", *[f"    {c}" for c in commands], ""]
    if unrecorded:
        lines += [f"({unrecorded} finished run{'s' * (unrecorded != 1)} predate{'s' * (unrecorded == 1)} the recorded command.)", ""]
    return lines


# ---------------------------------------------------------------------------- the command


EXTRA = {"study": "study_table.md", "time_to_result": "time_to_result.md"}  # the optional tables' files


def extra_sections(runs: list[dict], out: Path, study: bool, time_to_result: bool) -> list[str]:
    """The optional tables (``--study``, ``--time-to-result``: sgrnn.study), each also written
    to its own file in ``out``."""
    from sgrnn.study import study_section, time_to_result_section

    lines = []
    for wanted, make, name in ((study, study_section, EXTRA["study"]),
                               (time_to_result, time_to_result_section, EXTRA["time_to_result"])):
        if wanted:
            section = make(runs)
            (out / name).write_text("\n".join(section) + "\n")
            lines += section
    return lines


def report(runs_dir: str | Path, out: Optional[str | Path] = None, study: bool = False,
           time_to_result: bool = False) -> Path:
    """Write the report; ``study`` and ``time_to_result`` add those tables (sgrnn.study)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise UserError(f"no runs folder {root}")
    out = Path(out) if out else root / "report"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    problems: list = []
    inside = root.resolve().is_relative_to(out.resolve())  # e.g. results/table1/cells -> results/table1
    runs = [s for s in load_runs(root, problems) if inside or not Path(s["dir"]).is_relative_to(out)]
    if not runs:
        raise UserError(f"no readable summary.json under {root}: nothing to report"
                        + (f" ({len(problems)} folders could not be read: {problems[0][0]}: {problems[0][1]}, ...)"
                           if problems else ""))
    cells = group(runs)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").touch()
        (out / ".write-test").unlink()
    except OSError as e:
        raise UserError(f"cannot write the report in {out}: {e.strerror or e}") from None
    table, rows = table1(cells)
    with open(out / "table1.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    from sgrnn.plots import plots  # (it uses this module's helpers)

    pngs = plots(cells, out)
    n_done = sum(s.get("status") == "complete" for s in runs)
    made = provenance(runs)
    skipped = [f"- `{Path(folder).relative_to(root)}`: {what}" for folder, what in problems]
    lines = [f"# sgrnn report: {root.name}", "",
             f"{len(runs)} run{'s' * (len(runs) != 1)} ({n_done} finished, {len(runs) - n_done} failed or unfinished), from their summary.json"
             + (f"; {len(problems)} more folders not read (listed below)." if problems else "."), "",
             *(["Folders not read:", "", *skipped, ""] if skipped else []),
             "## Table 1", "", *table, "## How the runs were made", "", *made, *cost_section(cells),
             *benefit_section(cells), *stops_section(cells), *quality_section(cells),
             *warmup_section(cells), *extra_sections(runs, out, study, time_to_result), "## Plots", ""]
    lines += [f"![{p}]({p})" for p in pngs] or ["(matplotlib is not installed: pip install -e \".[plot]\")"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "table1.md").write_text("\n".join(table + made) + "\n")
    return out


def main(args: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="sgrnn report", description="Table 1, cost, benefit and SG quality "
                                     "from a folder of runs (their summary.json files).")
    parser.add_argument("runs_dir", help="folder searched recursively for summary.json (e.g. runs)")
    parser.add_argument("--out", help="output folder (default: RUNS_DIR/report)")
    parser.add_argument("--study", action="store_true", help="add the study table: methods and levers side by side "
                        "(length, updates, ms/update, time to beat BPTT, SG instruments at the end)")
    parser.add_argument("--time-to-result", action="store_true", help="add the time-to-result tables: when each "
                        "method first solved each length (Copy, Repeat Copy)")
    parser.add_argument("--readme", nargs="?", const="README.md", metavar="README",
                        help="also rewrite README's generated Table 1 block from the new table1.md (default README.md)")
    ns = parser.parse_args(args)
    if ns.readme:
        from sgrnn.readme import check_readme

        check_readme(ns.readme)  # before anything is written
    out = report(ns.runs_dir, ns.out, study=ns.study, time_to_result=ns.time_to_result)
    print((out / "table1.md").read_text(), end="")
    for key in [k for k in EXTRA if getattr(ns, k)]:
        print((out / EXTRA[key]).read_text(), end="")
    pngs = sorted(p.name for p in out.glob("*.png"))
    plots_note = f" and {len(pngs)} plots" if pngs else "; no plots: pip install -e \".[plot]\" for them"
    print(f"report: {out / 'report.md'} (with {out / 'table1.csv'}{plots_note})")
    if ns.readme:
        from sgrnn.readme import write_block

        changed = write_block(ns.readme, out / "table1.md")
        print(f"{ns.readme}: Table 1 block {'replaced' if changed else 'unchanged'} from {out / 'table1.md'}")
