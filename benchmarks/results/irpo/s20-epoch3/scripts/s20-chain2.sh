#!/bin/bash
# s20: pCTR epoch 3 again on pi_2's samples (irpo-pctr-ctxw) with choice_cap=random alone
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd /work/wt20
echo "== train s20-pctr-r $(date)"
python -m llm_auction_env.cli train --preset quick --run-dir /work/main/runs/s20-pctr-r --resume --set epochs=3 choice_cap=random > /work/main/runs/s20-pctr-r-train.log 2>&1 || echo "train failed $(date)"
echo "== done s20-pctr-r $(date)"
