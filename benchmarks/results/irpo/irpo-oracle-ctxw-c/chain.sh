#!/bin/bash
# s18 ablation: epoch 2 of irpo-oracle-ctxw on constrained samples (constrain_ads=true), then its Table 2 row
source .venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
until grep -q "== free" runs/after-oracle.log; do sleep 10; done
pkill -f after-oracle.sh; pkill -f "lb-s18-free-oracle"; sleep 3; pkill -f llama-server; sleep 2
git checkout -- mechanisms/adapters/llm_auction_oracle
RUN=runs/irpo-oracle-ctxw-c
echo "== train $(date)"
llm-auction train --preset quick --run-dir $RUN --resume --set epochs=2 > runs/oracle-ctxw-c-train.log 2>&1 || { echo "train failed $(date)"; exit 1; }
echo "== table2 $(date)"
X=benchmarks/results/leaderboard-quick-100-s15-constrained
llm-auction leaderboard --preset quick --n-queries 100 --out runs/lb-s18-oracle-c-e02 --mechanisms pretrained,mosaic,llm_auction_oracle \
  --mechanism-kwargs '{"pretrained": {"constrain_ads": true}, "mosaic": {"constrain_ads": true}, "llm_auction_oracle": {"adapter": "runs/irpo-oracle-ctxw-c/epoch_02", "constrain_ads": true}}' \
  --reuse pretrained=$X --reuse mosaic=$X > runs/lb-s18-oracle-c-e02.log 2>&1
echo "== done $(date)"
