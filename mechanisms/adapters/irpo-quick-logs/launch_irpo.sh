#!/bin/bash
# Waits for the warm-start SFT adapter, then trains LLM-Auction (pCTR) and (Oracle) in parallel.
cd /work/main
while [ ! -f /work/runs/sft-quick/adapter_model.safetensors ]; do sleep 10; done
sleep 5
COMMON="n_queries=6 k_deploy=2 m_samples=3 max_new_tokens=64 epochs=1 init_adapter=/work/runs/sft-quick constrain_ads=true max_pairs_per_query=1 learning_rate=2e-4 dpo_epochs=2 grad_accum=1 threads=1"
for R in pctr oracle; do
  HF_HUB_OFFLINE=1 PYTHONPATH=/work/main nohup /work/venv-probe/bin/python -m mechanisms.irpo --preset quick --reward $R \
    --run-dir /work/runs/irpo-quick-$R --set $COMMON --export /work/runs/export-$R > /work/runs/irpo-quick-$R.log 2>&1 &
done
wait
