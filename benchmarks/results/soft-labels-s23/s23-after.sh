#!/bin/bash
# Session 23: after the soft-label continuation finishes: export, Fig. 4b, the hard-label control, leaderboards.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
SERVE='{"constrain_ads": true, "max_ads": 2}'
lb() {  # $1 = export, $2 = out
  llm-auction leaderboard --preset quick --seed 1 --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction,llm_auction_reserve \
    --reuse pretrained=benchmarks/results/leaderboard-quick-300-seed1-s21-confirm-s17 --reuse mosaic=benchmarks/results/leaderboard-quick-300-seed1-s21-confirm-s17 \
    --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$1\"}, \"llm_auction_reserve\": {\"adapter\": \"$1\"}}" \
    --compare llm_auction:mosaic --compare llm_auction_reserve:mosaic --compare llm_auction_reserve:llm_auction --out $2
}
fig4b() {  # $1 = export, $2 = out
  llm-auction properties continuity --mechanism oracle_softmax --checkpoint $1 --samples 50 --bids $BIDS --batch-size 16 --out $2
}
llm-auction train --preset quick --reward pctr --run-dir runs/irpo-soft-s23 --resume --export runs/export-soft-s23 > /dev/null
echo "$SERVE" > runs/export-soft-s23/serving.json
fig4b runs/export-soft-s23 runs/fig4b-s23-soft
llm-auction train --preset quick --reward pctr --run-dir runs/irpo-hard-s23 --set init_adapter=mechanisms/adapters/llm_auction_pctr/policy epochs=1 choice_label_temperature=0 seed=23 --export runs/export-hard-s23 > runs/irpo-hard-s23.log 2>&1
echo "$SERVE" > runs/export-hard-s23/serving.json
lb runs/export-soft-s23 runs/leaderboard-s23-soft
fig4b runs/export-hard-s23 runs/fig4b-s23-hard
lb runs/export-hard-s23 runs/leaderboard-s23-hard
echo DONE
