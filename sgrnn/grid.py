"""``sgrnn grid``: Table 1 at CPU scale, every cell of the presets in conf/experiment (Copy and
Repeat Copy x T=2..5 x BPTT, DNI, DNI + Aux, the placebo and the oracle, and full BPTT; PTB BPTT
at T=8, 20, 40 and DNI, DNI + Aux, the placebo and the oracle at T=8; 3 seeds each), resumable.

1. The committed cells (``results/table1/cells``: each finished cell's summary.json, nothing else)
   are restored into the runs folder where it has none of its own, so they are not run again
   (``--fresh``: no restore, every cell is measured again). A cell, committed or in the runs
   folder, that was run with another config than its preset composes to now (a default changed)
   is stale: it is not restored, it runs again, and a stale run folder is set aside in RUNS/stale/.
2. Every cell without a finished summary.json runs, ``--jobs`` at a time, each as its own
   ``sgrnn train -m experiment=NAME T=T seed=SEED train.threads=1`` process (the folder a sweep of
   the preset gives it; output in RUNS/logs/). An interrupted cell resumes from its checkpoint when
   the same command runs again; a failed cell does not stop the others.
3. The finished cells' summary.json go back into ``results/table1/cells``, and the report (Table 1,
   tables, plots) is made again from them in ``results/table1``, and the README's Table 1 block.

The order puts first what Table 1's comparisons rest on: PTB's first seed of BPTT and DNI at T=8,
then BPTT and DNI on Copy and Repeat Copy at T=3, 2, 4, 5, then PTB, then DNI + Aux and the
placebo, then the ceilings (the oracle, full BPTT).

``--set long`` does the same for the ``*-long`` presets (runs/long, results/long, no README
block): Copy and Repeat Copy's six methods at T=3, then PTB to early stopping, then BPTT and DNI at
T=2, 4, 5, each until its length stops growing (docs/long.md). A cell that stopped at a budget its
preset has raised since goes on from its checkpoint.

``--set horizon`` runs the ``*-horizon`` presets (runs/horizon, results/horizon, whose report adds
the study table and the time to each length): the plateau study's 20-minute cells, BPTT, DNI, the
placebo and the oracle on seeds 200-204, Copy at T=3, then T=5, then Repeat Copy at T=3. Their
budget is wall time, so they need otherwise idle cores.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sgrnn.errors import UserError

STAGE = {"bptt": 0, "dni": 0, "dni-paper": 2, "dni-aux": 2, "placebo": 2, "oracle": 3, "full-bptt": 4}  # by method; PTB: 1
T_ORDER = [3, 2, 4, 5]  # the data-efficiency figures' T first
# The grids (``--set``): which presets of conf/experiment each runs. table1: Table 1 at CPU scale
# (every preset but the long, horizon and paper-width ones); long: the same comparisons at ten
# times the budget and more, to where each method stops (the ``*-long`` presets); horizon: the
# plateau study's 20-minute cells, BPTT, DNI, the placebo and the oracle, 5 seeds, and full BPTT on
# Copy (``*-horizon``).
LONG, HORIZON = "-long", "-horizon"
SETS = {"table1": lambda stem: "paper" not in stem and not stem.endswith((LONG, HORIZON)),
        "long": lambda stem: stem.endswith(LONG),
        "horizon": lambda stem: stem.endswith(HORIZON)}


@dataclass(frozen=True)
class Cell:
    preset: str
    task: str
    sg: str
    T: int
    seed: int

    @property
    def folder(self) -> str:
        """Its run folder below RUNS, as a sweep of its preset names it (conf/config.yaml, hydra.sweep.subdir)."""
        return f"{self.task}/sg={self.sg},T={self.T},seed={self.seed},experiment={self.preset}"

    @property
    def name(self) -> str:
        return f"experiment={self.preset} T={self.T} seed={self.seed}"

    def priority(self) -> tuple:
        method = self.preset[len(self.task) + 1 :].removesuffix(LONG).removesuffix(HORIZON)
        if self.task == "ptb":
            stage = -1 if method in ("bptt", "dni") and self.T == 8 and self.seed == 0 else 1
        else:
            stage = STAGE.get(method, 5)
        t = T_ORDER.index(self.T) if self.task != "ptb" and self.T in T_ORDER else self.T
        if self.preset.endswith(LONG):  # every method at T=3 (full BPTT's T=1000 with them), PTB, then T=2, 4, 5
            block = 1 if self.task == "ptb" else 0 if self.T not in T_ORDER[1:] else 1 + t
            return (block, stage, self.T, self.task, self.preset, self.seed)
        if self.preset.endswith(HORIZON):  # Copy T=3 (full BPTT's T=1000 with it), Copy T=5, Repeat Copy T=3;
            # each seed's methods side by side
            return (self.task != "copy", self.T if self.T in T_ORDER else 3, self.seed, stage, self.preset)
        return (stage, t, self.task, self.preset, self.seed)


@functools.lru_cache(maxsize=None)
def grid_cells(grid: str = "table1") -> tuple[Cell, ...]:
    """Every cell of the grid's presets (``SETS``: conf/experiment), in run order."""
    from hydra import compose, initialize_config_dir

    from sgrnn.config import conf_dir, register_configs

    register_configs()
    cells = []
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        for path in sorted(Path(conf_dir(), "experiment").glob("*.yaml")):
            if not SETS[grid](path.stem):
                continue
            cfg = compose(config_name="config", overrides=[f"experiment={path.stem}"], return_hydra_config=True)
            sweep = cfg.hydra.sweeper.params
            cells += [Cell(path.stem, cfg.task.name, cfg.sg.name, int(T), int(seed))
                      for T in str(sweep.T).split(",") for seed in str(sweep.seed).split(",")]
    return tuple(sorted(cells, key=Cell.priority))


