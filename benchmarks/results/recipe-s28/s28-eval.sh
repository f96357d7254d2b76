#!/bin/bash
# Evaluation of the three-epoch recipe run, as PREREGISTRATION.md item 2 plans it (next session,
# after `RESUME=1 s28.sh` has finished the run and exported it). Order: Table 2 first (it decides
# whether the run ships), then Fig. 4a of epoch 3, Fig. 4b of the standard instance, then the rest.
# An item whose output exists is skipped, so the script continues where it was stopped.
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BIDS=1,5,10,15,20,25,30,35,40,45,50,55,60,65,70,75,80,85,90,95,100
RUN=runs/irpo-recipe-s28-pctr; EXP=runs/export-recipe-s28-pctr; R=benchmarks/results/recipe-s28
[ -f $EXP/policy/adapter_model.safetensors ] || { echo "no export yet: RESUME=1 $R/s28.sh"; exit 1; }
echo '{"constrain_ads": true, "max_ads": 2}' > $RUN/serving.json  # the epochs are served as the export is
for S in 2 3; do
  [ $S = 2 ] && ROWS=runs/leaderboard-s24-seed2 || ROWS=runs/leaderboard-s25-seed3
  [ $S = 2 ] && SHIPPED=runs/leaderboard-s24-seed2-shipped || SHIPPED=runs/leaderboard-s25-seed3-shipped
  date
  [ -f runs/leaderboard-s28-recipe-seed$S/results.json ] || llm-auction leaderboard --preset quick --seed $S --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
    --reuse pretrained=$ROWS --reuse mosaic=$ROWS \
    --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
    --compare llm_auction:mosaic --out runs/leaderboard-s28-recipe-seed$S || exit 1
  python benchmarks/results/top-bid-s24/paired_runs.py runs/leaderboard-s28-recipe-seed$S llm_auction $SHIPPED llm_auction \
    > $R/paired_recipe_vs_shipped_seed$S.json || exit 1
  python benchmarks/results/top-bid-s24/paired_runs.py runs/leaderboard-s28-recipe-seed$S llm_auction runs/leaderboard-s28-recipe-seed$S mosaic \
    > $R/paired_recipe_vs_mosaic_seed$S.json || exit 1
done
for E in 3 1 2; do
  date
  [ -f runs/fig4a-s28-e0$E/monotonicity.json ] || llm-auction properties monotonicity --mechanism llm_auction --mechanism-kwargs "{\"llm_auction\": {\"adapter\": \"$RUN/epoch_0$E\"}}" \
    --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s28-e0$E || exit 1
  if [ $E = 3 ] && [ ! -f runs/fig4b-s28-i0/continuity.json ]; then
    llm-auction properties continuity --mechanism oracle_softmax --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 \
      --instance 0 --out runs/fig4b-s28-i0 || exit 1
  fi
done
for I in 1 2; do
  date
  [ -f runs/fig4b-s28-i$I/continuity.json ] || llm-auction properties continuity --mechanism oracle_softmax --checkpoint $EXP --samples 50 --bids $BIDS --batch-size 16 \
    --instance $I --out runs/fig4b-s28-i$I || exit 1
done
date
echo DONE
