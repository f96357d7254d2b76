#!/bin/bash
# s20: the candidate shipping recipe, three epochs from pi_0 with `llm-auction train --preset quick`,
# pCTR then Oracle. Usage: s20-full.sh "<extra --set flags>"
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd /work/wt20
RECIPE="choice_none=true choice_second=true choice_repeats=true choice_whether=true pctr.ad_text=true pctr.ad_load=true pctr.context_text=true pctr.early_stopping=true constrain_ads=true max_ads=2 $1"
for r in pctr oracle; do
  echo "== train $r $(date)"
  python -m llm_auction_env.cli train --preset quick --run-dir /work/main/runs/s20-full-$r --resume --set reward=$r $RECIPE > /work/main/runs/s20-full-$r-train.log 2>&1 || echo "train $r failed $(date)"
  echo "== done $r $(date)"
done
