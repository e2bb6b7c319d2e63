"""Finished runs as the report and its plots read them: every ``summary.json`` below a folder,
named by method (with its levers) and grouped by task, method and T. Nothing here writes."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Callable, Optional

from sgrnn.config import flatten, schema_default


METHODS = {"off": "BPTT", "on": "DNI", "aux": "DNI + Aux", "placebo": "Placebo", "batch-mean": "Batch mean", "centred": "Centred", "tracked": "Tracked mean",
           "frozen": "Frozen random M", "constant": "Learned constant", "oracle": "Oracle", "full": "Full BPTT"}
# Truncation at or beyond this many steps is untruncated BPTT on Copy and Repeat Copy (no episode
# of a Table 1 budget is this long): the "Full BPTT" ceiling (conf/experiment/*-full-bptt.yaml).
FULL_T = 1000
TASKS = {"copy": "Copy", "repeat-copy": "Repeat Copy", "ptb": "Penn Treebank"}  # titles; others: title()


def title(task: str) -> str:
    """A task's name in tables ("reverse-copy" -> "Reverse Copy" when TASKS has no title for it)."""
    return TASKS.get(task) or task.replace("-", " ").title()


def is_curriculum(s: dict) -> bool:
    """A run of a curriculum task (its result the largest length solved, higher is better), not of
    a language model (test BPC, lower is better): read from what its summary holds."""
    return "max_solved" in s or ("test_bpc" not in s and "best_valid_bpc" not in s and s.get("task") != "ptb")


def language_tasks(cells: dict) -> set:
    """The tasks of ``group``'s cells whose runs are language models."""
    return {k[0] for k, by_T in cells.items() for runs in by_T.values() for s in runs if not is_curriculum(s)}


# Table 1 of the paper (ICML version) as far as it could be read (../shared/PAPER.md): largest
# length modelled for Copy / Repeat Copy; PTB test BPC from the paper's learning-curve figure.
PAPER = {
    ("copy", "BPTT"): {2: 7, 3: 8, 4: 10, 5: 8},
    ("copy", "DNI"): {2: 16, 3: 14, 4: 18, 5: 18},
    ("repeat-copy", "BPTT"): {2: 7, 3: 5, 4: 19, 5: 23},
    ("repeat-copy", "DNI"): {2: 39, 3: 33, 4: 39, 5: 59},
    ("ptb", "BPTT"): {8: 1.354, 20: 1.349, 40: 1.344},
    ("ptb", "DNI"): {8: 1.340},
}


def load_runs(root: Path, problems: Optional[list] = None) -> list[dict]:
    """Every summary.json under ``root``, with its folder. Folders that cannot be read as a run
    go to ``problems`` as (folder, what is wrong): an unreadable summary.json, or checkpoints
    with no summary (a run killed before it wrote one, or still training)."""
    runs, seen = [], set()
    for path in sorted(root.rglob("summary.json")):
        seen.add(path.parent)
        try:
            s = json.loads(path.read_text())
            if not isinstance(s, dict) or not isinstance(s.get("task"), str) or not isinstance(s.get("T"), int):
                raise ValueError("not an sgrnn summary")
        except (OSError, ValueError) as e:
            if problems is not None:
                problems.append((str(path.parent), f"unreadable summary.json ({str(e)[:80]})"))
            continue
        runs.append({**s, "dir": str(path.parent)})
    if problems is not None:
        for ckpt in sorted(root.rglob("checkpoint*.pt")):
            if ckpt.parent not in seen:
                seen.add(ckpt.parent)
                problems.append((str(ckpt.parent), "checkpoints but no summary.json (killed, or still training)"))
    return runs


def method_of(s: dict) -> str:
    """BPTT / DNI / DNI + Aux / Oracle, with any non-default SG placement or warm-up, and the
    levers (hyperparameter overrides) its folder name records."""
    extras = variant_of(s.get("dir", ""))
    structural = structure_of(s)
    if not extras:
        return structural
    return structural[:-1] + f", {', '.join(extras)})" if structural.endswith(")") else f"{structural} ({', '.join(extras)})"


def structure_of(s: dict) -> str:
    """The method as the paper would name it: BPTT / DNI / ..., with a non-default placement,
    warm-up or depth (which make another method), without hyperparameter levers."""
    full = s.get("sg") == "off" and is_curriculum(s) and (s.get("T") or 0) >= FULL_T
    base = METHODS["full"] if full else METHODS.get(s.get("sg"), str(s.get("sg")))
    extras = []
    if s.get("sg_placement") not in (None, "all"):
        extras.append(s["sg_placement"])
    if s.get("sg_start_step"):
        extras.append(f"warm-up {s['sg_start_step']}")
    if (s.get("config") or {}).get("model", {}).get("num_layers", 1) > 1:
        extras.append(f"{s['config']['model']['num_layers']} layers")
    return base + (f" ({', '.join(extras)})" if extras else "")


