#!/bin/bash
# Session 22 reserve replays (benchmarks/results/reserve-s22/PREREGISTRATION.md): stored responses of
# earlier leaderboard rows through mechanisms/reserve.py, no LLM call (~20 s per replay here).
# Usage: reserve-s22.sh [main] [ablations] [more]   (default: all three)
set -e
R=benchmarks/results
P17=$R/irpo/irpo-pctr-ctxw/epoch_03/pctr
P20=$R/irpo/s20-full-pctr/epoch_03/pctr
OUT=${OUT:-$R/reserve-s22}
S1=$R/leaderboard-quick-300-seed1-s21-confirm-s17
probe() { python -m benchmarks.reserve_probe --against mosaic,pretrained "$@"; }
sections=${*:-main ablations more}
for section in $sections; do case $section in
main)  # the pre-registered replays: held-out seed 1 (300 queries), then the seed-0 development set
  for tau in 0 1; do
    probe --leaderboard $S1 --row llm_auction --ctr pctr:$P17 --tau $tau --out $OUT/seed1-s17-pctr-tau$tau
    probe --leaderboard $R/leaderboard-quick-300-seed1-s21-confirm-s20full --row llm_auction --ctr pctr:$P20 --tau $tau --out $OUT/seed1-s20-pctr-tau$tau
    probe --leaderboard $R/leaderboard-quick-300-seed1-s22-confirm-oracle --row llm_auction_oracle --ctr click_model --tau $tau --out $OUT/seed1-s20-oracle-tau$tau
    probe --leaderboard $R/leaderboard-quick-100-s19-pctr-s18-max2 --row llm_auction --ctr pctr:$P17 --tau $tau --out $OUT/seed0-s17-pctr-tau$tau
    probe --leaderboard $R/leaderboard-quick-100-s20-full-pctr-e03 --row llm_auction --ctr pctr:$P20 --tau $tau --out $OUT/seed0-s20-pctr-tau$tau
    probe --leaderboard $R/leaderboard-quick-100-s20-full-oracle-e03 --row llm_auction_oracle --ctr click_model --tau $tau --out $OUT/seed0-s20-oracle-tau$tau
  done ;;
ablations)  # the reserve on the untrained warm start and on MOSAIC's pick
  for spec in "seed1 $S1" "seed0 $R/leaderboard-quick-100-s15-constrained"; do
    set -- $spec
    probe --leaderboard $2 --row pretrained --ctr pctr:$P17 --tau 0 --out $OUT/$1-pretrained-pctr17-tau0
    probe --leaderboard $2 --row pretrained --ctr click_model --tau 0 --out $OUT/$1-pretrained-oracle-tau0
    probe --leaderboard $2 --row mosaic --ctr click_model --tau 0 --out $OUT/$1-mosaic-oracle-tau0
  done ;;
more)  # exact probabilities as the pCTR policies' reserve (the pCTR or the policy?), and the uncapped
       # session-17 recipe (pCTR and Oracle pi_3 of results/leaderboard-quick-100-s18-final)
  probe --leaderboard $S1 --row llm_auction --ctr click_model --tau 0 --out $OUT/seed1-s17-exact-tau0
  probe --leaderboard $R/leaderboard-quick-300-seed1-s21-confirm-s20full --row llm_auction --ctr click_model --tau 0 --out $OUT/seed1-s20-exact-tau0
  probe --leaderboard $R/leaderboard-quick-100-s18-final --row llm_auction --ctr pctr:$P17 --tau 0 --out $OUT/seed0-s17-uncapped-pctr-tau0
  probe --leaderboard $R/leaderboard-quick-100-s18-final --row llm_auction_oracle --ctr click_model --tau 0 --out $OUT/seed0-s18-oracle-uncapped-tau0 ;;
*) echo "unknown section $section" >&2; exit 2 ;;
esac; done
