#!/bin/bash
# copy the finished epochs of an s20 full run (every file, so the run can resume from the copy) and its rows into benchmarks/results
cd /work/main; R=s20-full-$1; D=benchmarks/results/irpo/$R; mkdir -p $D
cp runs/$R/config.json $D/; cp runs/$R/metrics.json $D/ 2>/dev/null; cp runs/$R-train.log $D/train.log
for e in runs/$R/epoch_*; do [ -f $e/metrics.json ] || continue; E=$D/$(basename $e); mkdir -p $E
  rm -rf $E; cp -r $e $E; done  # the whole epoch: the run resumes from this copy
for lb in runs/lb-$R-e0*; do [ -d $lb ] || continue; T=benchmarks/results/leaderboard-quick-100-${lb#runs/lb-}; rm -rf $T; cp -r $lb $T; cp $lb.log $T/leaderboard.log; done
du -sh $D
