#!/bin/bash
# Session 24: the pre-registered seed-2 confirmation, then make test.
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
while ! grep -q FIN runs/fig4a-s24.log; do sleep 10; done
date
llm-auction leaderboard --preset quick --seed 2 --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
  --mechanism-kwargs '{"pretrained": {"constrain_ads": true}, "mosaic": {"constrain_ads": true}, "llm_auction": {"adapter": "runs/export-top-s24"}}' \
  --compare llm_auction:mosaic --compare mosaic:pretrained --out runs/leaderboard-s24-seed2 > runs/lb-seed2.log 2>&1
date
( time make test ) > runs/make-test.log 2>&1
date
echo ALLDONE