# Overrides in a run folder's name that do not make another method: the cell's coordinates, its
# budget and instruments, a preset's name, and what method_of names already.
NOT_A_VARIANT = ("sg=", "T=", "seed=", "experiment=", "train.", "diag.", "hydra", "device=",
                 "model.num_layers=", "sg.placement=", "sg.start_step=")


def variant_of(folder: str) -> list[str]:
    """The overrides a run folder's name records beyond its cell (e.g. ``sg.scale=0.1``): a
    study's levers, so that each value is its own row."""
    return [item for item in Path(folder).name.split(",")[3:] if "=" in item and not item.startswith(NOT_A_VARIANT)]


def baseline_of(method: str) -> str:
    """The BPTT row with the same network as ``method`` (e.g. "BPTT (2 layers)")."""
    layers = [e for e in method.partition(" (")[2].rstrip(")").split(", ") if e.endswith(" layers")]
    return "BPTT" + (f" ({layers[0]})" if layers else "")


def result(s: dict) -> Optional[float]:
    """The Table 1 number of one finished run."""
    if not is_curriculum(s):
        v = s.get("test_bpc")
        return v if isinstance(v, (int, float)) and math.isfinite(v) else None
    return s.get("max_solved", {}).get("length")


# Config keys that never make runs of one cell differ: the seed, and presentation and resume
# settings (sgrnn.checkpoint.RESUMABLE_CHANGES less the budgets, which do make a difference).
NOT_A_DIFFERENCE = {"seed", "device", "task.data_dir", "train.progress", "train.threads", "train.resume",
                    "train.log_every", "train.checkpoint_every", "train.timing"}


def flat_config(s: dict) -> dict:
    """A run's config as {dotted key: value}, less the keys in NOT_A_DIFFERENCE."""
    return {k: v for k, v in flatten(s.get("config") or {}).items() if k not in NOT_A_DIFFERENCE}


def group(runs: list[dict]) -> dict:
    """{(task, method): {T: [summaries]}}. Runs that share task, method and T but whose configs
    differ other than in the seed (another budget, a lever set without a folder name) are never
    pooled: each kind gets its own method label, naming the keys that differ."""
    first: dict = defaultdict(list)
    for s in runs:
        first[(s["task"], method_of(s), s["T"])].append(s)
    cells: dict = defaultdict(lambda: defaultdict(list))
    for (task, method, T), members in first.items():
        # A failed cell's summary has no config: it stays in the cell its task, method and T name.
        flats = [flat_config(s) if isinstance(s.get("config"), dict) else None for s in members]
        known = [f for f in flats if f is not None]
        every = sorted({k for f in known for k in f})

        def value(f, k):  # a key an older run lacks ran as its default
            return f.get(k, schema_default(k))
        keys = [k for k in every if len({str(value(f, k)) for f in known}) > 1]
        for s, f in zip(members, flats):
            label = method
            if keys and f is not None:
                extra = ", ".join(f"{k}={value(f, k)}" for k in keys)
                label = method[:-1] + f", {extra})" if method.endswith(")") else f"{method} ({extra})"
            cells[(task, label)][T].append(s)
    return cells


def order_key(key):
    task, method = key
    base = list(METHODS.values())
    head = method.split(" (")[0]
    return (list(TASKS).index(task) if task in TASKS else 99, task, base.index(head) if head in base else 99, method)


def median(values: list[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def fmt(v) -> str:
    """Integers as they are; other numbers to 3 decimals below 10, 1 below 100, else none."""
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    if abs(v) < 1e-3:
        return f"{v:.1e}"
    digits = 3 if abs(v) < 10 else 1 if abs(v) < 100 else 0
    return f"{v:.{digits}f}"


def finished(runs: list[dict]) -> list[dict]:
    return [s for s in runs if s.get("status") == "complete"]


def med_of(runs: list[dict], get: Callable[[dict], Optional[float]]) -> Optional[float]:
    return median([v for v in (get(s) for s in finished(runs)) if v is not None])


def last_gain(solved_at: list[dict]) -> int:
    """The timestep-samples at which a curriculum run first solved its largest length (0: none).
    A length solved again (at ``task.max_N``) is no gain."""
    top = max((p["length"] for p in solved_at), default=None)
    return min((p["samples"] for p in solved_at if p["length"] == top), default=0)


def length_at(s: dict, samples: float) -> int:
    """The largest length a curriculum run had solved by ``samples`` timestep-samples."""
    return max((p["length"] for p in s.get("solved_at", []) if p["samples"] <= samples), default=0)


def sg_curve(s: dict) -> list[dict]:
    """A run's SG-quality measurements; ``sg_cos`` is the state-space cosine (``sg_state_cos``
    since the parameter-space one came; older runs call it ``sg_cos``)."""
    return [{"sg_cos": p.get("sg_state_cos"), **p} for p in s.get("sg_quality", []) if "sg_cos" in p or "sg_state_cos" in p]
