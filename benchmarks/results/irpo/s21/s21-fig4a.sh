#!/bin/bash
# s21: Fig. 4a of the s20 shipping-form pCTR policy pi_3 (as s17's: 40 test instances, 1 sample per bid)
cd /work/main; source .venv/bin/activate; export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
llm-auction properties monotonicity --mechanism oracle_softmax --checkpoint runs/s20-full-pctr/epoch_03 \
  --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s20-full-pctr-e03 > runs/fig4a-s20-full-pctr-e03.log 2>&1
tail -5 runs/fig4a-s20-full-pctr-e03.log
