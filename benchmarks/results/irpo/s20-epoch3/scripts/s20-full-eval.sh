#!/bin/bash
# s20: Table 2 row of each finished epoch of the s20 full runs (served as trained: constrained, at most two ads).
# usage: s20-full-eval.sh [pctr|oracle ...] (default pctr; session 21 ran it with oracle)
for E in 01 02 03; do for r in ${@:-pctr}; do
  D=/work/main/runs/s20-full-$r; while [ ! -f $D/epoch_$E/metrics.json ]; do sleep 30; done
  M=llm_auction; [ $r = oracle ] && M=llm_auction_oracle
  echo "== eval $r e$E $(date)"; /work/main/runs/s19-eval.sh $D/epoch_$E/policy $M /work/main/runs/lb-s20-full-$r-e$E; echo "== done $(date)"
done; done
