#!/usr/bin/env bash
# The defaults study of issue 11 (README "Making the synthetic gradient pay"): Copy, 5 minutes a
# cell, one thread, two cells at a time (hydra/launcher=local), seeds 0-4. Re-running resumes:
# finished cells are skipped. Usage: bash scripts/study_defaults.sh [RUNS_DIR] [PHASE...]
set -euo pipefail
out=${1:-studies/defaults}; shift || true
phases=${*:-"t3 t3-lr t2"}
common=(task=copy train.max_minutes=5 hydra/launcher=local hydra.sweep.dir="$out")
for phase in $phases; do
  case $phase in
    t3)    sgrnn train -m seed=0,1,2,3,4 T=3 sg=off,on,placebo sg.scale=0.1 "${common[@]}" ;;
    t3-lr) sgrnn train -m seed=0,1,2,3,4 T=3 sg=on sg.scale=0.1 sg.lr=1e-4 "${common[@]}" ;;
    t3-s1) sgrnn train -m seed=0,1,2 T=3 sg=on sg.scale=1.0,0.3,0.03 "${common[@]}" ;;
    t2)    sgrnn train -m seed=0,1,2,3,4 T=2 sg=off,on,placebo sg.scale=0.1 "${common[@]}" ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
