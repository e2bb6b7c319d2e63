"""Presets, launchers and `sgrnn report` (issue 6)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from sgrnn.config import conf_dir, register_configs
from sgrnn.errors import UserError
from sgrnn.report import report
from sgrnn.train import Slot, pick_device, setup, usable_cores

PRESETS = sorted(p.stem for p in Path(conf_dir(), "experiment").glob("*.yaml"))


def compose_full(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_with_its_own_sweep_and_budget(preset):
    cfg = compose_full(f"experiment={preset}")
    long, horizon = preset.endswith("-long"), preset.endswith("-horizon")
    name = preset.removesuffix("-long").removesuffix("-horizon")
    task = "repeat-copy" if name.startswith("repeat-copy") else name.split("-")[0]
    method = name[len(task) + 1 :]
    if task == "ptb":
        method = method.removeprefix("paper-")
    assert cfg.task.name == task
    assert cfg.sg.name == {"bptt": "off", "dni": "on", "dni-paper": "on", "dni-aux": "aux", "placebo": "placebo",
                           "oracle": "oracle", "full-bptt": "off"}[method]
    sweep = cfg.hydra.sweeper.params
    Ts = [int(t) for t in str(sweep.T).split(",")]
    assert sweep.seed == ("200,201,202,203,204" if horizon else "0,1,2")
    # Table 1's columns: T=2..5 for Copy and Repeat Copy; PTB's figure: BPTT at 8, 20, 40, DNI at 8;
    # the long presets: T=3 first, and only BPTT and DNI go on to T=2, 4, 5
    if task == "ptb":
        expected = [8, 20, 40] if method == "bptt" else [8]
    elif horizon:  # the plateau study: Copy at T=3 and 5 (full BPTT: T=1000), Repeat Copy at 3
        expected = [1000] if method == "full-bptt" else [3, 5] if task == "copy" else [3]
    elif long:
        expected = [1000] if method == "full-bptt" else [3, 2, 4, 5] if method in ("bptt", "dni") else [3]
    else:
        expected = [1000] if method == "full-bptt" else [2, 3, 4, 5]
    assert Ts == expected
    if horizon:  # the plateau study's cells are 20 minutes of wall time, longer than 4 x Table 1's budget
        assert (cfg.train.max_samples, cfg.train.max_minutes, cfg.seed) == (0, 20, 200)
    else:
        assert cfg.train.max_samples > 0  # a per-cell budget in data, not only in minutes
    assert cfg.model.hidden_size == (1024 if "paper" in preset and task == "ptb" else 256)
    if long and task == "ptb":  # to early stopping on the whole validation set, at most 10 epochs
        assert (cfg.task.val_symbols, cfg.train.max_samples, cfg.train.stop_flat) == (0, 50_000_000, 0)
    elif long:  # at least ten times Table 1's budget, or Table 1's for the controls allowed to stop when flat
        assert cfg.train.stop_flat == 0.333 and cfg.train.max_samples >= 35_000_000
        assert cfg.train.flat_after == (3_500_000 if method in ("placebo", "dni-paper") else 35_000_000)
    if method == "dni-paper":
        assert (cfg.sg.target, cfg.sg.history, cfg.sg.input_norm, cfg.sg.scale) == ("bootstrap", 0, "none", 0.1)


def test_the_whole_cpu_grid_is_the_documented_147_cells():
    cells = 0
    for preset in PRESETS:
        if "paper" not in preset and not preset.endswith(("-long", "-horizon")):
            sweep = compose_full(f"experiment={preset}").hydra.sweeper.params
            cells += len(str(sweep.T).split(",")) * len(str(sweep.seed).split(","))
    # 117 (the budget comments' figure: 111 + the PTB oracle's and placebo's 3 each) + the ceilings:
    # the oracle at T=2..5 and full BPTT, Copy and Repeat Copy, 3 seeds (24 + 6)
    assert cells == 147


def test_launchers_are_selectable_from_the_command_line():
    local = compose_full("hydra/launcher=local").hydra.launcher
    assert "joblib" in local._target_.lower() and local.n_jobs == 2
    slurm = compose_full("hydra/launcher=slurm").hydra.launcher
    assert "submitit" in slurm._target_.lower() and slurm.gpus_per_node == 1


def test_parallel_cells_share_the_cores_and_each_gets_its_own_gpu(tmp_path, monkeypatch):
    from sgrnn.config import make_config

    run = setup(make_config("model.hidden_size=8", "device=cpu"), tmp_path, Slot(index=1, jobs=usable_cores()))
    assert torch.get_num_threads() == 1 and run.step == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [pick_device("auto", Slot(index=i, jobs=2)).index for i in range(6)] == [0, 1, 2, 3, 0, 1]
    assert pick_device("cuda", Slot()).index == 0  # one cell at a time (or one per SLURM job): its visible GPU
    assert pick_device("cpu", Slot(index=3, jobs=2)).type == "cpu"


def write(folder: Path, **summary) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))


def copy_run(T, seed, length, sg="off", **extra):
    return {**dict(status="complete", task="copy", sg=sg, T=T, seed=seed, steps=100, samples=100 * T * 8, wall_s=10.0,
                max_solved={"N": length - 2, "R": 1, "length": length, "span": length - 2},
                solved_at=[{"length": L, "step": 10 * L, "samples": 240 * L, "wall_s": float(L)} for L in range(3, length + 1)],
                cost={"forward_ms": 1.0, "backward_ms": 2.0, "sg_ms": 0.5 if sg != "off" else 0.0, "other_ms": 0.5,
                      "update_ms": 4.0 if sg != "off" else 3.5, "samples_per_s": 600.0 if sg != "off" else 700.0},
                sg_placement="all" if sg != "off" else None, sg_start_step=0 if sg != "off" else None,
                sg_quality=[{"step": 10, "sg_cos": 0.1, "sg_norm_ratio": 0.5, "true_grad_norm": 0.2},
                            {"step": 20, "sg_cos": 0.6, "sg_norm_ratio": 0.9, "true_grad_norm": 0.1}] if sg != "off" else []),
            **extra}


def test_report_table_has_medians_spread_paper_numbers_and_never_shows_missing_or_failed_as_zero(tmp_path):
    for seed, length in enumerate([3, 5, 4]):
        write(tmp_path / "copy" / f"off,T=2,seed={seed}", **copy_run(2, seed, length))
    for seed, length in enumerate([9, 7]):
        write(tmp_path / "copy" / f"on,T=2,seed={seed}", **copy_run(2, seed, length, sg="on"))
    write(tmp_path / "copy" / "on,T=2,seed=2", status="failed", error="boom", task="copy", sg="on", T=2, seed=2)
    write(tmp_path / "copy" / "on,T=3,seed=0", status="failed", error="boom", task="copy", sg="on", T=3, seed=0)
    write(tmp_path / "copy" / "warm,T=2", **copy_run(2, 0, 8, sg="on", sg_start_step=500))
    write(tmp_path / "ptb" / "off,T=8", status="complete", task="ptb", sg="off", T=8, seed=0, test_bpc=1.5,
          best_valid_bpc=1.52, valid_curve=[{"step": 1, "samples": 10, "wall_s": 1.0, "bpc": 2.0},
                                            {"step": 2, "samples": 20, "wall_s": 2.0, "bpc": 1.52}], cost={})
    out = report(tmp_path)
    md = (out / "report.md").read_text()
    assert "| BPTT | **4** [3–5] (n=3) · paper 7 | missing · paper 8 |" in md
    assert "| DNI | **8** [7–9] (n=2, 1 failed) · paper 16 | failed (1 failed) · paper 14 |" in md
    assert "| DNI (warm-up 500) | **8** (n=1) | missing |" in md
    assert "| BPTT | **1.500** (n=1) · paper 1.354 |" in md or "**1.500** (n=1) · paper 1.354" in md
    rows = list(csv.DictReader(open(out / "table1.csv")))
    missing = [r for r in rows if r["task"] == "copy" and r["method"] == "BPTT" and r["T"] == "3"][0]
    failed = [r for r in rows if r["task"] == "copy" and r["method"] == "DNI" and r["T"] == "3"][0]
    assert (missing["status"], missing["median"]) == ("missing", "") and (failed["status"], failed["median"]) == ("failed", "")
    # The answer sections: cost ratio vs BPTT and time to the common target (length 4 = BPTT's median).
    assert "| Copy | DNI | 2 | 4 | 1 | 2 | 0.500 | 0.500 | 600 | 0.86 | 4 | 4 |" in md
    assert "| Copy | DNI | 2 | 0.100 → 0.600 | 0.500 → 0.900 | 0.200 → 0.100 |" in md  # SG quality, first → last
    assert "| Copy | DNI (warm-up 500) | 2 | 8 | DNI: 8 |" in md
    assert {"curriculum.png", "length_vs_budget.png", "ptb_valid_bpc.png", "sg_cos.png"} <= {p.name for p in out.iterdir()}


def test_report_names_the_hardware_the_wall_time_and_the_commands_folded_into_sweeps(tmp_path):
    cpu = {"cpu": "AMD EPYC", "cores": 2, "torch": "2.13.0+cpu", "python": "3.11.7"}
    for T in (2, 3):
        for seed in (0, 1):
            cmd = f"sgrnn train experiment=copy-dni T={T} seed={seed} train.threads=1"
            write(tmp_path / "copy" / f"on,T={T},seed={seed}",
                  **copy_run(T, seed, 5, sg="on", wall_s=60.0 * (T + seed), host=cpu, command=cmd, commit="abc1234",
                             threads=1))
    write(tmp_path / "copy" / "off,T=2,seed=0", **copy_run(2, 0, 4, wall_s=120.0))  # an older run: no host, no command
    table = (report(tmp_path) / "table1.md").read_text()
    assert "cpu AMD EPYC, cores 2, torch 2.13.0+cpu, python 3.11.7 (4 runs); not recorded (1 run)" in table
    assert "source commit: abc1234 (4), not recorded (1)" in table
    assert "| Copy | DNI | 4 | 3.0 [2.0–4.0] | 0.20 |" in table  # wall minutes 2, 3, 3, 4
    assert "    sgrnn train -m experiment=copy-dni train.threads=1 T=2,3 seed=0,1" in table
    assert "(1 finished run predates the recorded command.)" in table


def test_where_learning_stops_is_measured_and_the_paper_budget_extrapolated_by_the_gain_per_decade(tmp_path,
                                                                                                  monkeypatch):
    import sgrnn.report

    # lengths 3, 4, 5 at 720, 960, 1200 samples (copy_run), budget 100 x T x 8
    write(tmp_path / "copy" / "off,T=2,seed=0", **copy_run(2, 0, 5))  # 1600: grew in the last third; paper 7
    write(tmp_path / "copy" / "off,T=3,seed=0", **copy_run(3, 0, 5))  # 2400: flat for the last third; paper 8
    write(tmp_path / "copy" / "on,T=2,seed=0", **copy_run(2, 0, 17, sg="on"))  # solved 16 at 240 x 16 samples
    md = (report(tmp_path) / "report.md").read_text()  # runs too short to extrapolate from
    assert "| Copy | BPTT | 2 | 5 | 1.6e+03 | 1.2e+03 | 1/1 | 5 | 7 | too short to extrapolate (under 1e+06) | - |" in md
    assert "| Copy | DNI | 2 | 17 | 1.6e+03 | 4.08e+03 | 1/1 | 17 | 16 | 3.84e+03 (measured) | 0.0018 |" in md
    monkeypatch.setattr(sgrnn.report, "MIN_EXTRAPOLATE", 1000)  # as if these runs were long enough
    md = (report(tmp_path) / "report.md").read_text()
    # 1600 x 10^((7 - 5) / 5 per decade) = 4019 samples, at 700 per s
    assert "| Copy | BPTT | 2 | 5 | 1.6e+03 | 1.2e+03 | 1/1 | 5 | 7 | 4e+03 (extrapolated) | 0.0016 |" in md
    assert "| Copy | BPTT | 3 | 5 | 2.4e+03 | 1.2e+03 | 0/1 | 5 | 8 | not at this rate: flat | - |" in md


def test_report_command_fails_in_one_line_without_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sgrnn.cli", "report", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == f"sgrnn: error: no readable summary.json under {tmp_path}: nothing to report\n"


def test_a_local_parallel_sweep_lists_its_failed_cell_and_reports(tmp_path):
    """Two cells at once through the joblib launcher; the PTB cell fails (corrupt data), the Copy one
    finishes; the failure reaches the sweep's exit status from the worker process."""
    args = ["train", "-m", "task=copy,ptb", "sg=on", "model.hidden_size=16", "task.batch_size=8",
            "train.max_steps=30", "diag.every=10", "device=cpu", "hydra/launcher=local", f"hydra.sweep.dir={tmp_path}"]
    bad = tmp_path.parent / f"{tmp_path.name}-bad-ptb"  # present (checked before the sweep) but corrupt
    bad.mkdir()
    for split in ("train", "valid", "test"):
        (bad / f"ptb.char.{split}.txt").write_text("a b ")
    env = {**os.environ, "SGRNN_DATA_DIR": str(bad)}
    r = subprocess.run([sys.executable, "-m", "sgrnn.cli", *args], capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "1 cell(s) of the sweep failed" in r.stderr and "fails its SHA-256 check" in r.stderr
    (copy_summary,) = tmp_path.glob("copy/*/summary.json")
    done = json.loads(copy_summary.read_text())
    assert done["status"] == "complete" and done["threads"] == max(1, usable_cores() // 2)
    md = (report(tmp_path) / "report.md").read_text()
    assert "| DNI | failed (1 failed) · paper 1.340 |" in md or "failed (1 failed)" in md
    assert "(n=1) · paper 14" in md  # the Copy cell, T=3 by default


@pytest.mark.parametrize("bad, line", [
    ("experiment=nope", "sgrnn: error: unknown experiment option 'nope' (valid: copy-bptt, copy-bptt-horizon, copy-bptt-long, "),
    ("hydra/launcher=nope", "sgrnn: error: unknown hydra/launcher option 'nope' (valid: basic, joblib, local, slurm, "),
])
def test_an_unknown_preset_or_launcher_is_one_line_listing_the_valid_ones(tmp_path, bad, line):
    r = subprocess.run([sys.executable, "-m", "sgrnn.cli", "train", "-m", bad, f"hydra.sweep.dir={tmp_path}"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith(line) and r.stderr.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing started


ROOT = Path(__file__).resolve().parent.parent


RESULTS = ROOT / "results" / "table1"


def test_the_readme_table1_is_the_generated_one():
    """README's Table 1 block is results/table1/table1.md as `sgrnn report` wrote it (`sgrnn grid`
    and `sgrnn report --readme` put it there)."""
    from sgrnn.readme import block, readme_text

    assert block((ROOT / "README.md").read_text()) == readme_text((RESULTS / "table1.md").read_text())


def test_the_committed_table1_is_what_the_committed_cells_give():
    """results/table1/table1.md (and so README's block) and table1.csv are regenerated exactly from the
    finished cells' summary.json in results/table1/cells: every number in them traces to a committed
    run, and every committed cell is a finished one (117 of the grid's 147 at least)."""
    import io

    from sgrnn.report import provenance, table1
    from sgrnn.runs import group, load_runs

    cells = RESULTS / "cells"
    runs = load_runs(cells)
    assert len(runs) == len(list(cells.rglob("summary.json"))) >= 117 and all(s["status"] == "complete" for s in runs)
    table, rows = table1(group(runs))
    assert "\n".join(table + provenance(runs)) + "\n" == (RESULTS / "table1.md").read_text()
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    assert out.getvalue().encode() == (RESULTS / "table1.csv").read_bytes()


def test_the_measured_sg_defaults_are_what_each_method_composes_to():
    """The defaults the README's tables justify (config.py SG_OPTIONS): scale 1, rms inputs, a
    16-step input window and the lambda target for on / aux / placebo, aux_weight 0.1 for aux only;
    the oracle and off keep SGConfig's (no window)."""
    on, aux, placebo, oracle, off = (compose_full(f"sg={m}").sg for m in ("on", "aux", "placebo", "oracle", "off"))
    assert [(c.scale, str(c.input_norm), c.history, str(c.target)) for c in (on, aux, placebo)] == \
        [(1.0, "rms", 16, "lambda")] * 3
    assert (aux.aux_weight, on.aux_weight, oracle.scale, oracle.history, off.history) == (0.1, 1.0, 1.0, 0, 0)


def test_the_report_never_pools_other_budgets_and_lists_every_folder_it_could_not_read(tmp_path):
    from sgrnn.config import make_config
    from sgrnn.train import train

    small = ["task=copy", "sg=off", "model.hidden_size=8", "task.batch_size=4", "train.threads=1", "device=cpu",
             "diag.every=0", "seed=0"]
    for steps in (20, 60):  # one seed, two budgets, in separate folders
        train(make_config(*small, f"train.max_steps={steps}"), tmp_path / "runs" / f"steps{steps}")
    bad = tmp_path / "runs" / "corrupt"
    bad.mkdir()
    (bad / "summary.json").write_text('{"status": "comp')
    string = tmp_path / "runs" / "string"
    string.mkdir()
    (string / "summary.json").write_text('"task T"')
    killed = tmp_path / "runs" / "killed"
    killed.mkdir()
    (killed / "checkpoint.pt").write_bytes(b"x")
    out = report(tmp_path / "runs", tmp_path / "out")
    text = (out / "report.md").read_text()
    assert "(n=2)" not in text and "[20" not in text
    assert "train.max_steps=20" in text and "train.max_steps=60" in text  # two rows, each naming its budget
    assert "3 more folders not read" in text
    for name, what in (("corrupt", "unreadable summary.json"), ("string", "unreadable summary.json (not an sgrnn summary)"),
                       ("killed", "checkpoints but no summary.json")):
        assert f"- `{name}`: {what}" in text
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file, not a folder"):
        report(tmp_path / "runs", tmp_path / "file")


def test_full_bptt_is_one_row_shown_at_every_T_beside_the_truncated_ones(tmp_path):
    from sgrnn.report import table1
    from sgrnn.runs import group

    def run(sg, T, length, seed):
        return {"task": "copy", "sg": sg, "T": T, "seed": seed, "status": "complete", "dir": f"x/sg={sg},T={T},seed={seed}",
                "max_solved": {"length": length}, "config": {"T": T, "seed": seed}}
    runs = [run("off", 2, 4, 0), run("off", 3, 5, 0), run("on", 3, 7, 0), run("oracle", 3, 10, 0),
            run("off", 1000, 15, 0), run("off", 1000, 14, 1)]
    lines, _ = table1(group(runs))
    header = next(line for line in lines if line.startswith("| method"))
    assert header == "| method | T=2 | T=3 | T=4 | T=5 |"  # no T=1000 column
    full = next(line for line in lines if line.startswith("| Full BPTT"))
    assert full.count("**14.5** [14–15] (n=2)") == 4
    assert any(line.startswith("| Oracle |") for line in lines)


def test_older_summaries_without_a_new_key_and_failed_cells_pool_with_their_cell():
    from sgrnn.runs import group

    def run(seed, config, status="complete"):
        s = {"task": "copy", "sg": "on", "T": 3, "seed": seed, "status": status, "dir": f"x/sg=on,T=3,seed={seed}",
             "max_solved": {"length": 7}}
        return {**s, "config": config} if config is not None else s
    old = {"sg": {"name": "on", "scale": 0.1}, "seed": 0}  # before sg.fit existed
    new = {"sg": {"name": "on", "scale": 0.1, "fit": "adam"}, "seed": 1, "train": {"timing": False}}
    cells = group([run(0, old), run(1, new), run(2, None, status="failed")])
    assert list(cells) == [("copy", "DNI")] and len(cells[("copy", "DNI")][3]) == 3
    other = group([run(0, old), run(1, {**new, "sg": {**new["sg"], "fit": "ridge"}})])
    assert sorted(k[1] for k in other) == ["DNI (sg.fit=adam)", "DNI (sg.fit=ridge)"]


def sgrnn_main(*args) -> int:
    """`sgrnn ARGS...` in this process: its exit status."""
    from sgrnn.cli import main

    with pytest.raises(SystemExit) as exit:
        main(list(args))
    return exit.value.code


def test_report_adds_the_study_and_time_to_result_tables_and_rewrites_the_readme_block(tmp_path, capsys):
    runs = tmp_path / "runs"
    quality = [{"step": 10 * k, "sg_state_cos": 0.1, "sg_param_cos": 0.1 * k, "sg_param_norm_ratio": 0.5,
                "sg_target_cos": 0.9} for k in range(1, 7)]  # run median 0.35; last five 0.2..0.6: 0.4
    for seed, length in enumerate([4, 5]):
        write(runs / "copy" / f"sg=off,T=2,seed={seed}", **copy_run(2, seed, length))
    for seed, length in enumerate([7, 6]):
        write(runs / "copy" / f"sg=on,T=2,seed={seed}", **copy_run(2, seed, length, sg="on", sg_quality=quality))
    readme = tmp_path / "README.md"
    from sgrnn.readme import BEGIN, END

    readme.write_text(f"# title\n\nabove\n{BEGIN}\nold table\n{END}\nbelow\n")
    out = tmp_path / "out"
    assert sgrnn_main("report", str(runs), "--out", str(out), "--study", "--time-to-result", "--readme", str(readme)) == 0
    printed = capsys.readouterr().out
    study = "| Copy | 2 | DNI | **6.500** [6–7] | 0,1 | 100 | 4 | **6** [6–6] (2 of 2) | 0.350 | 0.400 | - | 0.500 | - | 0.100 | 0.900 |"
    assert study in printed and study in (out / "study_table.md").read_text() and study in (out / "report.md").read_text()
    assert "| Copy | 2 | BPTT | **4.500** [4–5] | 0,1 | 100 | 3.500 | - |" in printed  # BPTT: no time to beat itself
    ttr = (out / "time_to_result.md").read_text()
    assert "### Copy, T=2" in ttr and "| length solved | BPTT: wall s (updates) | DNI: wall s (updates) |" in ttr
    assert "| 3 | 3 (30) | 3 (30) |" in ttr and "| 5 | 5 (50) (1 of 2) | 5 (50) |" in ttr
    assert "| 7 | not reached | 7 (70) (1 of 2) |" in ttr and ttr in (out / "report.md").read_text()
    text = readme.read_text()
    from sgrnn.readme import readme_text

    table = (out / "table1.md").read_text()
    assert text == f"# title\n\nabove\n{BEGIN}\n{readme_text(table)}\n{END}\nbelow\n"
    assert "Hardware (finished runs)" in table and "Hardware" not in text  # the provenance stays in table1.md
    # without --study and --time-to-result: neither table
    assert sgrnn_main("report", str(runs), "--out", str(tmp_path / "plain")) == 0
    assert "study table" not in (tmp_path / "plain" / "report.md").read_text()


@pytest.mark.parametrize("readme, message", [("none.md", "no README"), ("plain.md", "has no generated Table 1 block")])
def test_report_readme_without_its_block_is_one_line_and_writes_nothing(tmp_path, capsys, readme, message):
    write(tmp_path / "runs" / "copy" / "sg=off,T=2,seed=0", **copy_run(2, 0, 4))
    (tmp_path / "plain.md").write_text("# a README without the markers\n")
    assert sgrnn_main("report", str(tmp_path / "runs"), "--readme", str(tmp_path / readme)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgrnn: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs" / "report").exists()
    assert (tmp_path / "plain.md").read_text() == "# a README without the markers\n"
