#!/bin/bash
# Session 28: item 1 of PREREGISTRATION.md (tie1's development Table 2 rows), the decision rule,
# then item 2 (the three-epoch recipe run; rerun this script with RESUME=1 to continue it).
set -x
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
R=benchmarks/results/recipe-s28; EXP=runs/export-tie1-s27
if [ -z "$RESUME" ]; then
  for S in 2 3; do
    [ $S = 2 ] && ROWS=runs/leaderboard-s24-seed2 || ROWS=runs/leaderboard-s25-seed3
    date
    llm-auction leaderboard --preset quick --seed $S --n-queries 300 --n-boot 4000 --mechanisms pretrained,mosaic,llm_auction \
      --reuse pretrained=$ROWS --reuse mosaic=$ROWS \
      --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$EXP\"}}" \
      --compare llm_auction:mosaic --out runs/leaderboard-s28-tie1-seed$S || exit 1
    python benchmarks/results/top-bid-s24/paired_runs.py runs/leaderboard-s28-tie1-seed$S llm_auction runs/leaderboard-s26-seed$S llm_auction \
      > $R/paired_tie1_vs_s26_seed$S.json || exit 1
  done
fi
TIE=$(python - <<'PY'
import json
below = [json.load(open(f"benchmarks/results/recipe-s28/paired_tie1_vs_s26_seed{s}.json"))["a_minus_b"]["reward"]["hi"] < 0 for s in (2, 3)]
print("0.5" if any(below) else "1.0")
PY
)
echo "choice_tie_bid=$TIE"
date
llm-auction train --preset quick --reward pctr --run-dir runs/irpo-recipe-s28-pctr ${RESUME:+--resume} \
  --set choice_label_temperature=10 choice_top_bid=0.5 choice_top_bid_pick=contrast choice_tie_bid=$TIE seed=0 \
  --export runs/export-recipe-s28-pctr || exit 1
echo '{"constrain_ads": true, "max_ads": 2}' > runs/export-recipe-s28-pctr/serving.json
date
echo DONE
