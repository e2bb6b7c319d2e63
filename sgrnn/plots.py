"""The PNG plots of ``sgrnn report`` (matplotlib, the ``plot`` extra): curriculum length vs
timestep-samples (linear, and on a log axis with the median over seeds and the paper's marks) and SG cosine vs updates (a row of panels per task, a column per T, a colour
per method, a line per seed), and PTB validation BPC vs timestep-samples (the paper's figure:
one panel, a colour per method and T, the median over seeds with their range)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

from sgrnn.runs import FULL_T, PAPER, finished, language_tasks, length_at, order_key, result, sg_curve, title


def curriculum_curve(s: dict) -> tuple[list, list]:
    """Length solved vs timestep-samples, from 0 to the end of the run."""
    points = s.get("solved_at", [])
    xs = [0] + [p["samples"] for p in points] + [s.get("samples", points[-1]["samples"] if points else 0)]
    ys = [0] + [p["length"] for p in points] + [points[-1]["length"] if points else 0]
    return (xs, ys) if len(xs) > 2 or xs[-1] else ([], [])


def plots(cells: dict, out: Path) -> list[str]:
    """PNG files written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    lm = language_tasks(cells)
    tasks = sorted({k[0] for k in cells}, key=lambda t: order_key((t, "")))

    def figure(name: str, tasks: list[str], series: Callable[[dict], tuple[list, list]], xlabel: str, ylabel: str):
        """One row of panels per task, one column per T."""
        rows = [task for task in tasks if any(k[0] == task for k in cells)]
        Ts = {task: [T for T in sorted({T for k in cells if k[0] == task for T in cells[k]})
                     if any(series(s)[0] for k in cells if k[0] == task for s in finished(cells[k].get(T, [])))]
              for task in rows}
        rows = [task for task in rows if Ts[task]]
        if not rows:
            return
        cols = max(len(Ts[task]) for task in rows)
        fig, axes = plt.subplots(len(rows), cols, figsize=(4 * cols, 3.2 * len(rows)), squeeze=False)
        for r, task in enumerate(rows):
            for c in range(cols):
                ax = axes[r][c]
                if c >= len(Ts[task]):
                    ax.set_visible(False)
                    continue
                T = Ts[task][c]
                for i, key in enumerate(sorted((k for k in cells if k[0] == task), key=order_key)):
                    for j, s in enumerate(finished(cells[key].get(T, []))):
                        xs, ys = series(s)
                        if xs:
                            ax.plot(xs, ys, color=f"C{i}", alpha=0.8, drawstyle="default" if task in lm else "steps-post",
                                    label=key[1] if j == 0 else None)
                ax.set_title(f"{title(task)}, T={T}")
                ax.set_xlabel(xlabel)
                ax.legend(fontsize=7)
            axes[r][0].set_ylabel(ylabel)
        save(fig, name)

    def save(fig, name: str):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    def ptb_figure(name: str):
        """The paper's PTB figure: validation BPC against timestep-samples, every method and T in
        one panel, the median over seeds as a line and their range as a band."""
        lines = []
        for key in sorted((k for k in cells if k[0] == "ptb"), key=order_key):
            for T in sorted(cells[key]):
                curves = [s.get("valid_curve", []) for s in finished(cells[key][T])]
                curves = [c for c in curves if c]
                if curves:
                    lines.append((f"{key[1]}, T={T} (n={len(curves)})", curves))
        if not lines:
            return
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for i, (label, curves) in enumerate(lines):
            n = min(len(c) for c in curves)  # seeds validate at the same timestep-samples
            xs = [curves[0][k]["samples"] for k in range(n)]
            ys = [[c[k]["bpc"] for c in curves] for k in range(n)]
            ax.plot(xs, [statistics.median(y) for y in ys], color=f"C{i}", label=label)
            ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], color=f"C{i}", alpha=0.2, linewidth=0)
        ax.set_title("Penn Treebank characters: median over seeds, band = range")
        ax.set_xlabel("timestep-samples")
        ax.set_ylabel("validation BPC")
        ax.legend(fontsize=7)
        save(fig, name)

    def budget_figure(name: str, tasks: list[str]):
        """Length solved against timestep-samples on a log axis, a panel per task and T: the median
        over seeds as a line, their range as a band (up to the shortest seed's budget), the
        paper's BPTT and DNI lengths as dashed marks."""
        panels = sorted({(k[0], T) for k in cells if k[0] in tasks for T in cells[k]
                         if T < FULL_T and any(s.get("solved_at") for s in finished(cells[k][T]))},
                        key=lambda p: (order_key((p[0], "")), p[1]))
        if not panels:
            return
        cols = min(4, len(panels))
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        for ax, (task, T) in zip(axes.flat, panels):
            keys = sorted((k for k in cells if k[0] == task), key=order_key)  # a colour per method, in every panel
            for i, key in enumerate(keys):
                # full BPTT (one segment per episode) is the same run at every T: in every panel, a ceiling
                runs = [s for t in cells[key] if t == T or t >= FULL_T for s in finished(cells[key][t])]
                runs = [s for s in runs if result(s) is not None and s.get("samples")]
                if not runs:
                    continue
                end = min(s["samples"] for s in runs)
                xs = sorted({p["samples"] for s in runs for p in s.get("solved_at", []) if 0 < p["samples"] <= end} | {end})
                ys = [[length_at(s, x) for s in runs] for x in xs]
                ax.step(xs, [statistics.median(y) for y in ys], where="post", color=f"C{i}",
                        label=f"{key[1]} (n={len(runs)})")
                ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], step="post", color=f"C{i}", alpha=0.2,
                                linewidth=0)
            for method, style in (("BPTT", ":"), ("DNI", "--")):
                if (mark := PAPER.get((task, method), {}).get(T)) is not None:
                    ax.axhline(mark, color="grey", linestyle=style, linewidth=1, label=f"paper's {method}")
            ax.set_xscale("log")
            ax.set_title(f"{title(task)}, T={T}")
            ax.set_xlabel("timestep-samples")
            ax.set_ylabel("length solved")
            ax.legend(fontsize=6)
        save(fig, name)

    figure("curriculum.png", [t for t in tasks if t not in lm], curriculum_curve, "timestep-samples", "length solved")
    budget_figure("length_vs_budget.png", [t for t in tasks if t not in lm])
    ptb_figure("ptb_valid_bpc.png")
    figure("sg_cos.png", tasks,
           lambda s: ([p["step"] for p in sg_curve(s)], [p["sg_cos"] for p in sg_curve(s)]),
           "updates", "state-space cos(g_hat, g_true)")
    figure("sg_param_cos.png", tasks,
           lambda s: ([p["step"] for p in sg_curve(s) if "sg_param_cos" in p],
                      [p["sg_param_cos"] for p in sg_curve(s) if "sg_param_cos" in p]),
           "updates", "parameter-space cos(J^T g_given, J^T g_true)")
    return written
