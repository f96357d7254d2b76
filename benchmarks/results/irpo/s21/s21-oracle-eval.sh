#!/bin/bash
# s21: seed-0 row of each finished epoch of the s20-recipe Oracle run (served as trained)
for E in 01 02 03; do D=/work/main/runs/s20-full-oracle; while [ ! -f $D/epoch_$E/metrics.json ]; do sleep 30; done
  echo "== eval oracle e$E $(date)"; /work/main/runs/s19-eval.sh $D/epoch_$E/policy llm_auction_oracle /work/main/runs/lb-s20-full-oracle-e$E; echo "== done $(date)"; done
