#!/bin/bash
# Session 25: contrast top-bid copies (one epoch continuing the shipped pCTR policy); then Fig. 4b,
# Fig. 4a and the pre-registered Table 2 on seed 3 (PREREGISTRATION.md).
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
RUN=runs/irpo-contrast-s25; EXP=runs/export-contrast-s25
date
llm-auction train --preset quick --reward pctr --run-dir $RUN --set init_adapter=mechanisms/adapters/llm_auction_pctr/policy \
  epochs=1 choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast seed=23 --export $EXP > runs/irpo-contrast-s25.log 2>&1 || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > $EXP/serving.json
date
llm-auction properties continuity --mechanism oracle_softmax --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 --out runs/fig4b-s25
date
llm-auction properties monotonicity --mechanism llm_auction --mechanism-kwargs "{\"llm_auction\": {\"adapter\": \"$EXP\"}}" \
  --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s25
date
llm-auction leaderboard --preset quick --seed 3 --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
  --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
  --compare llm_auction:mosaic --compare mosaic:pretrained --out runs/leaderboard-s25-seed3
date
echo DONE
