#!/bin/bash
# s20: Table 2 rows of each finished s20 pCTR run, uncapped and served with max_ads=2
for R in s20-pctr-ntlr s20-pctr-r; do
  while [ ! -f /work/main/runs/$R/epoch_03/metrics.json ]; do sleep 30; done
  echo "== eval $R $(date)"
  /work/main/runs/s19-eval.sh /work/main/runs/$R/epoch_03/policy llm_auction /work/main/runs/lb-$R
  EXTRA=', "max_ads": 2' /work/main/runs/s19-eval.sh /work/main/runs/$R/epoch_03/policy llm_auction /work/main/runs/lb-$R-max2
  echo "== done $R $(date)"
done
