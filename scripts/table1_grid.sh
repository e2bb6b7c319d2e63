#!/usr/bin/env bash
# Table 1 at CPU scale (issue 14; README "Table 1"): every cell of the presets in conf/experiment
# (Copy and Repeat Copy x T=2..5 x BPTT, DNI, DNI + Aux, placebo; PTB BPTT T=8, 20, 40 and DNI,
# DNI + Aux, the placebo and the oracle (their ceiling) at T=8; 3 seeds), as two queues of one
# cell at a time, one thread each, so that both cores stay busy to the end (Copy on one, Repeat
# Copy on the other, PTB split between them).
# The cells the issue's targets compare come first: BPTT and DNI at T=3 (the data-efficiency
# figures), then T=2, 4, 5; then PTB; then DNI + Aux and the placebo at T=3, 2, 4, 5; then the
# ceilings: the oracle at T=3, 2, 4, 5 and full BPTT (issue 21; 30 cells, none run yet as of 2026-12-03).
#   bash scripts/table1_grid.sh [--fresh] RUNS_DIR [PTB_DATA_DIR]      then: sgrnn report RUNS_DIR
# The committed cells (docs/table1/cells, all 117 since 2026-12-02) are restored first, so without
# --fresh a new runs folder has nothing left to run. --fresh skips the restore: in a new (or empty)
# RUNS_DIR it re-measures every cell (11 cell-hours: about 5.5 hours on 2 cores); cells RUNS_DIR
# already has finished are still skipped.
# Re-running it resumes the grid: finished cells are skipped, interrupted ones resume from their
# checkpoints. Each queue logs to RUNS_DIR/queue-{copy,repeat-copy}.log. Across sessions (a new
# machine, no runs folder): `python scripts/table1_cells.py save RUNS_DIR` keeps the finished
# cells' summary.json in docs/table1/cells, which this script restores first.
# The same cells as `sgrnn train -m experiment=NAME hydra/launcher=local` for each preset.
set -euo pipefail
usage="usage: table1_grid.sh [--fresh] RUNS_DIR [PTB_DATA_DIR]"
restore=1 args=()
for a in "$@"; do
  case $a in
    --fresh) restore=0 ;;
    -*) echo "table1_grid.sh: unknown option $a ($usage)" >&2; exit 2 ;;
    *) args+=("$a") ;;
  esac
done
if (( ${#args[@]} < 1 || ${#args[@]} > 2 )); then echo "table1_grid.sh: $usage" >&2; exit 2; fi
set -- "${args[@]}"
out=$1
data=${2:-${SGRNN_DATA_DIR:-data/ptb}}
mkdir -p "$out"
# Cells an earlier session finished (their summary.json, committed in docs/table1/cells) are skipped.
if (( restore )); then python "$(dirname "$0")/table1_cells.py" restore "$out"; fi
one=(hydra/launcher=local hydra.launcher.n_jobs=1 train.threads=1 train.progress=false hydra.sweep.dir="$out")
queue() {  # queue TASK PTB_PRESETS...: the task's BPTT and DNI cells, the PTB cells given, the rest
  local task=$1 failed=0; shift
  for T in 3 2 4 5; do
    sgrnn train -m experiment=$task-bptt,$task-dni T=$T seed=0,1,2 "${one[@]}" || failed=1
  done
  for spec in "$@"; do  # PRESET:T
    sgrnn train -m experiment=${spec%%:*} T=${spec##*:} seed=0,1,2 task.data_dir="$data" "${one[@]}" || failed=1
  done
  for T in 3 2 4 5; do
    sgrnn train -m experiment=$task-dni-aux,$task-placebo T=$T seed=0,1,2 "${one[@]}" || failed=1
  done
  for T in 3 2 4 5; do  # the ceilings
    sgrnn train -m experiment=$task-oracle T=$T seed=0,1,2 "${one[@]}" || failed=1
  done
  sgrnn train -m experiment=$task-full-bptt "${one[@]}" || failed=1
  return $failed  # a failed cell does not stop the queue; the sweep's end lists it
}
# PTB's first seed at T=8 goes first: the earliest sign of whether DNI beats BPTT there.
sgrnn train -m experiment=ptb-bptt T=8 seed=0 task.data_dir="$data" "${one[@]}" > "$out/queue-copy.log" 2>&1 &
sgrnn train -m experiment=ptb-dni T=8 seed=0 task.data_dir="$data" "${one[@]}" > "$out/queue-repeat-copy.log" 2>&1 &
wait
queue copy ptb-bptt:8 ptb-bptt:20 ptb-dni-aux:8 ptb-placebo:8 >> "$out/queue-copy.log" 2>&1 &
a=$!
queue repeat-copy ptb-dni:8 ptb-bptt:40 ptb-oracle:8 >> "$out/queue-repeat-copy.log" 2>&1 &
b=$!
status=0
wait $a || status=1
wait $b || status=1
exit $status
