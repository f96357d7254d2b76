#!/bin/bash
# Session 27, by hand after s27b.sh was stopped before its tie probe (time): the tie60 probe of the ablation (its pCTR crossing), then make test.
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
while pgrep -f "properties continuity" > /dev/null; do sleep 5; done
date
python benchmarks/results/tie-s26/tie60_probe.py runs/export-tie1-s27 40 > runs/tie60_s27b.json
date
make test > runs/make-test-s27.log 2>&1; echo "make test rc $?"
date
echo AFTERDONE
# then, by hand at 21:22 (time left after make test): Fig. 4a of the ablation
llm-auction properties monotonicity --mechanism llm_auction --mechanism-kwargs '{"llm_auction": {"adapter": "runs/export-tie1-s27"}}' --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s27b
