#!/bin/bash
# Session 30 (PREREGISTRATION.md, "If an arm is adopted"): the three-epoch recipe run with the adopted
# arm, usage: s30-recipe.sh stratified|random_top1. Epoch 1 is assembled from the session-28 recipe
# run (deploy, pCTR, samples) and the arm's screen (pairs, DPO); the run then continues at epoch 2
# (pCTR refit every epoch, no pctr_path). Rerun to resume (finished phases are reused).
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
case "$1" in
  stratified) SCREEN=runs/irpo-s30-cap-stratified; ARM="choice_cap=stratified" ;;
  random_top1) SCREEN=runs/irpo-s30-random-top1; ARM="choice_cap=random choice_top_bid=1.0" ;;
  *) echo "usage: $0 stratified|random_top1"; exit 2 ;;
esac
SRC=runs/irpo-recipe-s28-pctr; RUN=runs/irpo-recipe-s30-$1-pctr; EXPORT=runs/export-recipe-s30-$1-pctr
if [ ! -d $RUN/epoch_01 ]; then
  [ -f $SCREEN/epoch_01/dpo_metrics.json ] || { echo "the screen's epoch 1 is not finished"; exit 1; }
  mkdir -p $RUN/epoch_01
  cp -r $SRC/epoch_01/{deploy.jsonl,pctr,pctr_metrics.json,samples.jsonl} $RUN/epoch_01/
  cp -r $SCREEN/epoch_01/{pairs.jsonl,dpo_metrics.json,adapter,policy} $RUN/epoch_01/
fi
echo '{"constrain_ads": true, "max_ads": 2}' > $RUN/serving.json  # epoch dirs served as the exports are (Fig. 4a per epoch)
date
llm-auction train --preset quick --reward pctr --run-dir $RUN --resume \
  --set choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast choice_tie_bid=1.0 seed=0 $ARM \
  --export $EXPORT || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > $EXPORT/serving.json
date
echo DONE
