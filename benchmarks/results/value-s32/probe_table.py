"""The probe's JSON files as one markdown table: python probe_table.py > probe_table.md (this
folder's rows); other folders call ``table`` with their own (label, file prefix) rows."""
import json
from pathlib import Path

HERE = Path(__file__).parent
ROWS = [("MOSAIC (M = 4)", HERE / "mosaic"), ("shipped pCTR policy", HERE / "shipped"),
        ("stratified recipe (T = 10)", HERE / "stratified"), ("T = 2.5 arm", HERE / "T2.5")]
HEAD = ["seed", "row", "E[reward] as written", "ads", "E[rev] of the 1st ad", "of the 2nd ad", "first-ad-only - as written",
        "1st insertion: chosen", "best by pCTR", "best exact", "no ad", "softmax(pCTR / 10)", "/ 5", "/ 2.5",
        "pCTR's pick = exact pick"]


def mean(x):
    return f"{x['mean']:.2f}" if x else "-"


def table(rows) -> str:
    """One line per seed (2, 3) and row whose ``<prefix>_seed<S>.json`` exists."""
    lines = ["| " + " | ".join(HEAD) + " |", "|---" * len(HEAD) + "|"]
    for seed in (2, 3):
        for label, prefix in rows:
            f = Path(f"{prefix}_seed{seed}.json")
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
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(ROWS))
