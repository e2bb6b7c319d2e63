"""The commands beside `sgrnn train`: `sgrnn grid` (the Table 1 grid), `sgrnn bench` and
`sgrnn analyse errors | quality | ceiling | frontier` (measurements of finished runs): their help, what they
print and keep, and bad input as one line."""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch

from sgrnn.grid import Cell, copy_finished, finish, grid_cells

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["task=copy", "model.hidden_size=8", "task.batch_size=8", "train.threads=1", "device=cpu", "diag.every=0"]


def sgrnn_main(*args) -> int:
    """`sgrnn ARGS...` in this process: its exit status."""
    from sgrnn.cli import main

    with pytest.raises(SystemExit) as exit:
        main(list(args))
    return exit.value.code or 0


def files(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", [["grid"], ["bench"], ["analyse"], ["analyse", "errors"], ["analyse", "quality"],
                                     ["analyse", "ceiling"], ["analyse", "frontier"], ["report"]])
def test_every_command_has_help(command, capsys):
    assert sgrnn_main(*command, "--help") == 0
    assert capsys.readouterr().out.startswith(f"usage: sgrnn {' '.join(command)} ")


def test_the_usage_lists_every_command(capsys):
    assert sgrnn_main("--help") == 0
    out = capsys.readouterr().out
    assert all(f"\n  {c} " in out for c in ("train", "report", "grid", "bench", "analyse", "fetch-ptb"))


