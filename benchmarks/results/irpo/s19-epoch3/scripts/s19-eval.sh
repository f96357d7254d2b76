#!/bin/bash
# usage: s19-eval.sh <policy dir (epoch_0E)> <llm_auction|llm_auction_oracle> <out dir>
# Table 2 row (constrained markup, 100 test queries) with pretrained and MOSAIC reused from s15, then paired CIs.
cd /work/main; source .venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
P=$1; M=$2; OUT=$3
llm-auction leaderboard --preset quick --n-queries 100 --out $OUT --mechanisms pretrained,mosaic,$M \
  --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"$M\": {\"adapter\": \"$P\", \"constrain_ads\": true${EXTRA}}}" \
  --reuse pretrained=benchmarks/results/leaderboard-quick-100-s15-constrained --reuse mosaic=benchmarks/results/leaderboard-quick-100-s15-constrained > $OUT.log 2>&1 || { echo "leaderboard failed"; tail -20 $OUT.log; exit 1; }
python - $OUT/per_query.csv $M <<'PY'
import csv, sys
rows=[r for r in csv.DictReader(open(sys.argv[1])) if r["mechanism"]==sys.argv[2]]
n=len(rows); f=lambda k: sum(float(r[k]) for r in rows)/n
print(f"{sys.argv[2]}: n={n} E[revenue] {f('expected_revenue'):.2f} E[reward] {f('expected_reward'):.2f} ads {f('n_ads'):.2f} "
      f"no-ad answers {sum(float(r['n_ads'])==0 for r in rows)} errors {f('n_errors'):.2f}")
by={}
for r in rows: by.setdefault(int(float(r['n_ads'])),[]).append(float(r['expected_reward']))
print("E[reward] by ads:", {k:(len(v), round(sum(v)/len(v),1)) for k,v in sorted(by.items())})
PY
python /work/main/runs/s19-paired.py $OUT/per_query.csv:$M $OUT/per_query.csv:mosaic | sed "s/^/vs MOSAIC /"
