"""Carry the Table 1 grid's finished cells from one session to the next without committing runs.

A finished cell's summary.json is its result (what `sgrnn report` reads) and what a re-launched
sweep checks to skip the cell (status complete, same config). Only those files are kept, in
docs/table1/cells/ with the runs folder's layout: no checkpoints, TensorBoard events or logs.

    python scripts/table1_cells.py save RUNS_DIR       # finished cells' summary.json -> docs/table1/cells
    python scripts/table1_cells.py restore RUNS_DIR    # -> RUNS_DIR, where RUNS_DIR has none of its own

scripts/table1_grid.sh restores before it launches, so a new session's grid skips what an
earlier session finished; an unfinished cell starts over (its checkpoint stayed behind).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

CELLS = Path(__file__).resolve().parent.parent / "docs" / "table1" / "cells"


def finished(root: Path):
    for path in sorted(root.rglob("summary.json")):
        try:
            if json.loads(path.read_text()).get("status") == "complete":
                yield path
        except (OSError, ValueError):
            continue


def copy(src_root: Path, dst_root: Path, only_missing: bool) -> int:
    n = 0
    for path in finished(src_root):
        rel = path.relative_to(src_root)
        if rel.parts[0] == "report":
            continue
        dst = dst_root / rel
        if only_missing and dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
        n += 1
    return n


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[0] not in ("save", "restore"):
        print("usage: python scripts/table1_cells.py save|restore RUNS_DIR [CELLS_DIR]", file=sys.stderr)
        return 2
    runs, cells = Path(argv[1]), Path(argv[2]) if len(argv) == 3 else CELLS
    if argv[0] == "save":
        if not runs.is_dir():
            print(f"table1_cells: no runs folder {runs}", file=sys.stderr)
            return 2
        print(f"table1_cells: {copy(runs, cells, only_missing=False)} finished cells saved to {cells}")
    else:
        n = copy(cells, runs, only_missing=True) if cells.is_dir() else 0
        print(f"table1_cells: {n} finished cells restored into {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
