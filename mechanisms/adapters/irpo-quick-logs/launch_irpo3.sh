#!/bin/bash
# LLM-Auction (pCTR) and (Oracle) from the base model with constrained markup + ad_open_bias=5, in parallel.
cd /work/main
COMMON="n_queries=24 k_deploy=2 m_samples=4 max_new_tokens=64 epochs=2 constrain_ads=true ad_open_bias=5 max_pairs_per_query=2 learning_rate=2e-4 dpo_epochs=2 per_device_batch=2 grad_accum=2 threads=1"
for R in pctr oracle; do
  HF_HUB_OFFLINE=1 PYTHONPATH=/work/main nohup /work/venv-probe/bin/python -m mechanisms.irpo --preset quick --reward $R \
    --run-dir /work/runs/irpo3-$R --set $COMMON > /work/runs/irpo3-$R.log 2>&1 &
  echo $! > /work/runs/irpo3-$R.pid
done
