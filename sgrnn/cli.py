"""The ``sgrnn`` command. ``sgrnn train`` is a Hydra app (overrides, -m, --cfg, --help all work);
``sgrnn report`` turns finished runs into Table 1 (sgrnn.report); ``sgrnn grid`` runs the Table 1
grid (sgrnn.grid); ``sgrnn bench`` times the trainer (sgrnn.bench); ``sgrnn analyse`` measures
finished runs (sgrnn.analyse); ``sgrnn fetch-ptb`` downloads and checks the Penn Treebank data."""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sgrnn.config import conf_dir, register_configs
from sgrnn.errors import Refused, UserError
from sgrnn.tracking import atomic_write_json

USAGE = """usage: sgrnn COMMAND [ARGS]

commands:
  train       train one run, or a sweep with -m (a Hydra app: sgrnn train --help)
  report      Table 1, cost, benefit and SG quality from finished runs: sgrnn report RUNS_DIR
              [--study] [--time-to-result] [--readme [README.md]]
  grid        the Table 1 grid, resumable, N cells at a time: sgrnn grid [--jobs N] [--dry-run] [--set long|horizon]
  bench       the trainer's throughput against a bare LSTM step: sgrnn bench [--device cuda]
  analyse     measure finished runs from their checkpoints: sgrnn analyse errors|quality|ceiling|frontier RUN_DIR...
  fetch-ptb   download Penn Treebank characters and check them: sgrnn fetch-ptb [DIR]

Each command's options: sgrnn COMMAND --help
"""


register_configs()


FULL_ERROR = os.environ.get("HYDRA_FULL_ERROR") == "1"  # Hydra's switch for full tracebacks
# Cells of a sweep that failed (the sweep goes on without them): one line each, appended to the
# file this variable names; `main` creates it, and cells in other local processes (joblib) inherit it.
FAILED_LOG = "SGRNN_FAILED_CELLS"


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def train_app(cfg: DictConfig) -> Optional[float]:
    """One run (one cell of a sweep); returns its objective for a searching sweeper
    (hydra/sweeper=search): the length solved, or PTB's best validation BPC."""
    from sgrnn.runtime import Interrupted
    from sgrnn.train import train

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        summary = train(cfg, run_dir, slot(hydra_cfg))
    except Interrupted as e:
        print(f"sgrnn: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Exception as e:
        if (not isinstance(e, UserError) and not sweep) or FULL_ERROR:
            raise  # a bug (or HYDRA_FULL_ERROR=1): Hydra shows the traceback
        message = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        if not isinstance(e, UserError):  # a bug in one cell of a sweep: its log keeps the traceback
            logging.getLogger("sgrnn").exception("cell failed")
        if not isinstance(e, Refused):  # another run's folder, or one another process trains: touch nothing
            write_failure(cfg, run_dir, message)
        print(f"sgrnn: error: {message}", file=sys.stderr)
        if not sweep:
            sys.exit(2)
        if os.environ.get(FAILED_LOG):
            with open(os.environ[FAILED_LOG], "a") as f:
                f.write(f"{run_dir}: {message}\n")
        return None
    if "max_solved" in summary:
        m = summary["max_solved"]
        result = (f"length {m['length']} solved (N={m['N']}" + (f", R={m['R']})" if cfg.task.get("repeat") else ")")
                  if m["length"] else "no length solved")
    else:
        result = f"best validation BPC {summary.get('best_valid_bpc', float('nan')):.3f}, test BPC " \
                 f"{summary.get('test_bpc', float('nan')):.3f}"
    print(f"{cfg.task.name} sg={cfg.sg.name} T={cfg.T} seed={cfg.seed}: {result} "
          f"in {summary['steps']} updates, {summary['wall_s']:.0f} s -> {run_dir}/summary.json")
    return objective(summary)


def objective(summary: dict) -> float:
    """What a search optimises: the length solved (Copy tasks), the best validation BPC (PTB)."""
    if "max_solved" in summary:
        return float(summary["max_solved"]["length"])
    return float(summary.get("best_valid_bpc", float("nan")))


def slot(hydra_cfg):
    """This cell's place among the cells that a local parallel launcher runs at once."""
    from sgrnn.runtime import Slot, usable_cores

    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs")  # joblib only; other launchers: one cell per machine
    if hydra_cfg.mode != RunMode.MULTIRUN or not n_jobs:
        return Slot()
    cores = usable_cores()
    jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)  # joblib: -1 = one per core, -2 = all but one
    return Slot(index=hydra_cfg.job.num, jobs=jobs)