def complete(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("status") == "complete"
    except (OSError, ValueError, AttributeError):
        return False


def changes(cells: Iterable[Cell], root: Path) -> dict[Cell, list[str]]:
    """The cells whose finished summary.json below ``root`` was run with another config than the
    one their preset composes to now (a default or a preset changed since): {cell: ['key: then ->
    now', ...]}. Budgets, threads and data paths do not count (``checkpoint.config_changes``);
    a summary without its config is taken as it is."""
    from omegaconf import OmegaConf

    from sgrnn.checkpoint import config_changes

    out = {}
    for cell in cells:
        path = root / cell.folder / "summary.json"
        if not complete(path) or not isinstance(then := json.loads(path.read_text()).get("config"), dict):
            continue
        cfg = preset_config(cell.preset).copy()  # T and seed are set on a copy
        cfg.T, cfg.seed = cell.T, cell.seed
        if diff := config_changes(then, OmegaConf.to_container(cfg, resolve=True)):
            out[cell] = diff
    return out


@functools.lru_cache(maxsize=None)
def preset_config(preset: str):
    """The config a cell of ``preset`` runs with, as ``command`` launches it (its T and seed and
    PTB's data path aside, which ``changes`` does not compare): composed once a preset, however
    many cells and folders are checked."""
    from sgrnn.config import make_config

    return make_config(f"experiment={preset}", "train.threads=1", "train.progress=false")


def raised(cells: Iterable[Cell], root: Path) -> dict[Cell, str]:
    """The cells whose finished summary.json below ``root`` stopped at a budget that their preset
    has raised since (what they spent does not reach it now): {cell: 'key: then -> now'}. In a runs
    folder such a cell goes on from its last checkpoint (``checkpoint.completed``); a committed one
    has no checkpoint, so it runs again."""
    from sgrnn.checkpoint import BUDGETS, summary_spent

    out = {}
    for cell in cells:
        path = root / cell.folder / "summary.json"
        if not complete(path):
            continue
        s = json.loads(path.read_text())
        then = (s.get("config") or {}).get("train", {})
        now = preset_config(cell.preset).train
        if s.get("stop_reason") in BUDGETS and summary_spent(now, s) is None:
            key = "flat_after" if s["stop_reason"] == "flat" else s["stop_reason"]
            out[cell] = f"train.{key}: {then.get(key, '?')} -> {now[key]}"
    return out


def stale_note(stale: dict[Cell, list[str]], where: Path) -> str:
    """One line on the cells run with another config: how many, and what changed."""
    keys = sorted({d.split(":")[0] for diff in stale.values() for d in diff})
    example = next(iter(stale.values()))
    return (f"{len(stale)} finished cells in {where} were run with another config than their preset's now "
            f"({', '.join(keys)}; e.g. {'; '.join(example[:3])}): they run again")


def copy_finished(cells: Iterable[Cell], src: Path, dst: Path, only_missing: bool) -> int:
    """Copy each cell's finished summary.json from ``src`` to ``dst`` (where ``dst`` has none, if
    ``only_missing``); how many were copied."""
    n = 0
    for cell in cells:
        a, b = src / cell.folder / "summary.json", dst / cell.folder / "summary.json"
        if not complete(a) or (only_missing and b.exists()):
            continue
        b.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a, b)
        n += 1
    return n


