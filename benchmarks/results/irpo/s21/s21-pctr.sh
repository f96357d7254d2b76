#!/bin/bash
# s21: finish the s20 shipping-form pCTR run (epoch 3), then make its row
source /work/main/.venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
cd /work/wt20
RECIPE="choice_none=true choice_second=true choice_repeats=true choice_whether=true pctr.ad_text=true pctr.ad_load=true pctr.context_text=true pctr.early_stopping=true constrain_ads=true max_ads=2 choice_cap=random"
echo "== train pctr $(date)"
python -m llm_auction_env.cli train --preset quick --run-dir /work/main/runs/s20-full-pctr --resume --set reward=pctr $RECIPE > /work/main/runs/s21-pctr-train.log 2>&1 || echo "train failed $(date)"
echo "== eval $(date)"
/work/main/runs/s19-eval.sh /work/main/runs/s20-full-pctr/epoch_03/policy llm_auction /work/main/runs/lb-s20-full-pctr-e03
echo "== done $(date)"
