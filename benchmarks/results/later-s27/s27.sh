#!/bin/bash
# Session 27: later insertions + every answer's tie copy + clicks from many-ad answers (one epoch
# continuing the shipped pCTR policy); then Fig. 4b, the tie probe, the tie60 probe, Fig. 4a,
# development Table 2 rows on seeds 2 and 3 paired with session 26's tie continuation, and the
# which_ad probe (PREREGISTRATION.md).
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
RUN=runs/irpo-later-s27; EXP=runs/export-later-s27
date
# (started by hand at 18:54 at commit d933cef with this command, output in runs/irpo-later-s27.log; this script waited for it)
# llm-auction train --preset quick --reward pctr --run-dir $RUN --set init_adapter=mechanisms/adapters/llm_auction_pctr/policy \
#   epochs=1 choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast choice_tie_bid=1.0 choice_later=true seed=23 --export $EXP
while pgrep -f "run-dir $RUN" > /dev/null; do sleep 20; done
[ -f $EXP/policy/adapter_model.safetensors ] || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > $EXP/serving.json
date
llm-auction properties continuity --mechanism oracle_softmax --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 --out runs/fig4b-s27
date
python benchmarks/results/soft-labels-s23/tie_probe.py llm_auction 40 runs/tie_probe_s27.json $EXP
date
python benchmarks/results/tie-s26/tie60_probe.py $EXP 40 > runs/tie60_s27.json
date
llm-auction properties monotonicity --mechanism llm_auction --mechanism-kwargs "{\"llm_auction\": {\"adapter\": \"$EXP\"}}" \
  --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s27
for SEED in 2 3; do
  date
  BASE=runs/leaderboard-s26-seed$SEED  # session 26's tie row; pretrained and MOSAIC from the run that made them
  ROWS=runs/leaderboard-s25-seed3; [ $SEED = 2 ] && ROWS=runs/leaderboard-s24-seed2
  llm-auction leaderboard --preset quick --seed $SEED --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
    --reuse pretrained=$ROWS --reuse mosaic=$ROWS \
    --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
    --compare llm_auction:mosaic --out runs/leaderboard-s27-seed$SEED
  python benchmarks/results/top-bid-s24/paired_runs.py runs/leaderboard-s27-seed$SEED llm_auction $BASE llm_auction > runs/paired_later_vs_tie_seed$SEED.json
done
date
python benchmarks/results/top-bid-s24/which_ad_probe.py $EXP 40 > runs/which_ad_s27.json
date
echo DONE
