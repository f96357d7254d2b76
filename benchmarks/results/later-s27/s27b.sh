#!/bin/bash
# Session 27, the ablation of PREREGISTRATION.md's addendum: after s27.sh's tie60 probe, stop
# s27.sh (items 4-6 dropped), train the same continuation without choice_later, then Fig. 4b and
# the tie probe on it.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
RUN=runs/irpo-tie1-s27; EXP=runs/export-tie1-s27
while ! pgrep -f "properties monotonicity" > /dev/null; do sleep 5; done  # s27.sh has finished the tie60 probe
pkill -f "results/later-s27/s27.sh"; pkill -f "properties monotonicity"; sleep 5
date
llm-auction train --preset quick --reward pctr --run-dir $RUN --set init_adapter=mechanisms/adapters/llm_auction_pctr/policy \
  epochs=1 choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast choice_tie_bid=1.0 seed=23 --export $EXP
[ -f $EXP/policy/adapter_model.safetensors ] || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > $EXP/serving.json
date
llm-auction properties continuity --mechanism oracle_softmax --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 --out runs/fig4b-s27b
date
python benchmarks/results/soft-labels-s23/tie_probe.py llm_auction 40 runs/tie_probe_s27b.json $EXP
date
echo DONE
