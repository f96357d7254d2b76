"""runs/irpo-oracle-load: the load recipe with reward=oracle, epoch 1 on the pCTR load run's own pi_0 samples
(same texts and bids), rescored with the exact click probabilities: the reward-model ablation."""
import json
from pathlib import Path
from llm_auction_env.config import from_dict
from llm_auction_env.jsonl import read_jsonl, write_jsonl
from mechanisms.training.irpo import IRPOConfig, _click_model, score_responses, training_instances

src = Path("benchmarks/results/irpo/irpo-pctr-load")
dst = Path("runs/irpo-oracle-load")
saved = json.loads((src / "config.json").read_text())
saved.update(reward="oracle", run_dir=str(dst), epochs=1)
cfg = from_dict(IRPOConfig, saved)
insts = training_instances(cfg)
cm = _click_model(cfg.click_model)
rows = read_jsonl(src / "epoch_01/samples.jsonl")
pairs = [(insts[r["i"]].with_bids(r["bids"]), r["response"]) for r in rows]
ctrs = cm.click_probs(pairs)
scored = score_responses(pairs, ctrs, cfg.reward_config)
out = [{"i": r["i"], "bids": r["bids"], "response": r["response"], "ctr": c, **s, "true_reward": s["reward"]}
       for r, c, s in zip(rows, ctrs, scored)]
(dst / "epoch_01").mkdir(parents=True, exist_ok=True)
from dataclasses import asdict
(dst / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
write_jsonl(dst / "epoch_01/samples.jsonl", out)
print(len(out), sum(o["reward"] for o in out) / len(out))
