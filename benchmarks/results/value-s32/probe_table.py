"""The probe's JSON files of this folder as one markdown table: python probe_table.py > probe_table.md"""
import json
from pathlib import Path

HERE = Path(__file__).parent
ROWS = [("MOSAIC (M = 4)", "mosaic"), ("shipped pCTR policy", "shipped"), ("stratified recipe (T = 10)", "stratified"),
        ("T = 2.5 arm", "T2.5")]
HEAD = ["seed", "row", "E[reward] as written", "ads", "E[rev] of the 1st ad", "of the 2nd ad", "first-ad-only - as written",
        "1st insertion: chosen", "best by pCTR", "best exact", "no ad", "softmax(pCTR / 10)", "/ 5", "/ 2.5",
        "pCTR's pick = exact pick"]


def mean(x):
    return f"{x['mean']:.2f}" if x else "-"


print("| " + " | ".join(HEAD) + " |")
print("|---" * len(HEAD) + "|")
for seed in (2, 3):
    for label, name in ROWS:
        f = HERE / f"{name}_seed{seed}.json"
        if not f.exists():
            continue
        d = json.loads(f.read_text())
        w, e, pos = d["which"], d["which"]["E_reward"], d["by_position"]
        fo = d["first_ad_only"]["minus_as_written"]
        same = w.get("pctr_pick_is_exact_pick")
        cells = [seed, label, mean(d["as_written"]["E_reward"]), f"{d['as_written']['ads']:.2f}", mean(pos.get("1")),
                 mean(pos.get("2")), f"{fo['mean']:+.2f} [{fo['ci'][0]:+.2f}, {fo['ci'][1]:+.2f}]", mean(e["chosen"]),
                 mean(e.get("best_pctr")), mean(e["best_exact"]), mean(e["no_ad"]), mean(e.get("softmax_pctr_T10")),
                 mean(e.get("softmax_pctr_T5")), mean(e.get("softmax_pctr_T2.5")), "-" if same is None else f"{same:.2f}"]
        print("| " + " | ".join(map(str, cells)) + " |")
