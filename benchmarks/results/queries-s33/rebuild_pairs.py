"""Session 33: epoch 3's choice groups of the stratified recipe run rebuilt from its stored samples,
pCTR and pi_2 (one pass, uncapped), then capped once as the run capped them (checked against its
pairs.jsonl) and once with ``choice_answers_per_query`` set; writes the latter for the arm's run dir.

    python benchmarks/results/queries-s33/rebuild_pairs.py SRC_RUN PER_QUERY OUT_PAIRS
"""
import json
import sys
from dataclasses import replace

from llm_auction_env.config import from_dict
from llm_auction_env.jsonl import read_jsonl, write_jsonl
from mechanisms.training.irpo import IRPO, IRPOConfig, _cap_answers


def main(src: str, per_query: int, out: str) -> None:
    cfg = from_dict(IRPOConfig, json.loads(open(f"{src}/config.json").read()))
    if cfg.choice_cap == "random":  # its draw continues the pairs phase's random stream: not rebuilt here
        raise SystemExit("rebuild_pairs.py rebuilds a gap or stratified cap only")
    cfg.run_dir = src  # read-only here: phase_pairs reads epoch_03/pctr and writes nothing
    trainer = IRPO(replace(cfg, max_pairs_per_epoch=0))
    every = trainer.phase_pairs(3, read_jsonl(f"{src}/epoch_03/samples.jsonl"), trainer.policy_source(2))

    def cap(per: int) -> list[dict]:
        return _cap_answers(every, cfg.max_pairs_per_epoch, cfg.choice_cap, None, cfg.delta_th, per)

    again, stored = cap(0), read_jsonl(f"{src}/epoch_03/pairs.jsonl")
    same = json.dumps(again, sort_keys=True, default=float) == json.dumps(stored, sort_keys=True, default=float)
    print(f"rebuilt as the run: {len(again)} groups, identical to the stored pairs.jsonl: {same}")
    if not same:
        raise SystemExit("the rebuild does not reproduce the run's groups: stop")
    capped = cap(per_query)
    for name, g in (("run", stored), (f"per_query={per_query}", capped)):
        print(f"{name}: {len(g)} groups, {len({(p['i'], p['answer']) for p in g})} answers, "
              f"{len({p['i'] for p in g})} queries")
    write_jsonl(out, capped)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
