#!/bin/bash
# Session 33's arms (PREREGISTRATION.md): epoch 3's DPO of the stratified recipe run again from the
# same pi_2, pCTR_3 and samples. Q: one answer per query (groups from rebuild_pairs.py);
# L: the run's groups, a larger LoRA (r 16 on attention + MLP). Usage: s33-arm.sh Q|L. Rerun to resume.
set -x
ARM=$1
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
SRC=runs/irpo-recipe-s30-stratified-pctr; RUN=runs/irpo-s33-$ARM; EXPORT=runs/export-s33-$ARM
case $ARM in
  Q) SET="choice_answers_per_query=1" ;;
  L) SET="lora_r=16 lora_alpha=32 lora_targets=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj" ;;
  *) echo "usage: $0 Q|L"; exit 2 ;;
esac
if [ ! -d $RUN/epoch_03 ]; then
  [ -f $SRC/epoch_03/pairs.jsonl ] || { echo "no stratified run (restore it: ../recipe-s31/README.md)"; exit 1; }
  mkdir -p $RUN/epoch_03
  cp -r $SRC/epoch_01 $SRC/epoch_02 $SRC/config.json $SRC/serving.json $RUN/
  cp -r $SRC/epoch_03/{deploy.jsonl,pctr,pctr_metrics.json,samples.jsonl} $RUN/epoch_03/
  if [ $ARM = Q ]; then
    [ -f runs/s33/pairs-q1.jsonl ] || python benchmarks/results/queries-s33/rebuild_pairs.py $SRC 1 runs/s33/pairs-q1.jsonl || exit 1
    cp runs/s33/pairs-q1.jsonl $RUN/epoch_03/pairs.jsonl
  else
    cp $SRC/epoch_03/pairs.jsonl $RUN/epoch_03/
  fi
fi
date
llm-auction train --preset quick --reward pctr --run-dir $RUN --resume --set $SET --export $EXPORT || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > $EXPORT/serving.json
date
echo DONE
