#!/bin/bash
# s20: pCTR epoch 3 again on pi_2's samples (irpo-pctr-ctxw): (a) neutral ties + later + random cap, (b) random cap alone
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd /work/wt20
run() { echo "== train $1 $(date)"; python -m llm_auction_env.cli train --preset quick --run-dir /work/main/runs/$1 --resume --set epochs=3 $2 > /work/main/runs/$1-train.log 2>&1 || echo "train $1 failed $(date)"; echo "== done $1 $(date)"; }
run s20-pctr-ntlr "choice_neutral_ties=true choice_later=true choice_cap=random"
run s20-pctr-r "choice_cap=random"
