#!/bin/bash
# s19: after pctr-ntl: Oracle epoch 3 on pi_2's samples with choice_neutral_ties + choice_later + choice_cap=random
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
while pgrep -f "s19-pctr-ntl --resume" > /dev/null; do sleep 20; done
echo "== pctr-ntl finished $(date)"
cd /work/wt19c; echo "== train s19-oracle-ntlr $(date)"
python -m llm_auction_env.cli train --preset quick --run-dir /work/main/runs/s19-oracle-ntlr --resume --set epochs=3 choice_neutral_ties=true choice_later=true choice_cap=random > /work/main/runs/s19-oracle-ntlr-train.log 2>&1 || echo "train failed $(date)"
echo "== done s19-oracle-ntlr $(date)"