def command(cell: Cell, runs: Path, ptb_dir: str | None) -> list[str]:
    """The cell's `sgrnn train` arguments."""
    data = [f"task.data_dir={ptb_dir}"] if ptb_dir and cell.task == "ptb" else []
    return ["train", "-m", f"experiment={cell.preset}", f"T={cell.T}", f"seed={cell.seed}", *data, "train.threads=1",
            "train.progress=false", f"hydra.sweep.dir={runs}"]


def outcome(runs: Path, cell: Cell) -> str:
    """The cell's result in a few words, from its summary.json."""
    from sgrnn.runs import fmt, result

    try:
        s = json.loads((runs / cell.folder / "summary.json").read_text())
    except (OSError, ValueError):
        return "no summary.json"
    what = "length solved" if "max_solved" in s else "test BPC"
    return f"{what} {fmt(result(s))}, {s.get('steps')} updates, {s.get('wall_s', 0) / 60:.1f} min"


def run_cells(todo: list[Cell], runs: Path, jobs: int, ptb_dir: str | None) -> tuple[list[str], bool]:
    """Run the cells ``jobs`` at a time; the failed cells' lines, and whether a signal stopped it."""
    logs = runs / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue, running, failed, n = list(todo), {}, [], 0
    stop, told = [], set()
    old = {sig: signal.signal(sig, lambda s, f: stop.append(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while (queue and not stop) or running:
            while queue and not stop and len(running) < jobs:
                cell = queue.pop(0)
                n += 1
                log = logs / f"{cell.folder.replace('/', ',')}.log"
                with open(log, "a") as f:
                    p = subprocess.Popen([sys.executable, "-m", "sgrnn.cli", *command(cell, runs, ptb_dir)], stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True)
                running[p] = (cell, n, log, time.time())
                print(f"[{n}/{len(todo)}] start {cell.name}", flush=True)
            if stop:
                for p in running:
                    if p.poll() is None and p not in told:
                        p.send_signal(signal.SIGINT)  # the cell writes a checkpoint and stops
                        told.add(p)
            for p in [p for p in running if p.poll() is not None]:
                cell, k, log, t0 = running.pop(p)
                if p.returncode == 0:
                    print(f"[{k}/{len(todo)}] done  {cell.name}: {outcome(runs, cell)}", flush=True)
                    continue
                lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
                last = next((x for x in reversed(lines) if "error" in x.lower()), lines[-1] if lines else "")
                failed.append(f"{cell.name} (exit {p.returncode}): {last.strip()} [log {log}]")
                print(f"[{k}/{len(todo)}] {'stopped' if stop else 'FAILED'} {cell.name} after "
                      f"{(time.time() - t0) / 60:.1f} min: {last.strip()}", flush=True)
            time.sleep(0.5)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return failed, bool(stop)


def finish(cells: Iterable[Cell], runs: Path, results: Path, readme: Path | None) -> None:
    """Save the finished cells into results/.../cells and make the report and README block again."""
    from sgrnn.readme import write_block
    from sgrnn.report import report

    store, cells = results / "cells", list(cells)
    saved = copy_finished(cells, runs, store, only_missing=False) if runs.is_dir() else 0
    print(f"sgrnn grid: {saved} finished cells saved to {store}")
    if not any(store.rglob("summary.json")):
        print("sgrnn grid: no finished cell yet: no report")
        return
    horizon = any(c.preset.endswith(HORIZON) for c in cells)  # its report adds the study's tables
    out = report(store, results, study=horizon, time_to_result=horizon)
    print(f"sgrnn grid: report {out / 'report.md'} (with table1.md, table1.csv and plots)")
    if readme:
        changed = write_block(readme, out / "table1.md")
        print(f"sgrnn grid: {readme}: Table 1 block {'replaced' if changed else 'unchanged'} from {out / 'table1.md'}")


@dataclass
class Plan:
    """What the grid does with each chosen cell, and why (``make_plan``)."""
    done: list[Cell]  # finished in the runs folder with its preset's config and budget
    committed: list[Cell]  # restored from the committed cells, not run
    todo: list[Cell]  # to run (or to go on from a checkpoint)
    stale_any: dict  # every cell whose run folder holds a run of another config: {cell: ['key: then -> now']}
    stale_runs: dict  # ... of the chosen: set aside, run again
    stale_store: dict  # committed copies of another config: not restored
    extend: dict  # finished in the runs folder at a budget since raised: go on ({cell: 'key: then -> now'})
    short_store: dict  # committed copies at a budget since raised: not restored
    notes: list[str]

    def mark(self, c: Cell) -> str:
        """The dry run's comment before a cell's command."""
        if c in self.done:
            return "# finished: "
        if c in self.committed:
            return "# committed: "
        if c in self.stale_runs or c in self.stale_store:
            return f"# stale ({'; '.join((self.stale_runs.get(c) or self.stale_store[c])[:2])}): "
        if c in self.extend or c in self.short_store:
            return f"# budget raised ({self.extend.get(c) or self.short_store[c]}): "
        return ""


def make_plan(cells: tuple[Cell, ...], chosen: list[Cell], runs: Path, store: Path, fresh: bool) -> Plan:
    """Sort the chosen cells into finished, committed and to run. A run (in ``runs``) or a
    committed copy (in ``store``) of another config than the preset's now is stale: not counted. A
    budget raised since a cell finished: in the runs folder it goes on from its checkpoint; a
    committed copy (no checkpoint) is not restored, so the cell runs again."""
    from sgrnn.checkpoint import LATEST

    stale_any = changes(cells, runs)  # the unchosen stale run folders stay, but are never saved as cells
    stale_runs = {c: d for c, d in stale_any.items() if c in chosen}
    stale_store = {} if fresh else changes(cells, store)  # every cell: the unchosen are restored too
    extend = {c: d for c, d in raised(chosen, runs).items() if c not in stale_runs}
    for c in [c for c in extend if not (runs / c.folder / LATEST).exists()]:  # restored, no checkpoint: run again
        stale_runs[c] = [extend.pop(c) + " (no checkpoint to go on from)"]
    short_store = {} if fresh else raised(cells, store)
    done = [c for c in chosen if complete(runs / c.folder / "summary.json") and c not in stale_runs and c not in extend]
    committed = [c for c in chosen if c not in done and not fresh and c not in stale_store and c not in short_store
                 and complete(store / c.folder / "summary.json")]
    todo = [c for c in chosen if c not in done and c not in committed]
    notes = [stale_note(st, where) for st, where in (({c: d for c, d in stale_store.items() if c in chosen}, store),
                                                      (stale_runs, runs)) if st]
    if other := [c for c in stale_any if c not in chosen]:
        notes.append(f"{len(other)} other finished cells in {runs} were run with another config than their preset's "
                     "now: not saved as cells (choose them with --only to measure them again)")
    if extend:
        notes.append(f"{len(extend)} finished cells in {runs} stopped at a budget their preset has raised since "
                     f"(e.g. {next(iter(extend.values()))}): they go on from their checkpoints")
    return Plan(done, committed, todo, stale_any, stale_runs, stale_store, extend, short_store, notes)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="sgrnn grid", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="table1", choices=list(SETS), help="which grid: table1 (default); long: "
                   "the *-long presets, ten times Table 1's budget and more; horizon: the *-horizon presets, 20 "
                   "minutes a cell (wall time: run on idle cores)")
    p.add_argument("--jobs", type=int, default=2, help="cells at a time, one thread each (default 2)")
    p.add_argument("--runs", default=None, help="the runs folder (default runs/SET)")
    p.add_argument("--dry-run", action="store_true", help="print the sgrnn train commands, run and write nothing")
    p.add_argument("--only", metavar="SUBSTRING", action="append", help="run only the cells whose 'experiment=NAME "
                   "T=T seed=S ' contains this (e.g. 'copy-dni ', 'T=3 ', ptb-); repeat it for any of several")
    p.add_argument("--fresh", action="store_true", help="restore no committed cell: measure every cell again")
    p.add_argument("--results", default=None, help="committed cells (RESULTS/cells) and the generated "
                   "report files (default results/SET)")
    p.add_argument("--readme", default="README.md", help="the README whose Table 1 block is regenerated (default README.md; "
                   "--set table1 only)")
    p.add_argument("--no-readme", action="store_true", help="leave the README alone")
    p.add_argument("--ptb-dir", default=None, help="PTB data (default: $SGRNN_DATA_DIR, else data/ptb)")
    ns = p.parse_args(argv)
    runs, results = Path(ns.runs or f"runs/{ns.set}"), Path(ns.results or f"results/{ns.set}")
    store = results / "cells"
    if ns.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {ns.jobs}")
    for flag, path in (("--runs", runs), ("--results", results), ("--results", store)):
        if path.exists() and not path.is_dir():
            raise UserError(f"{flag} {path} is a file, not a folder")
    # Table 1 restores its committed cells, so a missing store means the wrong folder; a new grid
    # (--set long) starts with none, in the repository's results/.
    new_grid = ns.set != "table1" and ns.results is None and Path("results").is_dir()
    if not ns.fresh and not store.is_dir() and not new_grid:
        raise UserError(f"no committed cells in {store} (run from the repository's root, pass --results DIR, or "
                        "--fresh to measure every cell)")
    readme = None
    if not ns.no_readme and not ns.dry_run and ns.set == "table1":
        from sgrnn.readme import check_readme

        if not Path(ns.readme).exists():
            raise UserError(f"no README {ns.readme} (run from the repository's root, or pass --no-readme)")
        readme = check_readme(ns.readme)
    cells = grid_cells(ns.set)
    chosen = [c for c in cells if ns.only is None or any(o in f"{c.name} " for o in ns.only)]
    if not chosen:
        raise UserError(f"--only {' '.join(map(repr, ns.only))} matches no cell of the grid ({cells[0].name}, ...)")
    pl = make_plan(cells, chosen, runs, store, ns.fresh)
    done, committed, todo, notes = pl.done, pl.committed, pl.todo, pl.notes
    plan = (f"{len(chosen)} cells: {len(committed)} committed in {store} (restored, not run), {len(done)} finished "
            f"in {runs} already, {len(todo)} to run ({ns.jobs} at a time)")
    if ns.dry_run:
        for c in chosen:
            print(f"{pl.mark(c)}sgrnn {' '.join(command(c, runs, ns.ptb_dir))}")
        for note in notes:
            print(f"# {note}")
        print(f"# {plan}")
        return 0
    if any(c.task == "ptb" for c in todo):
        from sgrnn.tasks.ptb import check_present

        check_present(ns.ptb_dir or os.environ.get("SGRNN_DATA_DIR", "data/ptb"))
    runs.mkdir(parents=True, exist_ok=True)
    for note in notes:
        print(f"sgrnn grid: {note}")
    for cell in pl.stale_runs:  # kept, not overwritten: runs/stale/<folder> (the newest set-aside)
        aside = runs / "stale" / cell.folder
        shutil.rmtree(aside, ignore_errors=True)
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(runs / cell.folder, aside)
    if not ns.fresh:
        n = copy_finished([c for c in cells if c not in pl.stale_store and c not in pl.short_store], store, runs,
                          only_missing=True)
        print(f"sgrnn grid: {n} finished cells restored from {store} into {runs}")
    print(f"sgrnn grid: {plan}; logs in {runs / 'logs'}", flush=True)
    current = [c for c in cells if c in chosen or c not in pl.stale_any]  # the cells whose finished runs are saved
    failed, stopped = run_cells(todo, runs, ns.jobs, ns.ptb_dir) if todo else ([], False)
    if stopped:
        saved = copy_finished(current, runs, store, only_missing=False)
        print(f"sgrnn grid: stopped; {saved} finished cells saved to {store}; the same command resumes the grid",
              file=sys.stderr)
        return 130
    finish(current, runs, results, readme)
    left = sum(not complete(runs / c.folder / "summary.json") for c in cells)
    print(f"sgrnn grid: {len(cells) - left} of {len(cells)} cells finished")
    if failed:
        print(f"sgrnn: error: {len(failed)} cell(s) failed (the others finished; the same command runs them again):",
              file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