def write_failure(cfg: DictConfig, run_dir: Path, message: str) -> None:
    """Record a failed cell in its summary.json, unless that would replace a finished result."""
    path = run_dir / "summary.json"
    try:
        if path.is_file() and json.loads(path.read_text()).get("status") == "complete":
            return
        atomic_write_json(path, {"status": "failed", "error": message, "task": cfg.task.name, "sg": cfg.sg.name,
                                 "T": cfg.T, "seed": cfg.seed})
    except (OSError, ValueError):
        pass  # the folder itself is the problem; the error line says so


def check_writable(folder: Path) -> None:
    """Fail early, in one line, when the run folder cannot be created."""
    if "${" in str(folder):
        return  # an interpolated path: Hydra resolves it later
    base = folder.absolute()
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise UserError(f"cannot create the run folder {folder}: {base} is not a folder")
    try:
        tempfile.TemporaryDirectory(dir=base).cleanup()
    except OSError as e:
        raise UserError(f"cannot create the run folder {folder}: cannot write in {base} ({e.strerror or e})") from None


def group_options(*groups: str) -> dict[str, list[str]]:
    """The options Hydra can find for each config group (conf/, the ConfigStore, plugins)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        return {g: sorted(loader.get_group_options(g)) for g in groups}


def preflight(args: list[str]) -> None:
    """Check every override (each value of a sweep) before Hydra starts, so bad input gets one
    line and a non-zero exit instead of a sweep that fails half-way."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sgrnn.config import check as validate, make_config

    short = {"-m": "--multirun", "-r": "--run", "-c": "--cfg", "-i": "--info", "-sc": "--shell-completion"}
    modes = [a for a in args if a in short or a in short.values()]
    if len({short.get(m, m) for m in modes}) > 1:
        raise UserError(f"{' and '.join(modes)}: one of --multirun, --cfg, --info at a time (Hydra's modes); "
                        "for a sweep's config, --cfg job with the sweep's first values")
    overrides = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    for a in overrides:
        if a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")):
            check_writable(Path(a.split("=", 1)[1]))
    if not any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in overrides):
        check_writable(Path("runs"))
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise UserError(f"cannot parse the overrides: {str(e).splitlines()[0]}") from None
    groups = group_options("task", "sg", "experiment", "hydra/launcher")
    choices: list[tuple[str, list[str]]] = []  # (key, its values: several for a sweep), in order
    for ov in parsed:
        key = ov.key_or_group  # without its + / ++ / ~
        values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
        for value in values:
            if key in groups and value not in groups[key] and not ov.is_delete():
                raise UserError(f"unknown {key} option {value!r} (valid: {', '.join(groups[key])})")
        if key.startswith(("hydra.", "hydra/")):
            continue  # Hydra's own keys: +, ++ and ~ are Hydra's business there
        if ov.is_delete() and key not in ("experiment",):
            raise UserError(f"~{key} removes a key sgrnn needs; set it instead ({key}=VALUE)")
        if ov.is_add() or ov.is_force_add():
            known = schema_keys()
            if ov.is_force_add() and (key in known or key in groups):
                choices.append((key, values))  # ++KEY=VALUE on a known key is a plain KEY=VALUE
                continue
            if key in known or key in groups:
                raise UserError(f"+{key}: sgrnn has this key already; set it without '+' ({key}=...)")
            near = difflib.get_close_matches(key, sorted(known), n=1)
            raise UserError(f"+{key}: sgrnn's config has no key {key}" + (f" (did you mean {near[0]}?)" if near else "")
                            + "; every key is listed by `sgrnn train --cfg job`")
        if ov.is_delete():
            continue
        choices.append((key, values))
    # The first cell, then each other value of each swept key in turn (not the whole product).
    base = [f"{k}={v[0]}" for k, v in choices]
    cells = [base] + [base[:i] + [f"{k}={v}"] + base[i + 1 :] for i, (k, vs) in enumerate(choices) for v in vs[1:]]
    base_dir = next((a.split("=", 1)[1] for a in overrides if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))),
                    "runs")
    ptb_checked: set = set()
    for cell in cells:
        try:
            cfg = make_config(*cell)
            validate(cfg)
        except (HydraException, OmegaConfBaseException) as e:
            first = str(e).splitlines()[0]  # e.g. "Error merging override T=x"
            detail = f": {str(e.__cause__).splitlines()[0]}" if e.__cause__ else ""
            raise UserError(f"{first.rstrip('.')}{detail} (overrides checked: {' '.join(cell)})") from None
        task_dir = Path(base_dir, cfg.task.name)
        if "${" not in base_dir and task_dir.exists() and not task_dir.is_dir():
            raise UserError(f"cannot create the run folders: {task_dir} is a file, not a folder")
        if cfg.task.name == "ptb" and cfg.task.data_dir not in ptb_checked:  # once, before any cell runs
            from sgrnn.tasks.ptb import check_present

            check_present(cfg.task.data_dir)
            ptb_checked.add(cfg.task.data_dir)


