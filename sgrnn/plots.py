"""The PNG plots of ``sgrnn report`` (matplotlib, the ``plot`` extra): curriculum length vs
timestep-samples, PTB validation BPC vs timestep-samples, SG cosine vs updates; one panel per
task and T, one colour per method, one line per seed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sgrnn.runs import TASKS, finished, order_key, sg_curve


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

    def figure(name: str, tasks: list[str], series: Callable[[dict], tuple[list, list]], xlabel: str, ylabel: str):
        panels = [(task, T) for task in tasks for T in sorted({T for k in cells if k[0] == task for T in cells[k]})]
        panels = [(task, T) for task, T in panels
                  if any(series(s)[0] for k in cells if k[0] == task for s in finished(cells[k].get(T, [])))]
        if not panels:
            return
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
        for ax, (task, T) in zip(axes[0], panels):
            for i, key in enumerate(sorted((k for k in cells if k[0] == task), key=order_key)):
                for j, s in enumerate(finished(cells[key].get(T, []))):
                    xs, ys = series(s)
                    if xs:
                        ax.plot(xs, ys, color=f"C{i}", alpha=0.8, drawstyle="steps-post" if task != "ptb" else "default",
                                label=key[1] if j == 0 else None)
            ax.set_title(f"{TASKS.get(task, task)}, T={T}")
            ax.set_xlabel(xlabel)
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel(ylabel)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    figure("curriculum.png", ["copy", "repeat-copy"], curriculum_curve, "timestep-samples", "length solved")
    figure("ptb_valid_bpc.png", ["ptb"],
           lambda s: ([p["samples"] for p in s.get("valid_curve", [])], [p["bpc"] for p in s.get("valid_curve", [])]),
           "timestep-samples", "validation BPC")
    figure("sg_cos.png", list(TASKS),
           lambda s: ([p["step"] for p in sg_curve(s)], [p["sg_cos"] for p in sg_curve(s)]),
           "updates", "state-space cos(g_hat, g_true)")
    figure("sg_param_cos.png", list(TASKS),
           lambda s: ([p["step"] for p in sg_curve(s) if "sg_param_cos" in p],
                      [p["sg_param_cos"] for p in sg_curve(s) if "sg_param_cos" in p]),
           "updates", "parameter-space cos(J^T g_given, J^T g_true)")
    return written
