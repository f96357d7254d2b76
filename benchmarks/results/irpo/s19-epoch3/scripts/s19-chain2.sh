#!/bin/bash
# s19: after the Oracle NT run, epoch 3 again on pi_2's samples with choice_neutral_ties + choice_later (new pairs), then pCTR NT
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
while pgrep -f "run-dir /work/main/runs/s19-oracle-nt " >/dev/null || pgrep -f "s19-oracle-nt --resume" > /dev/null; do sleep 20; done
echo "== oracle-nt finished $(date)"
run() { cd $1; echo "== train $2 $(date)"; python -m llm_auction_env.cli train --preset quick --run-dir /work/main/runs/$2 --resume --set epochs=3 $3 > /work/main/runs/$2-train.log 2>&1 || echo "train $2 failed $(date)"; echo "== done $2 $(date)"; }
run /work/wt19b s19-oracle-ntl "choice_neutral_ties=true choice_later=true"
run /work/wt19b s19-pctr-ntl "choice_neutral_ties=true choice_later=true"
run /work/wt19 s19-pctr-nt "choice_neutral_ties=true"
