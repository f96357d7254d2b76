#!/bin/bash
# after the s17 confirmation row: the s20-full pi_3 row on the same seed-1 instances (pretrained, MOSAIC reused)
while pgrep -f "lb-s21-confirm-s17 " > /dev/null; do sleep 20; done
/work/main/runs/s21-confirm.sh runs/lb-s21-confirm-s20full pretrained,mosaic,llm_auction '{"constrain_ads": true, "adapter": "/work/main/runs/s20-full-pctr/epoch_03/policy"}' \
  --reuse pretrained=runs/lb-s21-confirm-s17 --reuse mosaic=runs/lb-s21-confirm-s17
