"""Session 33: epoch 3's choice groups of the stratified recipe run rebuilt from its stored samples,
pCTR and pi_2, once as the run built them (checked against its pairs.jsonl) and once with
``choice_answers_per_query`` set; writes the latter for the arm's run dir.

    python benchmarks/results/queries-s33/rebuild_pairs.py SRC_RUN PER_QUERY OUT_PAIRS
"""
import json
import sys
from dataclasses import replace

from llm_auction_env.config import from_dict
from llm_auction_env.jsonl import read_jsonl, write_jsonl
from mechanisms.training.irpo import IRPO, IRPOConfig


def main(src: str, per_query: int, out: str) -> None:
    cfg = from_dict(IRPOConfig, json.loads(open(f"{src}/config.json").read()))
    cfg.run_dir = src  # read-only here: phase_pairs reads epoch_03/pctr and writes nothing
    trainer = IRPO(cfg)
    samples = read_jsonl(f"{src}/epoch_03/samples.jsonl")
    source = trainer.policy_source(2)
    again = trainer.phase_pairs(3, samples, source)
    stored = read_jsonl(f"{src}/epoch_03/pairs.jsonl")
    same = json.dumps(again, sort_keys=True, default=float) == json.dumps(stored, sort_keys=True, default=float)
    print(f"rebuilt as the run: {len(again)} groups, identical to the stored pairs.jsonl: {same}")
    if not same:
        raise SystemExit("the rebuild does not reproduce the run's groups: stop")
    trainer.cfg = replace(cfg, choice_answers_per_query=per_query)
    capped = trainer.phase_pairs(3, samples, source)
    for name, g in (("run", stored), (f"per_query={per_query}", capped)):
        print(f"{name}: {len(g)} groups, {len({(p['i'], p['answer']) for p in g})} answers, "
              f"{len({p['i'] for p in g})} queries")
    write_jsonl(out, capped)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
