#!/bin/bash
# s17: ctx+whether pCTR recipe, epoch by epoch, each evaluated (Table 2 row + Fig. 4a) before the next
source .venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
R=benchmarks/results; X=$R/leaderboard-quick-100-s15-constrained; RUN=runs/irpo-pctr-ctxw
for e in 1 2 3; do
  echo "== epoch $e train $(date)"
  llm-auction train --preset quick --run-dir $RUN --resume --set epochs=$e > runs/ctxw-train-e$e.log 2>&1 || { echo "train $e failed"; exit 1; }
  echo "== epoch $e leaderboard $(date)"
  llm-auction leaderboard --preset quick --n-queries 100 --out runs/lb-s17-ctxw-e0$e --mechanisms pretrained,mosaic,llm_auction \
    --mechanism-kwargs "{\"pretrained\": {\"constrain_ads\": true}, \"mosaic\": {\"constrain_ads\": true}, \"llm_auction\": {\"adapter\": \"$RUN/epoch_0$e\", \"constrain_ads\": true}}" \
    --reuse pretrained=$X --reuse mosaic=$X > runs/lb-s17-ctxw-e0$e.log 2>&1
  tail -30 runs/lb-s17-ctxw-e0$e/table.md
  echo "== epoch $e fig4a $(date)"
  llm-auction properties monotonicity --mechanism oracle_softmax --checkpoint $RUN/epoch_0$e \
    --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s17-ctxw-e0$e > runs/fig4a-s17-ctxw-e0$e.log 2>&1
  echo "== epoch $e done $(date)"
done
