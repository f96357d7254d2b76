#!/bin/bash
# Session 22 Table 2 on the shipped adapters (defaults: serving.json, reserve tau 1), held-out seed 1
# (300 queries) first, then the seed-0 development set (100 queries). Untrained rows reused.
set -e
M=/work/main/benchmarks/results
KW='{"pretrained": {"constrain_ads": true}, "mosaic": {"constrain_ads": true}, "rag_auction": {"constrain_ads": true}}'
llm-auction leaderboard --preset quick --seed 1 --n-queries 300 --n-boot 4000 --out runs/lb-s22-seed1 \
  --mechanisms pretrained,mosaic,llm_auction,llm_auction_oracle,llm_auction_reserve,llm_auction_oracle_reserve \
  --mechanism-kwargs "$KW" \
  --reuse pretrained=$M/leaderboard-quick-300-seed1-s21-confirm-s17 --reuse mosaic=$M/leaderboard-quick-300-seed1-s21-confirm-s17
llm-auction leaderboard --preset quick --seed 0 --n-queries 100 --n-boot 4000 --out runs/lb-s22-seed0 \
  --mechanisms pretrained,mosaic,rag_auction,gsp_slot,llm_auction,llm_auction_oracle,llm_auction_reserve,llm_auction_oracle_reserve \
  --mechanism-kwargs "$KW" \
  --reuse pretrained=$M/leaderboard-quick-100-s15-constrained --reuse mosaic=$M/leaderboard-quick-100-s15-constrained \
  --reuse gsp_slot=$M/leaderboard-quick-100-s15-constrained --reuse rag_auction=$M/leaderboard-quick-100-s17-rag
