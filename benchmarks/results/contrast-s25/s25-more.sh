#!/bin/bash
# Session 25, after s25.sh: the shipped policy on seed 3 (after the pre-registered rows), and the
# contrast continuation on seed 2 (rerun by hand after the first try pointed --reuse at the committed
# copy, which lacks the checkpoints), paired with session 24's uniform-pick continuation on the same queries.
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
while ! grep -q "^DONE" runs/s25.log; do sleep 20; done
EXP=runs/export-contrast-s25; S2=runs/leaderboard-s24-seed2  # session 24's run folder (the committed copy has no checkpoints, which --reuse reads)
date
llm-auction leaderboard --preset quick --seed 3 --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
  --reuse pretrained=runs/leaderboard-s25-seed3 --reuse mosaic=runs/leaderboard-s25-seed3 \
  --mechanism-kwargs '{"pretrained": {"constrain_ads": true}, "mosaic": {"constrain_ads": true}}' \
  --compare llm_auction:mosaic --out runs/leaderboard-s25-seed3-shipped
date
llm-auction leaderboard --preset quick --seed 2 --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
  --reuse pretrained=$S2 --reuse mosaic=$S2 \
  --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
  --compare llm_auction:mosaic --out runs/leaderboard-s25-seed2
date
echo MOREDONE
