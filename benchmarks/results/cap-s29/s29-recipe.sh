#!/bin/bash
# Session 29 addendum (PREREGISTRATION.md): the three-epoch recipe run with choice_cap=random. Epoch 1
# is assembled from the session-28 recipe run (deploy, pCTR, samples) and the screen (pairs, DPO);
# the run then continues at epoch 2. Rerun to resume (finished phases are reused).
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SRC=runs/irpo-recipe-s28-pctr; SCREEN=runs/irpo-s29-cap-random; RUN=runs/irpo-recipe-s29-random-pctr
if [ ! -d $RUN/epoch_01 ]; then
  [ -f $SCREEN/epoch_01/dpo_metrics.json ] || { echo "the screen's epoch 1 is not finished"; exit 1; }
  mkdir -p $RUN/epoch_01
  cp -r $SRC/epoch_01/{deploy.jsonl,pctr,pctr_metrics.json,samples.jsonl} $RUN/epoch_01/
  cp -r $SCREEN/epoch_01/{pairs.jsonl,dpo_metrics.json,adapter,policy} $RUN/epoch_01/
fi
date
llm-auction train --preset quick --reward pctr --run-dir $RUN --resume \
  --set choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast choice_tie_bid=1.0 seed=0 choice_cap=random \
  --export runs/export-recipe-s29-random-pctr || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > runs/export-recipe-s29-random-pctr/serving.json
date
echo DONE
