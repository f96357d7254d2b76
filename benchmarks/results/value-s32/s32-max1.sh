#!/bin/bash
# PREREGISTRATION.md item 2: the stratified export served with one ad at most (its first-ad-only
# replay was > 0 on both seeds), seeds 2 and 3, paired against the same export at two ads and MOSAIC.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
EXP=runs/export-recipe-s30-stratified-pctr; R=benchmarks/results/value-s32
for S in 2 3; do
  [ $S = 2 ] && ROWS=runs/leaderboard-s24-seed2 || ROWS=runs/leaderboard-s25-seed3
  OUT=runs/leaderboard-s32-max1-seed$S
  date
  [ -f $OUT/results.json ] || llm-auction leaderboard --preset quick --seed $S --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
    --reuse pretrained=$ROWS --reuse mosaic=$ROWS \
    --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\", \"max_ads\": 1}}" \
    --compare llm_auction:mosaic --out $OUT || exit 1
  P="python benchmarks/results/top-bid-s24/paired_runs.py $OUT llm_auction"
  $P runs/leaderboard-s31-strat-seed$S llm_auction > $R/paired_max1_vs_max2_seed$S.json || exit 1
  $P $OUT mosaic > $R/paired_max1_vs_mosaic_seed$S.json || exit 1
done
date
echo DONE
