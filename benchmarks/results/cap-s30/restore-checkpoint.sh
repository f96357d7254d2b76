#!/bin/bash
# Session 30: put the committed state of the stratified recipe run (checkpoint/: epoch 1's policy,
# metrics and deploy log, epoch 2's deploy log, pCTR, samples and pairs, all it needs to resume at
# epoch 2's DPO) into its run dir when the git-ignored run dir was lost; then run
# `s30-recipe.sh stratified` to resume. Does nothing if the run dir exists.
set -e
cd /work/main
RUN=runs/irpo-recipe-s30-stratified-pctr
[ -d $RUN ] && { echo "$RUN exists: resume it with s30-recipe.sh stratified"; exit 0; }
mkdir -p runs && cp -r benchmarks/results/cap-s30/checkpoint $RUN
echo "restored $RUN; now: benchmarks/results/cap-s30/s30-recipe.sh stratified"
