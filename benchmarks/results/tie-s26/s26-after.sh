#!/bin/bash
# Session 26, after s26.sh: which ad the policy shows at 55/60/65 on Fig. 4b's instance, and the
# candidates' click probabilities (the export's pCTR and the exact click model).
cd /work/main && source .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
while ! grep -q "^DONE" runs/s26.log; do sleep 20; done
python benchmarks/results/tie-s26/tie60_probe.py runs/export-tie-s26 40 > runs/tie60_s26.json
python benchmarks/results/tie-s26/tie60_probe.py runs/export-contrast-s25 40 > runs/tie60_s25.json
echo AFTERDONE  # (rerun by hand at 18:35 after cutting the answers to their first ad: the first try read no clicks from two-ad answers)
