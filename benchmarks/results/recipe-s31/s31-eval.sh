#!/bin/bash
# PREREGISTRATION.md's evaluation of the stratified-cap recipe run, in its order. An item whose
# output exists is skipped, so the script continues where it was stopped. Usage: s31-eval.sh [fig4a-e02]
# (the argument runs item 4 alone, beside epoch 3's DPO).
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
RUN=runs/irpo-recipe-s30-stratified-pctr; EXP=runs/export-recipe-s30-stratified-pctr; R=benchmarks/results/recipe-s31
fig4a() {  # epoch E
  [ -f runs/fig4a-s31-e0$1/monotonicity.json ] || llm-auction properties monotonicity --mechanism llm_auction \
    --mechanism-kwargs "{\"llm_auction\": {\"adapter\": \"$RUN/epoch_0$1\"}}" \
    --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s31-e0$1
}
fig4b() {  # instance I
  [ -f runs/fig4b-s31-i$1/continuity.json ] || llm-auction properties continuity --mechanism oracle_softmax \
    --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 --instance $1 --out runs/fig4b-s31-i$1
}
if [ "$1" = fig4a-e02 ]; then fig4a 2; exit $?; fi
[ -f $EXP/policy/adapter_model.safetensors ] || { echo "no export yet: ../cap-s30/s30-recipe.sh stratified"; exit 1; }
for S in 2 3; do
  [ $S = 2 ] && ROWS=runs/leaderboard-s24-seed2 || ROWS=runs/leaderboard-s25-seed3
  [ $S = 2 ] && SHIPPED=runs/leaderboard-s24-seed2-shipped || SHIPPED=runs/leaderboard-s25-seed3-shipped
  OUT=runs/leaderboard-s31-strat-seed$S
  date
  [ -f $OUT/results.json ] || llm-auction leaderboard --preset quick --seed $S --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
    --reuse pretrained=$ROWS --reuse mosaic=$ROWS \
    --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
    --compare llm_auction:mosaic --out $OUT || exit 1
  P="python benchmarks/results/top-bid-s24/paired_runs.py $OUT llm_auction"
  $P $SHIPPED llm_auction > $R/paired_vs_shipped_seed$S.json || exit 1
  $P $OUT mosaic > $R/paired_vs_mosaic_seed$S.json || exit 1
  $P runs/leaderboard-s28-recipe-seed$S llm_auction > $R/paired_vs_recipe_s28_seed$S.json || exit 1
done
date; fig4a 3 || exit 1
date; fig4b 0 || exit 1
date; fig4a 2 || exit 1
for I in 1 2; do date; fig4b $I || exit 1; done
python -m benchmarks.fig4a_epochs \
  --entry "epoch 0 (warm start)=benchmarks/results/fig4a-warmstart/monotonicity.json:pretrained" \
  --entry "epoch 1=benchmarks/results/cap-s30/fig4a-e01-stratified/monotonicity.json:llm_auction" \
  --entry "epoch 2=runs/fig4a-s31-e02/monotonicity.json:llm_auction" \
  --entry "epoch 3=runs/fig4a-s31-e03/monotonicity.json:llm_auction" --out $R/fig4a-epochs || exit 1
date
echo DONE
