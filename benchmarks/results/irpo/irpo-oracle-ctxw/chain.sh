#!/bin/bash
# s18: Oracle run of the ctxw recipe, epochs 2-3 (epoch 1 = irpo-oracle-whether)
source .venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RUN=runs/irpo-oracle-ctxw
echo "== train $(date)"
llm-auction train --preset quick --run-dir $RUN --resume --set epochs=3 > runs/oracle-ctxw-train.log 2>&1 || { echo "train failed $(date)"; exit 1; }
echo "== done $(date)"
