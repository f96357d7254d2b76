#!/bin/bash
# s21: the Oracle run of the s20 shipping-form recipe (resumable), from the worktree at the poll fix
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd /work/wt21
RECIPE="choice_none=true choice_second=true choice_repeats=true choice_whether=true pctr.ad_text=true pctr.ad_load=true pctr.context_text=true pctr.early_stopping=true constrain_ads=true max_ads=2 choice_cap=random"
echo "== train oracle $(date)"
python -m llm_auction_env.cli train --preset quick --run-dir /work/main/runs/s20-full-oracle --resume --set reward=oracle $RECIPE > /work/main/runs/s21-oracle-train.log 2>&1 || echo "train failed $(date)"
echo "== done $(date)"
