#!/usr/bin/env bash
# The defaults study of issue 11 (README "Making the synthetic gradient pay"): Copy and Repeat
# Copy, 5 minutes or the preset's budget a cell, one thread, two cells at a time
# (hydra/launcher=local). Re-running resumes: finished cells are skipped.
#   bash scripts/study_defaults.sh RUNS_DIR PHASE...
# Phases t3, t3-lr ran at commit afffc66 (sg.scale=1 was the default then, so 0.1 is explicit);
# the others at the commit that made 0.1 the default, so they run the plain default commands.
set -euo pipefail
out=${1:?RUNS_DIR}; shift
common=(task=copy hydra/launcher=local hydra.sweep.dir="$out")
for phase in "$@"; do
  case $phase in
    t3)      sgrnn train -m seed=0,1,2,3,4 T=3 sg=off,on,placebo sg.scale=0.1 train.max_minutes=5 "${common[@]}" ;;
    t3-lr)   sgrnn train -m seed=0,1,2,3,4 T=3 sg=on sg.scale=0.1 sg.lr=1e-4 train.max_minutes=5 "${common[@]}" ;;
    t2)      sgrnn train -m seed=0,1,2,3,4 T=2 sg=off,on "${common[@]}"
             sgrnn train -m seed=0,1,2 T=2 sg=placebo "${common[@]}" ;;
    rc)      sgrnn train -m seed=0,1,2,3,4 T=3 experiment=repeat-copy-bptt,repeat-copy-dni hydra/launcher=local hydra.sweep.dir="$out" ;;
    lambda)  sgrnn train -m seed=0,1,2 T=3 sg=on sg.target=lambda "${common[@]}" ;;
    scale)   sgrnn train -m seed=0,1,2 T=3 sg=on sg.scale=1.0,0.3,0.03 "${common[@]}" ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
