#!/bin/bash
# copy a finished s20 run (epoch 3 only; epochs 1-2 are the s17/s18 runs') and its leaderboard rows into benchmarks/results
cd /work/main; R=$1; D=benchmarks/results/irpo/s20-epoch3/$R
mkdir -p $D/epoch_03
cp runs/$R/config.json $D/; cp runs/$R/epoch_03/{metrics.json,dpo_metrics.json,pairs.jsonl} $D/epoch_03/
cp -r runs/$R/epoch_03/adapter $D/epoch_03/
cp runs/$R-train.log $D/train.log 2>/dev/null
for lb in runs/lb-$R runs/lb-$R-max2; do T=benchmarks/results/leaderboard-quick-100-${lb#runs/lb-}; [ -d $lb ] && { rm -rf $T; cp -r $lb $T; cp $lb.log $T/leaderboard.log; }; done
du -sh $D
