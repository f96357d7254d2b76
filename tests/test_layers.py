"""Architecture: strict layers, and one home per concept (checked on the source tree itself)."""
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import llm_auction_env  # noqa: F401  (registers the envs)
from llm_auction_env.data import load_dataset
from llm_auction_env.data.loaders import save_ads, save_profiles, save_queries

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("mechanisms", "agents", "benchmarks")


def test_simulator_layer_imports_no_upper_layer():
    """Importing the simulator, making and stepping its envs (allocation, bidding, multi-bidder)
    pulls in no module of the mechanisms, agents or benchmarks packages."""
    code = """
import sys, gymnasium as gym, numpy as np
import llm_auction_env
from llm_auction_env import scoring, instances, presets, oracle, properties, config
from llm_auction_env.envs import multi_bidder

class Flat:
    def bid(self, ctx): return 10.0
    def update(self, ctx, result): pass

env = gym.make("LLMAuction-v0", n_ads=3)
_, info = env.reset(seed=0)
ad = info["instance"].ads[0]
env.step(f"Try @{ad.title}@[{ad.ad_id}].")
bid = gym.make("LLMAuctionBidding-v0", others=[Flat() for _ in range(4)])
bid.reset(seed=0)
bid.step(np.array([5.0]))
upper = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(",".join(upper))
""" % (set(UPPER),)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"llm_auction_env imported upper layers: {out.stdout.strip()}"


def test_no_source_file_of_the_simulator_names_an_upper_package():
    pattern = re.compile(r"^\s*(from|import)\s+(%s)\b" % "|".join(UPPER), re.M)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "llm_auction_env").rglob("*.py")
                 if pattern.search(p.read_text())]
    assert offenders == []


def _sources():
    for pkg in ("llm_auction_env", "mechanisms", "agents", "benchmarks"):
        yield from (ROOT / pkg).rglob("*.py")


def test_one_home_per_concept():
    text = {p: p.read_text() for p in _sources()}
    # Eq. 8's penalty is spelled once (reward.penalty)
    penalty = re.compile(r"alpha\s*\*[^\n]*gamma\s*\*")
    homes = [str(p.relative_to(ROOT)) for p, t in text.items()
             if any(penalty.search(line) and not line.lstrip().startswith(("#", "``", "R(", "Eq", "*"))
                    and '"' not in line and "`" not in line for line in t.splitlines())]
    assert homes == ["llm_auction_env/reward.py"]
    # parsing.placements is called by the scoring pipeline only
    callers = sorted(str(p.relative_to(ROOT)) for p, t in text.items()
                     if re.search(r"(?<!def )\bplacements\(\s*\w+,\s*\w+(\.ads)?\)", t)
                     and p.name not in ("parsing.py",))
    assert callers == ["llm_auction_env/scoring.py"]
    # one preset definition, and no hasattr probing of backends
    assert [str(p.relative_to(ROOT)) for p, t in text.items() if re.search(r"^PRESETS\b.*=", t, re.M)] \
        == ["llm_auction_env/presets.py"]
    assert not [p for p, t in text.items() if "hasattr(backend" in t]
    # no registry is read through its private table
    assert not [p for p, t in text.items() if "._factories" in t and p.name != "registry.py"]


def test_check_env_and_spec_make_on_a_jsonl_dataset(tmp_path):
    """A user's own dataset (loaded from JSONL files) survives Gymnasium's deep copy of the spec
    kwargs, pickling, ``check_env`` and ``env.spec.make()``."""
    base = load_dataset()
    users = sorted({q.user_id for q in base.split("test")[:40]})
    queries = [q for q in base.queries if q.user_id in users]
    ads = save_ads(tmp_path / "ads.jsonl", base.ads[:30])
    profiles = save_profiles(tmp_path / "profiles.jsonl", [base.profile(u) for u in users])
    qs = save_queries(tmp_path / "queries.jsonl", queries)
    data = load_dataset(ads, profiles, qs)
    assert pickle.loads(pickle.dumps(data)).queries == data.queries

    env = gym.make("LLMAuction-v0", dataset=data, n_ads=4)
    check_env(env.unwrapped, skip_render_check=True)
    again = env.spec.make()
    obs, info = again.reset(seed=1)
    assert info["instance"].ads[0].ad_id in {a.ad_id for a in data.ads}
    assert len(obs["ad_ids"]) == 4
    ids = {a.ad_id for a in data.ads}
    assert all(i in ids for i in obs["ad_ids"])
    json.dumps(np.asarray(obs["bids"]).tolist())
