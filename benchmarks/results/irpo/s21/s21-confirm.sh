#!/bin/bash
# s21: held-out confirmation leaderboard (seed 1, 300 test queries). usage: s21-confirm.sh <out> <mechanisms> <llm_auction kwargs JSON fragment>
cd /work/main; source .venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=$1; MECHS=$2; LA=$3; shift 3
llm-auction leaderboard --preset quick --seed 1 --n-queries 300 --out $OUT --mechanisms $MECHS --n-boot 4000 \
  --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": $LA}" "$@" > $OUT.log 2>&1 || { echo "leaderboard failed"; tail -20 $OUT.log; exit 1; }
tail -12 $OUT/table.md
