#!/bin/bash
# One trained export evaluated as the one-epoch arms since session 24 are (so later sessions call this
# script instead of copying it): an item whose output exists is skipped, so a rerun resumes.
#
#   benchmarks/arm_eval.sh STAGE EXPORT TAG RESULTS_DIR
#
# STAGE table: Table 2 rows on seeds 2 and 3 (300 test queries, n_boot 4000, pretrained and MOSAIC
#   rows reused from runs/leaderboard-s24-seed2 / runs/leaderboard-s25-seed3) into
#   runs/leaderboard-TAG-seedS; paired per query against the stratified T = 10 pi_3
#   (runs/leaderboard-s31-strat-seedS), MOSAIC and the shipped policy; session 32's probe of the row.
# STAGE fig4a: Fig. 4a (40 instances) into runs/fig4a-TAG.
# STAGE fig4b: Fig. 4b on instances 0 and 2 (50 samples per bid) into runs/fig4b-TAG-iI.
set -x
STAGE=$1; EXP=$2; TAG=$3; R=$4
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ -f $EXP/policy/adapter_model.safetensors ] || { echo "no export at $EXP"; exit 1; }
mkdir -p $R
case $STAGE in
table)
  for S in 2 3; do
    [ $S = 2 ] && ROWS=runs/leaderboard-s24-seed2 || ROWS=runs/leaderboard-s25-seed3
    [ $S = 2 ] && SHIPPED=runs/leaderboard-s24-seed2-shipped || SHIPPED=runs/leaderboard-s25-seed3-shipped
    OUT=runs/leaderboard-$TAG-seed$S
    date
    [ -f $OUT/results.json ] || llm-auction leaderboard --preset quick --seed $S --n-queries 300 --n-boot 4000 \
      --mechanisms pretrained,mosaic,llm_auction --reuse pretrained=$ROWS --reuse mosaic=$ROWS \
      --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
      --compare llm_auction:mosaic --out $OUT || exit 1
    P="python benchmarks/results/top-bid-s24/paired_runs.py $OUT llm_auction"
    $P runs/leaderboard-s31-strat-seed$S llm_auction > $R/paired_${TAG}_vs_T10_seed$S.json || exit 1
    $P $OUT mosaic > $R/paired_${TAG}_vs_mosaic_seed$S.json || exit 1
    $P $SHIPPED llm_auction > $R/paired_${TAG}_vs_shipped_seed$S.json || exit 1
    [ -s $R/probe_${TAG}_seed$S.json ] || python benchmarks/results/value-s32/ad_value_probe.py $OUT llm_auction $EXP/pctr \
      > $R/probe_${TAG}_seed$S.json || exit 1
  done ;;
fig4a)
  [ -f runs/fig4a-$TAG/monotonicity.json ] || llm-auction properties monotonicity --mechanism llm_auction \
    --mechanism-kwargs "{\"llm_auction\": {\"adapter\": \"$EXP\"}}" --n-instances 40 --samples 1 --batch-size 16 \
    --out runs/fig4a-$TAG || exit 1 ;;
fig4b)
  BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
  for I in 0 2; do
    date
    [ -f runs/fig4b-$TAG-i$I/continuity.json ] || llm-auction properties continuity --mechanism oracle_softmax \
      --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 --instance $I --out runs/fig4b-$TAG-i$I || exit 1
  done ;;
*) echo "usage: $0 table|fig4a|fig4b EXPORT TAG RESULTS_DIR"; exit 2 ;;
esac
date
echo DONE
