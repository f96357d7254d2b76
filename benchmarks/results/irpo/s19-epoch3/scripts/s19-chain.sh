#!/bin/bash
# s19: epoch 3 of the ctxw runs again on their own pi_2 samples and pairs, with choice_neutral_ties
cd /work/wt19
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for r in oracle pctr; do
  RUN=/work/main/runs/s19-$r-nt
  echo "== train $r $(date)"
  python -m llm_auction_env.cli train --preset quick --run-dir $RUN --resume --set epochs=3 choice_neutral_ties=true > /work/main/runs/s19-$r-nt-train.log 2>&1 || { echo "train $r failed $(date)"; }
  echo "== done $r $(date)"
done
