#!/bin/bash
# Session 30, arms A (stratified cap) and B (random cap, top-bid copy on every answer) of
# PREREGISTRATION.md: session 29's screen (../cap-s29/s29.sh) with one change each, run one after
# the other; each run is stopped once pi_1's epoch-2 samples are written. Rerun to continue.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SRC=runs/irpo-recipe-s28-pctr; R=benchmarks/results/cap-s30; S29=benchmarks/results/cap-s29
RECIPE="choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast choice_tie_bid=1.0 seed=0"
screen() {  # name, run dir, extra --set options
  local NAME=$1 RUN=$2; shift 2
  mkdir -p $RUN/epoch_01
  [ -f $RUN/epoch_01/samples.jsonl ] || cp $SRC/epoch_01/samples.jsonl $RUN/epoch_01/
  date
  llm-auction train --preset quick --reward pctr --run-dir $RUN --resume \
    --set $RECIPE pctr_path=$SRC/epoch_01/pctr epochs=2 "$@" > $R/train-$NAME.log 2>&1 &
  local PID=$!
  while kill -0 $PID 2>/dev/null && [ ! -f $RUN/epoch_02/samples.jsonl ]; do sleep 20; done
  kill $PID 2>/dev/null; wait $PID
  date
  [ -f $RUN/epoch_02/samples.jsonl ] || { echo "no epoch-2 samples: see $R/train-$NAME.log"; return 1; }
  python $S29/compare_samples.py $RUN $SRC 2 > $R/pi1_${NAME}_vs_gap.json
  python $S29/compare_samples.py $RUN runs/irpo-s29-cap-random 2 > $R/pi1_${NAME}_vs_random.json
  python $S29/whether_gap_proxy.py $RUN $SRC runs/irpo-s29-cap-random > $R/whether_gap_proxy_$NAME.json
  python benchmarks/results/later-s27/pairs_composition.py $RUN $SRC runs/irpo-s29-cap-random > $R/pairs_composition_$NAME.json
}
screen stratified runs/irpo-s30-cap-stratified choice_cap=stratified
screen random_top1 runs/irpo-s30-random-top1 choice_cap=random choice_top_bid=1.0
date
echo DONE