def schema_keys() -> set:
    """Every dotted key of sgrnn's composed config (every task's schema)."""
    from sgrnn.config import TASKS, flatten, make_config

    return {k for task in TASKS for k in flatten(OmegaConf.to_container(make_config(f"task={task}")))}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command == "train":
        try:
            preflight(rest)
        except UserError as e:
            if FULL_ERROR:
                raise
            print(f"sgrnn: error: {e}", file=sys.stderr)
            sys.exit(2)
        sys.argv = [f"{Path(sys.argv[0]).name} train", *rest]
        with tempfile.NamedTemporaryFile("r", prefix="sgrnn-failed-", suffix=".txt") as failed:
            os.environ[FAILED_LOG] = failed.name
            train_app()
            lines = failed.read().splitlines()
        if lines:
            print(f"sgrnn: error: {len(lines)} cell(s) of the sweep failed (the others finished):", file=sys.stderr)
            for line in lines:
                print(f"  {line}", file=sys.stderr)
            sys.exit(1)
    elif command in ("report", "grid", "bench", "analyse"):
        import importlib

        try:
            status = importlib.import_module(f"sgrnn.{command}").main(rest)
        except UserError as e:
            if FULL_ERROR:
                raise
            print(f"sgrnn: error: {e}", file=sys.stderr)
            sys.exit(2)
        sys.exit(status or 0)
    elif command == "fetch-ptb":
        import argparse

        from sgrnn.fetch import fetch_ptb

        parser = argparse.ArgumentParser(prog="sgrnn fetch-ptb", description="Download Penn Treebank characters "
                                         "(Mikolov's simple-examples archive), check them, put them in DIR.")
        parser.add_argument("dir", nargs="?", default="data/ptb", help="where the three files go (default: data/ptb)")
        ns = parser.parse_args(rest)
        try:
            fetch_ptb(ns.dir)
        except UserError as e:
            print(f"sgrnn: error: {e}", file=sys.stderr)
            sys.exit(2)
    else:
        print(f"sgrnn: error: unknown command {command!r}\n{USAGE}", file=sys.stderr, end="")
        sys.exit(2)


if __name__ == "__main__":
    main()