def test_grid_dry_run_lists_the_147_cells_and_restores_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    runs = tmp_path / "runs"
    assert sgrnn_main("grid", "--dry-run", "--runs", str(runs), "--jobs", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line.split("sgrnn ", 1)[1] for line in lines if "sgrnn train -m experiment=" in line]
    assert len(commands) == len(set(commands)) == 147
    assert all(c.endswith(f"train.threads=1 train.progress=false hydra.sweep.dir={runs}") for c in commands)
    # every committed cell is one of the grid's (its folder name as the preset's sweep makes it)
    # (less those run with another config than their preset's now: stale, run again)
    every = len(list((ROOT / "results" / "table1" / "cells").rglob("summary.json")))
    committed, stale = (sum(line.startswith(m) for line in lines) for m in ("# committed: ", "# stale ("))
    assert committed + stale == every >= 125
    assert lines[-1] == (f"# 147 cells: {committed} committed in results/table1/cells (restored, not run), 0 finished "
                         f"in {runs} already, {147 - committed} to run (3 at a time)")
    assert lines[0].endswith("experiment=ptb-bptt T=8 seed=0 train.threads=1 train.progress=false "
                             f"hydra.sweep.dir={runs}")  # the earliest sign on PTB comes first
    assert not runs.exists()
    assert sgrnn_main("grid", "--dry-run", "--fresh", "--runs", str(runs), "--only", "=copy-dni T=3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[3:6] for line in lines[:-1]] == [["experiment=copy-dni", "T=3", f"seed={s}"] for s in range(3)]


def test_a_cell_run_with_another_config_than_its_preset_now_is_stale_runs_again_and_is_set_aside(
        tmp_path, monkeypatch, capsys):
    """A default or preset changed after a cell finished: its summary's config differs from what
    the preset composes to now, so neither the committed copy nor the run folder's counts."""
    import sgrnn.grid as grid
    from omegaconf import OmegaConf

    from sgrnn.config import make_config

    monkeypatch.chdir(ROOT)
    cells = [Cell("copy-dni", "copy", "on", 3, seed) for seed in range(3)]
    results, runs = tmp_path / "results", tmp_path / "runs"

    def summary(root, cell, **change):
        cfg = make_config(f"experiment={cell.preset}", f"T={cell.T}", f"seed={cell.seed}", "train.threads=1",
                          "train.progress=false", *(f"{k}={v}" for k, v in change.items()))
        (root / cell.folder).mkdir(parents=True)
        (root / cell.folder / "summary.json").write_text(json.dumps(
            {"status": "complete", "config": OmegaConf.to_container(cfg, resolve=True), "seed": cell.seed}))
    summary(results / "cells", cells[0])  # as the preset runs now, with a budget and thread count of its own:
    summary(results / "cells", cells[1], **{"sg.history": 0})  # before the window was a default
    summary(runs, cells[2], **{"sg.scale": 0.1, "train.max_samples": 99})
    assert grid.changes(cells, results / "cells") == {cells[1]: ["sg.history: 0 -> 16"]}
    assert grid.changes(cells, runs) == {cells[2]: ["sg.scale: 0.1 -> 1.0"]}
    only = ["--only", "experiment=copy-dni T=3 "]
    assert sgrnn_main("grid", "--dry-run", "--runs", str(runs), "--results", str(results), *only) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["# committed", "# stale (sg.history", "# stale (sg.scale"]
    assert lines[-1].startswith("# 3 cells: 1 committed") and lines[-1].endswith("2 to run (2 at a time)")
    assert "1 finished cells in " in lines[-3] and "(sg.history; e.g. sg.history: 0 -> 16): they run again" in lines[-3]
    ran = []
    monkeypatch.setattr(grid, "run_cells", lambda todo, *a: (ran.extend(todo), ([], False))[1])
    monkeypatch.setattr(grid, "finish", lambda *a: None)
    assert sgrnn_main("grid", "--runs", str(runs), "--results", str(results), "--no-readme", *only) == 0
    assert ran == cells[1:]
    assert json.loads((runs / "stale" / cells[2].folder / "summary.json").read_text())["seed"] == 2  # kept aside
    assert not (runs / cells[2].folder).exists() and not (runs / cells[1].folder).exists()  # not restored
    assert (runs / cells[0].folder / "summary.json").exists()  # restored
    # a stale run folder outside --only stays where it is, and is never saved over the committed cell
    summary(runs / "other", cells[1], **{"sg.history": 0})
    os.replace(runs / "other" / cells[1].folder, runs / cells[1].folder)
    saved = []
    monkeypatch.setattr(grid, "finish", lambda cells, *a: saved.extend(cells))
    assert sgrnn_main("grid", "--runs", str(runs), "--results", str(results), "--no-readme",
                      "--only", "experiment=copy-dni T=3 seed=0 ") == 0
    assert "1 other finished cells in " in capsys.readouterr().out
    assert cells[0] in saved and cells[1] not in saved and (runs / cells[1].folder / "summary.json").exists()


def test_a_cell_whose_preset_budget_was_raised_goes_on_from_its_checkpoint_or_runs_again(tmp_path, monkeypatch, capsys):
    """A long sweep over several sessions: its preset's budget is raised after a cell stopped at
    the old one. A run folder with a checkpoint goes on from it (not set aside); one without a
    checkpoint, and a committed copy (a summary only), run again."""
    import sgrnn.grid as grid
    from omegaconf import OmegaConf

    from sgrnn.config import make_config

    monkeypatch.chdir(ROOT)
    cells = [Cell("copy-dni", "copy", "on", 3, seed) for seed in range(4)]
    results, runs = tmp_path / "results", tmp_path / "runs"

    def summary(root, cell, samples, checkpoint=False):
        cfg = make_config(f"experiment={cell.preset}", f"T={cell.T}", f"seed={cell.seed}", "train.threads=1",
                          "train.progress=false", f"train.max_samples={samples}")
        (root / cell.folder).mkdir(parents=True)
        (root / cell.folder / "summary.json").write_text(json.dumps(
            {"status": "complete", "config": OmegaConf.to_container(cfg, resolve=True), "seed": cell.seed,
             "stop_reason": "max_samples", "steps": samples // 192, "samples": samples, "wall_s": 60.0}))
        if checkpoint:
            (root / cell.folder / "checkpoint.pt").write_bytes(b"x")
    summary(runs, cells[0], 3_500_000, checkpoint=True)  # at the preset's budget: finished
    summary(runs, cells[1], 1_000_000, checkpoint=True)  # the budget was 1M: goes on
    summary(runs, cells[2], 1_000_000)  # no checkpoint: runs again
    summary(results / "cells", cells[3], 1_000_000)  # committed at 1M: not restored, runs
    assert grid.raised(cells, runs) == {c: "train.max_samples: 1000000 -> 3500000" for c in cells[1:3]}
    assert grid.raised(cells, results / "cells") == {cells[3]: "train.max_samples: 1000000 -> 3500000"}
    only = ["--only", "experiment=copy-dni T=3 seed=0 ", "--only", "seed=1 ", "--only", "seed=2 ", "--only", "seed=3 "]
    monkeypatch.setattr(grid, "grid_cells", lambda name="table1": tuple(cells))
    assert sgrnn_main("grid", "--dry-run", "--runs", str(runs), "--results", str(results), *only) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines[:4]] == ["# finished: sgrnn train -m experiment=copy-dni T=3 seed=0 "
                                                           "train.threads=1 train.progress=false hydra.sweep.dir=" + str(runs),
                                                           "# budget raised", "# stale", "# budget raised"]
    assert "go on from their checkpoints" in lines[-2] and lines[-1].endswith("3 to run (2 at a time)")
    ran = []
    monkeypatch.setattr(grid, "run_cells", lambda todo, *a: (ran.extend(todo), ([], False))[1])
    monkeypatch.setattr(grid, "finish", lambda *a: None)
    assert sgrnn_main("grid", "--runs", str(runs), "--results", str(results), "--no-readme", *only) == 0
    assert ran == cells[1:]
    assert (runs / cells[1].folder / "checkpoint.pt").exists()  # left in place, to go on from
    assert (runs / "stale" / cells[2].folder / "summary.json").exists() and not (runs / cells[2].folder).exists()
    assert not (runs / cells[3].folder).exists()  # the short committed copy is not restored


def test_the_long_grid_is_the_long_presets_and_table1_has_none_of_them():
    long, table1 = grid_cells("long"), grid_cells("table1")
    assert long and all(c.preset.endswith("-long") for c in long)
    assert not any(c.preset.endswith("-long") or "paper" in c.preset for c in table1)
    # the six methods of both tasks at T=3 first (BPTT and DNI ahead of the others), then BPTT and DNI at T=2, 4, 5
    first = [c for c in long if c.seed == 0][:12]
    assert [c.preset for c in first[:4]] == ["copy-bptt-long", "copy-dni-long", "repeat-copy-bptt-long",
                                             "repeat-copy-dni-long"]
    assert {c.T for c in first} == {3, 1000} and first[-1].preset == "repeat-copy-full-bptt-long"
    assert {c.preset.removeprefix("repeat-") for c in long if c.T not in (3, 1000)} == {
        "copy-bptt-long", "copy-dni-long", "ptb-bptt-long", "ptb-dni-long"}
    later = [c.task if c.task == "ptb" else c.T for c in long if c.T not in (3, 1000)]  # PTB, then T=2, 4, 5
    assert later == sorted(later, key=lambda x: (x != "ptb", [2, 4, 5].index(x) if x != "ptb" else 0))


def test_the_horizon_grid_is_the_plateau_study_s_65_cells_copy_t3_first():
    horizon = grid_cells("horizon")
    assert len(horizon) == 65 and all(c.preset.endswith("-horizon") for c in horizon)
    assert not any(c.preset.endswith("-horizon") for c in grid_cells("table1") + grid_cells("long"))
    # Copy T=3 (each seed's four methods together), then Copy T=5, then Repeat Copy T=3
    assert [(c.preset.removeprefix("copy-"), c.seed) for c in horizon[:6]] == [
        ("bptt-horizon", 200), ("dni-horizon", 200), ("placebo-horizon", 200), ("oracle-horizon", 200),
        ("full-bptt-horizon", 200), ("bptt-horizon", 201)]
    blocks = [(c.task, c.T) for c in horizon]
    assert blocks == ([("copy", 3)] * 4 + [("copy", 1000)]) * 5 + [("copy", 5)] * 20 + [("repeat-copy", 3)] * 20


def test_the_grid_is_the_presets_cells_in_their_sweep_folders():
    cells = grid_cells()
    assert len(cells) == len(set(cells)) == 147
    assert Cell("copy-dni-aux", "copy", "aux", 2, 0) in cells
    assert Cell("copy-dni-aux", "copy", "aux", 2, 0).folder == "copy/sg=aux,T=2,seed=0,experiment=copy-dni-aux"
    # BPTT and DNI at T=3 before T=2, 4, 5; the ceilings last
    order = [(c.preset, c.T) for c in cells if c.task == "copy" and c.seed == 0]
    assert order[:4] == [("copy-bptt", 3), ("copy-dni", 3), ("copy-bptt", 2), ("copy-dni", 2)]
    assert order[-1] == ("copy-full-bptt", 1000)


def test_the_grid_keeps_finished_cells_only_restores_missing_ones_and_regenerates_table1(tmp_path, capsys):
    """Saving keeps only finished cells' summary.json; restoring fills a new runs folder without
    replacing what it has; then Table 1 and the README block are made from the kept cells."""
    from sgrnn.readme import BEGIN, END, block, readme_text

    cells = [Cell("copy-bptt", "copy", "off", 2, seed) for seed in range(3)]
    old, new, results = tmp_path / "old", tmp_path / "new", tmp_path / "results"

    def summary(root, seed, status="complete", **extra):
        folder = root / cells[seed].folder
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(
            {"status": status, "task": "copy", "sg": "off", "T": 2, "seed": seed, "steps": 10, "samples": 160,
             "wall_s": 60.0, "max_solved": {"N": 2, "R": 1, "length": 4 + seed, "span": 3}, **extra}))
        (folder / "checkpoint.pt").write_bytes(b"x")
    summary(old, 0)
    summary(old, 1)
    summary(old, 2, status="interrupted")
    assert copy_finished(cells, old, results / "cells", only_missing=False) == 2
    kept = sorted(p.relative_to(results / "cells") for p in (results / "cells").rglob("*") if p.is_file())
    assert kept == [Path(cells[s].folder) / "summary.json" for s in (0, 1)]
    summary(new, 1, marker=True)
    assert copy_finished(cells, results / "cells", new, only_missing=True) == 1
    assert json.loads((new / cells[1].folder / "summary.json").read_text())["marker"]  # not replaced
    readme = tmp_path / "README.md"
    readme.write_text(f"above\n{BEGIN}\n{END}\nbelow\n")
    finish(cells, new, results, readme)
    assert "| BPTT | **4.500** [4–5] (n=2) · paper 7 |" in (results / "table1.md").read_text()
    assert block(readme.read_text()) == readme_text((results / "table1.md").read_text())
    assert json.loads((results / "cells" / cells[1].folder / "summary.json").read_text())["marker"]  # saved back
    assert "2 finished cells saved" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--runs", "FILE"], "--runs FILE is a file, not a folder"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--only", "nothing-matches"], "--only 'nothing-matches' matches no cell"),
    (["--results", "EMPTY"], "no committed cells in EMPTY/cells"),
    (["--readme", "EMPTY/README.md"], "no README EMPTY/README.md"),
])
def test_grid_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(ROOT)
    (tmp_path / "FILE").write_text("")
    (tmp_path / "EMPTY").mkdir()
    args = [a.replace("FILE", str(tmp_path / "FILE")).replace("EMPTY", str(tmp_path / "EMPTY")) for a in args]
    before = files(tmp_path)
    assert sgrnn_main("grid", "--runs", str(tmp_path / "runs"), *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgrnn: error: ") and err.count("\n") == 1
    assert message.replace("FILE", str(tmp_path / "FILE")).replace("EMPTY", str(tmp_path / "EMPTY")) in err
    assert files(tmp_path) == before and not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def dni_run(tmp_path_factory):
    """A tiny finished Copy run with an M (sg=on, T=2: its episodes cross a boundary)."""
    from sgrnn.config import make_config
    from sgrnn.train import train

    folder = tmp_path_factory.mktemp("runs") / "copy" / "sg=on,T=2,seed=0"
    train(make_config(*SMALL, "sg=on", "T=2", "train.max_steps=4"), folder)
    return folder


def test_analyse_errors_locates_each_output_against_the_truncation_segments(tmp_path, capsys):
    """It rebuilds a finished Copy run read-only and gives each output step its input's step,
    whether both lie in one segment of T steps from the episode's start, and its wrong bits per
    sequence."""
    from sgrnn.analyse.output_errors import output_errors
    from sgrnn.config import make_config
    from sgrnn.errors import UserError
    from sgrnn.train import reopened, train

    train(make_config(*SMALL, "T=4", "train.max_steps=4"), tmp_path)
    before = files(tmp_path)
    with reopened(tmp_path) as run:
        r = output_errors(run, episodes=16, N=2)
        r5 = output_errors(run, episodes=16, N=5)
        # a readout that says 1 for every bit is wrong exactly on the target's zeros
        with torch.no_grad():
            run.core.readout.weight.zero_()
            run.core.readout.bias.fill_(100.0)
        ones = output_errors(run, episodes=16, N=2, seed=7)
        ep = run.task.task.sample(2, 1, 16, torch.Generator().manual_seed(7), "cpu")
        zeros = (1 - ep.y).sum(-1).mean(-1)  # [L]
        run.cfg.task.protocol = "continuous"
        with pytest.raises(UserError, match="continuous"):
            output_errors(run, episodes=16)
    # N=2: inputs at t=0, 1, delimiter at 2, outputs at 3, 4; segments [0-3], [4-7]
    assert [(s["t"], s["input"], s["same_segment"]) for s in r["steps"]] == [(3, 0, True), (4, 1, False)]
    assert [s["same_segment"] for s in r5["steps"]] == [False] * 5  # distance 6 > T: all cross
    assert [s["wrong_bits"] for s in ones["steps"]] == pytest.approx(zeros[3:5].tolist())
    assert sgrnn_main("analyse", "errors", str(tmp_path), "--episodes", "8", "--N", "2") == 0
    assert "| 3 | 0 | same |" in capsys.readouterr().out
    assert files(tmp_path) == before  # read-only: no file of the run folder written


def test_analyse_quality_and_ceiling_measure_a_finished_run_read_only(dni_run, tmp_path, capsys):
    before = files(dni_run.parent)
    out = tmp_path / "quality.json"
    # a folder of runs: every finished run below it that has an M
    assert sgrnn_main("analyse", "quality", str(dni_run.parent.parent), "--batch", "8", "--fit", "16", "--json", str(out)) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{dni_run.name}: sg_param_cos ") and "| copy | DNI | 2 | 1 | " in printed
    q = json.loads(out.read_text())[str(dni_run)]
    assert -1 <= q["sg_param_cos"] <= 1 and -1 <= q["sg_state_cos"] <= 1 and q["step"] == 4
    assert sgrnn_main("analyse", "ceiling", str(dni_run), "--fit", "64", "--test", "16", "--mlp", "8") == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| 1 |")]
    cols = rows[0].strip("|").split("|") if len(rows) == 1 else []
    assert cols and all(-1 <= float(cols[i]) <= 1 for i in (2, 3, 4, 6, 8))  # the cosines
    assert "ceiling cos" in printed and "MLP 8x2 fitted on 64 pairs:" in printed
    assert files(dni_run.parent) == before


@pytest.mark.parametrize("analysis", ["errors", "quality", "ceiling", "frontier"])
@pytest.mark.parametrize("where, message", [("missing", "no such folder"), ("file", "is a file, not a run folder"),
                                            ("empty", "is not a run folder")])
def test_analyse_bad_folder_is_one_line_and_writes_nothing(tmp_path, capsys, analysis, where, message):
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    before = files(tmp_path)
    assert sgrnn_main("analyse", analysis, str(tmp_path / where)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sgrnn: error: {tmp_path / where}" if where != "missing" else "sgrnn: error: no such folder")
    assert message in err and err.count("\n") == 1
    assert files(tmp_path) == before


def test_analyse_frontier_reads_the_error_at_the_length_being_learned(tmp_path, capsys):
    """From the event files alone: the episodes at the last (N, R), the mean error of their first and
    last tenth, and the rate it fell over their last half (halving every 20 updates here, by
    construction); where a resumed run wrote steps again, their last values count."""
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "copy" / "sg=on,T=3,seed=0"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "summary.json").write_text(json.dumps({
        "status": "complete", "task": "copy", "sg": "on", "T": 3, "seed": 0, "max_solved": {"length": 4},
        "config": {"task": {"threshold": 0.15, "threshold_unit": "sequence"}}}))

    def bits(step):
        return 9.0 if step <= 10 else 8.0 * 2 ** (-(step - 11) / 20)

    # the run wrote steps 1-100, was interrupted, and resumed from its checkpoint at step 89:
    # its second event file has steps 90-110 again (the first file's 90-100 are off by 5)
    for steps, off in ((range(1, 101), 5.0), (range(90, 111), 0.0)):
        with SummaryWriter(run) as w:
            for step in steps:
                w.add_scalar("curriculum/N", 1 if step <= 10 else 2, step)
                w.add_scalar("curriculum/R", 1, step)
                w.add_scalar("train/bits", bits(step) + (off if step >= 90 else 0.0), step)
    out = tmp_path / "frontier.json"
    assert sgrnn_main("analyse", "frontier", str(tmp_path), "--json", str(out)) == 0
    f = json.loads(out.read_text())[str(run)]
    here = [bits(s) for s in range(11, 111)]
    assert (f["N"], f["R"], f["since"], f["episodes"], f["updates"]) == (2, 1, 11, 100, 100)
    assert f["first"] == pytest.approx(sum(here[:10]) / 10) and f["last"] == pytest.approx(sum(here[-10:]) / 10)
    assert f["halving"] == pytest.approx(20.0, rel=1e-6)
    assert f["to_threshold"] == pytest.approx(20.0 * math.log2(f["last"] / 0.15), rel=1e-6)
    assert f"| {run.name} | 4 | 2, 1 | 11 | " in capsys.readouterr().out


def test_bench_without_ptb_data_is_one_line(tmp_path, capsys):
    assert sgrnn_main("bench", "--shapes", "ptb", "--ptb-dir", str(tmp_path / "none")) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgrnn: error: PTB data not found") and err.count("\n") == 1
