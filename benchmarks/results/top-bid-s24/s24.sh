#!/bin/bash
# Session 24: soft labels (T = 10) + top-bid copies, one epoch continuing the shipped pCTR policy; then Fig. 4b, Fig. 4a, Table 2.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
SERVE='{"constrain_ads": true, "max_ads": 2}'
RUN=runs/irpo-top-s24; EXP=runs/export-top-s24
llm-auction train --preset quick --reward pctr --run-dir $RUN --set init_adapter=mechanisms/adapters/llm_auction_pctr/policy epochs=1 choice_label_temperature=10 choice_top_bid=0.5 seed=23 --export $EXP > runs/irpo-top-s24.log 2>&1 || exit 1
echo "$SERVE" > $EXP/serving.json
llm-auction properties continuity --mechanism oracle_softmax --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 --out runs/fig4b-s24-top
llm-auction leaderboard --preset quick --seed 1 --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction,llm_auction_reserve \
  --reuse pretrained=benchmarks/results/leaderboard-quick-300-seed1-s21-confirm-s17 --reuse mosaic=benchmarks/results/leaderboard-quick-300-seed1-s21-confirm-s17 \
  --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}, \"llm_auction_reserve\": {\"adapter\": \"$EXP\"}}" \
  --compare llm_auction:mosaic --compare llm_auction_reserve:mosaic --compare llm_auction_reserve:llm_auction --out runs/leaderboard-s24-top
echo DONE
