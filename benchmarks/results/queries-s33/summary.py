"""This folder's paired differences and session 32's probe as one markdown file:
python benchmarks/results/queries-s33/summary.py > benchmarks/results/queries-s33/summary.md"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "value-s32"))
from probe_table import ROWS as S32_ROWS, table  # noqa: E402

ARMS = [("Q: one answer per query", "s33-Q"), ("L: LoRA r 16, attention + MLP", "s33-L")]
AGAINST = [("T10", "the stratified T = 10 pi_3"), ("mosaic", "MOSAIC (M = 4)"), ("shipped", "the shipped pCTR policy")]
METRICS = ["expected_reward", "reward", "expected_revenue", "revenue", "ads"]


def cell(d: dict) -> str:
    return f"{d['diff']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"


print("# Session 33: paired differences per query (BCa, n_boot 4000, 300 test queries)\n")
print("| arm | minus | seed | " + " | ".join(METRICS) + " |")
print("|---" * (3 + len(METRICS)) + "|")
for label, tag in ARMS:
    for other, name in AGAINST:
        for seed in (2, 3):
            f = HERE / f"paired_{tag}_vs_{other}_seed{seed}.json"
            if f.exists():
                d = json.loads(f.read_text())["a_minus_b"]
                print(f"| {label} | {name} | {seed} | " + " | ".join(cell(d[m]) for m in METRICS) + " |")
print("\n# Session 32's probe on the rows (exact click probabilities; E[reward] per answer)\n")
rows = [r for r in S32_ROWS if r[1].name != "shipped"] + [(label, HERE / f"probe_{tag}") for label, tag in ARMS]
print(table(rows))
