#!/bin/bash
# PREREGISTRATION.md's evaluation of the T = 2.5 arm, in its order; an item whose output exists is skipped.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
EXP=runs/export-s32-T2.5; R=benchmarks/results/value-s32
[ -f $EXP/policy/adapter_model.safetensors ] || { echo "no export yet: s32-arm.sh"; exit 1; }
for S in 2 3; do
  [ $S = 2 ] && ROWS=runs/leaderboard-s24-seed2 || ROWS=runs/leaderboard-s25-seed3
  [ $S = 2 ] && SHIPPED=runs/leaderboard-s24-seed2-shipped || SHIPPED=runs/leaderboard-s25-seed3-shipped
  OUT=runs/leaderboard-s32-T2.5-seed$S
  date
  [ -f $OUT/results.json ] || llm-auction leaderboard --preset quick --seed $S --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
    --reuse pretrained=$ROWS --reuse mosaic=$ROWS \
    --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
    --compare llm_auction:mosaic --out $OUT || exit 1
  P="python benchmarks/results/top-bid-s24/paired_runs.py $OUT llm_auction"
  $P runs/leaderboard-s31-strat-seed$S llm_auction > $R/paired_T2.5_vs_T10_seed$S.json || exit 1
  $P $OUT mosaic > $R/paired_T2.5_vs_mosaic_seed$S.json || exit 1
  $P $SHIPPED llm_auction > $R/paired_T2.5_vs_shipped_seed$S.json || exit 1
done
for S in 2 3; do
  [ -s $R/T2.5_seed$S.json ] || python $R/ad_value_probe.py runs/leaderboard-s32-T2.5-seed$S llm_auction $EXP/pctr > $R/T2.5_seed$S.json || exit 1
done
date
[ -f runs/fig4a-s32-T2.5/monotonicity.json ] || llm-auction properties monotonicity --mechanism llm_auction \
  --mechanism-kwargs "{\"llm_auction\": {\"adapter\": \"$EXP\"}}" --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s32-T2.5 || exit 1
for I in 0 2; do
  date
  [ -f runs/fig4b-s32-T2.5-i$I/continuity.json ] || llm-auction properties continuity --mechanism oracle_softmax \
    --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 --instance $I --out runs/fig4b-s32-T2.5-i$I || exit 1
done
date
echo DONE
