#!/bin/bash
# Session 32's arm (PREREGISTRATION.md, addendum): epoch 3's DPO of the stratified recipe run again,
# on the same samples, groups, pCTR and reference, at choice_label_temperature=2.5. Rerun to resume.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SRC=runs/irpo-recipe-s30-stratified-pctr; RUN=runs/irpo-s32-T2.5; EXPORT=runs/export-s32-T2.5
if [ ! -d $RUN/epoch_03 ]; then
  [ -f $SRC/epoch_03/pairs.jsonl ] || { echo "no stratified run (restore it: ../recipe-s31/README.md)"; exit 1; }
  mkdir -p $RUN/epoch_03
  cp -r $SRC/epoch_01 $SRC/epoch_02 $SRC/config.json $SRC/serving.json $RUN/
  cp -r $SRC/epoch_03/{deploy.jsonl,pctr,pctr_metrics.json,samples.jsonl,pairs.jsonl} $RUN/epoch_03/
fi
date
llm-auction train --preset quick --reward pctr --run-dir $RUN --resume --set choice_label_temperature=2.5 \
  --export $EXPORT || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > $EXPORT/serving.json
date
echo DONE
