"""``sgrnn analyse errors|quality|ceiling|frontier RUN_DIR...``: measurements of finished runs.
Every run (but ``frontier``'s, read from its event files) is rebuilt the same way, read-only, from
its last checkpoint (``sgrnn.train.reopened``: on this machine's CPU, one thread, whatever it ran
on), and measured on fresh held-out episodes at the curriculum length where it stopped.

- ``errors`` (sgrnn.analyse.output_errors): where a Copy or Repeat Copy run fails: wrong bits per
  sequence at each output step, and whether its input lies in the same truncation segment;
- ``quality`` (sgrnn.analyse.quality): the SG-quality instruments (sgrnn.sg.quality) on runs made
  before they existed;
- ``ceiling`` (sgrnn.analyse.ceiling): how predictable the future gradient is where the run
  stopped (a linear map's and an MLP's out-of-sample cosine), against the run's own M;
- ``frontier`` (sgrnn.analyse.frontier): the length a run was learning when it ended, and whether
  its error there was still falling (read from its TensorBoard events; nothing is rebuilt).

A RUN_DIR is a run folder (with a checkpoint.pt) or a folder of runs: then every finished run
below it with a checkpoint that the analysis can measure, in order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Optional

from sgrnn.errors import UserError

COMMANDS = {"errors": "output_errors", "quality": "quality", "ceiling": "ceiling", "frontier": "frontier"}  # command: module


def has_checkpoint(folder: Path) -> bool:
    from sgrnn.checkpoint import LATEST, PREVIOUS

    return (folder / LATEST).is_file() or (folder / PREVIOUS).is_file()


def summary_of(folder: Path) -> Optional[dict]:
    try:
        s = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return s if isinstance(s, dict) else None


def run_folders(paths: list[str], keep: Callable[[dict], bool]) -> list[Path]:
    """The run folders to measure, all checked before any is: each path given is a run folder with
    a checkpoint, or a folder whose finished runs with a checkpoint, those ``keep`` accepts, are taken."""
    out = []
    for p in map(Path, paths):
        if not p.exists():
            raise UserError(f"no such folder {p}")
        if not p.is_dir():
            raise UserError(f"{p} is a file, not a run folder")
        if has_checkpoint(p):
            out.append(p)
            continue
        found = [f.parent for f in sorted(p.rglob("summary.json")) if has_checkpoint(f.parent)
                 and (s := summary_of(f.parent)) is not None and s.get("status") == "complete" and keep(s)]
        if not found:
            raise UserError(f"{p} is not a run folder (no checkpoint.pt) and holds no finished run that this "
                            "analysis can measure")
        out += found
    return out


def main(argv: list[str]) -> None:
    import importlib

    parser = argparse.ArgumentParser(prog="sgrnn analyse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{errors,quality,ceiling,frontier}")
    modules = {name: importlib.import_module(f"sgrnn.analyse.{mod}") for name, mod in COMMANDS.items()}
    for name, mod in modules.items():
        p = sub.add_parser(name, prog=f"sgrnn analyse {name}", description=mod.__doc__, help=mod.__doc__.splitlines()[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders, or folders of runs")
        mod.add_arguments(p)
    ns = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    mod = modules[ns.command]
    mod.run(run_folders(ns.run_dirs, mod.measurable), ns)
