#!/bin/bash
# Session 22, after the tables: reserve replays again (BCa CIs), Fig. 4a / 4b and VM bidders on the
# shipped policies and their reserve. Run from the worktree with PYTHONPATH set to it.
set -x
OUT=benchmarks/results/reserve-s22 bash benchmarks/results/reserve-s22/reserve-s22.sh main ablations more > runs/reserve-bca.log 2>&1
llm-auction properties monotonicity --mechanism llm_auction --mechanism llm_auction_reserve --mechanism llm_auction_oracle_reserve \
  --n-instances 40 --samples 1 --batch-size 16 --out runs/fig4a-s22 > runs/fig4a-s22.log 2>&1
llm-auction properties continuity --mechanism oracle_softmax --mechanism llm_auction_reserve --samples 50 --bid-step 5 \
  --batch-size 16 --out runs/fig4b-s22 > runs/fig4b-s22.log 2>&1
llm-auction equilibrium --game oracle --mechanism llm_auction_reserve \
  --n-bidders 3 --n-instances 4 --grid-points 6 --grid-samples 8 --objective vm --roi-target 1.25 --bidder hedge --rounds 20000 \
  --out runs/eq-vm-s22-reserve > runs/eq-vm-s22-reserve.log 2>&1
echo "done $(date)"
