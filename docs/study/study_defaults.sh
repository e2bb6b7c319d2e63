#!/usr/bin/env bash
# The defaults study (issue 11; docs/study/defaults.md): Copy at T=2 and 3, Repeat Copy at T=3,
# one thread a cell, two cells at a time (hydra/launcher=local). A one-off driver, kept beside
# the study it ran (docs/study/t3-levers, docs/study/t2-placebo-repeat-copy).
#   bash docs/study/study_defaults.sh RUNS_DIR PHASE...      then: sgrnn report RUNS_DIR --study
# Re-running a phase resumes it: finished cells are skipped, unfinished ones resume.
# Phase t3 ran at commit 1832880 (sg.target=bootstrap was the default then, so the lambda row
# names it); t2, placebo and rc at 08ee7ea, where sg=on means scale 0.1 with the lambda target.
set -euo pipefail
out=${1:?RUNS_DIR}; shift
common=(task=copy hydra/launcher=local hydra.sweep.dir="$out")
for phase in "$@"; do
  case $phase in
    t3)      sgrnn train -m T=3 seed=0,1,2,3,4 sg=off,on,placebo sg.target=bootstrap "${common[@]}"
             sgrnn train -m T=3 seed=0,1,2,3,4 sg=on sg.target=bootstrap sg.lr=1e-4 "${common[@]}"
             sgrnn train -m T=3 seed=0,1,2,3,4 sg=on sg.target=lambda "${common[@]}" ;;
    t2)      sgrnn train -m T=2 seed=0,1,2,3,4 sg=off,on "${common[@]}" ;;
    placebo) sgrnn train -m T=2,3 seed=0,1,2 sg=placebo "${common[@]}" ;;
    rc)      sgrnn train -m T=3 seed=0,1,2 experiment=repeat-copy-bptt,repeat-copy-dni hydra/launcher=local hydra.sweep.dir="$out" ;;
    *) echo "unknown phase $phase (t3, t2, placebo, rc)" >&2; exit 2 ;;
  esac
done
