#!/bin/bash
# Session 29, arm cap_random of PREREGISTRATION.md: the recipe run's epoch 1 with choice_cap=random
# on the recipe's own epoch-1 samples and pCTR, then pi_1's epoch-2 samples; the run is stopped once
# they are written (its epoch-2 pairs and DPO are not part of the screen). Rerun to continue.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SRC=runs/irpo-recipe-s28-pctr; RUN=runs/irpo-s29-cap-random; R=benchmarks/results/cap-s29
mkdir -p $RUN/epoch_01
[ -f $RUN/epoch_01/samples.jsonl ] || cp $SRC/epoch_01/samples.jsonl $RUN/epoch_01/
date
llm-auction train --preset quick --reward pctr --run-dir $RUN --resume \
  --set choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast choice_tie_bid=1.0 seed=0 \
        choice_cap=random pctr_path=$SRC/epoch_01/pctr epochs=2 > $R/train.log 2>&1 &
PID=$!
while kill -0 $PID 2>/dev/null && [ ! -f $RUN/epoch_02/samples.jsonl ]; do sleep 20; done
kill $PID 2>/dev/null; wait $PID
date
[ -f $RUN/epoch_02/samples.jsonl ] || { echo "no epoch-2 samples: see $R/train.log"; exit 1; }
python $R/compare_samples.py $RUN $SRC 2 > $R/pi1_cap_random_vs_gap.json || exit 1
python $R/whether_gap_proxy.py $RUN $SRC > $R/whether_gap_proxy_cap_random.json
python benchmarks/results/later-s27/pairs_composition.py $RUN $SRC > $R/pairs_composition.json
date
echo DONE
