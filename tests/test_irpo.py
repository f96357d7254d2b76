"""IRPO on a tiny random Llama: pair rule, a full epoch end to end, exact resume after a crash,
exact adapter concatenation."""
from __future__ import annotations

import collections
import copy
import hashlib
import json
import re

import numpy as np
import pytest
import torch

from llm_auction_env import parsing
from llm_auction_env.types import Ad, AuctionInstance, ClickFeedback, UserProfile
from llm_auction_env.config import override, to_dict
from mechanisms.training.irpo import IRPO, Components, IRPOConfig, concat_adapters, preference_pairs
from mechanisms.training.pctr import PCTRConfig, saved_config


@pytest.mark.parametrize(
    "rewards, delta, max_pairs, expected",
    [
        ([5.0, 20.0, 9.0, 10.0], 10.0, 0, [(1, 0), (1, 2)]),  # 20-10 = 10 is not > 10
        ([5.0, 20.0, 9.0, 10.0], 10.0, 1, [(1, 0)]),  # largest gap first
        ([0.0, 0.0, 0.0], 10.0, 0, []),  # no gap, no pair
        ([-50.0, 0.0, -60.0, 0.0], 10.0, 0, [(1, 2), (1, 0)]),  # first argmax wins ties
        ([3.0, 1.0], -1.0, 0, [(0, 1)]),  # the winner is never its own loser
        ([7.0], 0.0, 0, []),
    ],
)
def test_preference_pairs_obey_delta_th(rewards, delta, max_pairs, expected):
    assert preference_pairs(rewards, delta, max_pairs) == expected
    for w, l in preference_pairs(rewards, delta, max_pairs):
        assert rewards[w] - rewards[l] > delta and w != l


class BagEncoder:
    def encode(self, texts, batch_size=64, convert_to_numpy=True):
        out = np.zeros((len(texts), 32), np.float32)
        for k, t in enumerate(texts):
            for w in t.split():
                out[k, int(hashlib.md5(w.encode()).hexdigest(), 16) % 32] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


class ToyClicks:
    """Click probability 0.4 for every valid placement (bid-blind, like the real models)."""

    name, has_probs = "toy", True

    def click_probs(self, batch):
        return [{i: 0.4 for i in parsing.valid_ids(parsing.placements(y, inst.ads))} for inst, y in batch]

    def sample_clicks(self, batch, rng):
        return [[ClickFeedback(a, bool(rng.random() < p), prob=p) for a, p in probs.items()]
                for probs in self.click_probs(batch)]


ADS = tuple(Ad(f"Ad-{10 + i}", f"Thing {i}", "misc") for i in range(3))


def components(tiny_llama):
    model, tok = tiny_llama
    insts = [AuctionInstance(f"question number {i}?", UserProfile(f"u{i}", "x"), ADS, np.ones(3)) for i in range(3)]
    # Responses that already carry a valid ad, so the toy click model and pCTR see clicks.
    chat = lambda inst: [{"role": "user", "content": inst.query + " Ads: " + " ".join(map(parsing.render, inst.ads))}]  # noqa: E731
    return Components(insts, ToyClicks(), chat, lambda: (copy.deepcopy(model), tok), pctr_encoder=BagEncoder())


def config(run_dir, **kw) -> IRPOConfig:
    base = dict(run_dir=str(run_dir), epochs=1, n_queries=3, k_deploy=2, m_samples=3, max_new_tokens=10,
                delta_th=-1.0, max_pairs_per_query=1, per_device_batch=2, grad_accum=1, max_length=128,
                learning_rate=1e-3, lora_r=4, lora_alpha=8, gen_batch_size=8, constrain_ads=True, ad_open_bias=2.0,
                pctr=PCTRConfig(steps=5, encoder="unused"), seed=3)
    base.update(kw)
    return override(IRPOConfig(), base)


@pytest.fixture(scope="module")
def uninterrupted(tiny_llama, tmp_path_factory):
    run = tmp_path_factory.mktemp("irpo") / "full"
    history = IRPO(config(run), components(tiny_llama)).train()
    return run, history


def test_one_epoch_end_to_end(uninterrupted):
    run, history = uninterrupted
    (m,) = history
    ep = run / "epoch_01"
    for name in ("deploy.jsonl", "pctr/vocab.json", "samples.jsonl", "pairs.jsonl", "adapter/adapter_config.json",
                 "policy/adapter_model.safetensors", "metrics.json"):
        assert (ep / name).exists(), name
    assert (run / "curves.png").stat().st_size > 0
    assert json.loads((run / "metrics.json").read_text())[0]["epoch"] == 1
    assert re.fullmatch(r"[0-9a-f]{40}", m["git_commit"])  # the commit the run started at (tests run in a checkout)
    assert isinstance(m["git_dirty"], bool)
    assert m["pairs_kept"] >= 1 and m["dpo_steps"] >= 1 and np.isfinite(m["dpo_loss"])
    assert m["n_samples"] == 9
    pairs = [json.loads(x) for x in (ep / "pairs.jsonl").read_text().splitlines()]
    assert all(p["r_w"] - p["r_l"] > -1.0 and p["chosen"] != p["rejected"] for p in pairs)
    assert m["policy_out"] == str(ep / "policy")


def test_resume_after_crash_matches_uninterrupted(uninterrupted, tiny_llama, tmp_path):
    from safetensors.torch import load_file

    run_full, _ = uninterrupted
    run = tmp_path / "crashed"

    def crash(epoch, phase):
        if phase == "pctr":  # end of phase 1 (reward-model update)
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        IRPO(config(run), components(tiny_llama), hook=crash).train()
    assert (run / "epoch_01" / "pctr_metrics.json").exists() and not (run / "epoch_01" / "samples.jsonl").exists()
    deploy_before = (run / "epoch_01" / "deploy.jsonl").read_bytes()
    IRPO(config(run), components(tiny_llama)).train()
    a, b = run_full / "epoch_01", run / "epoch_01"
    assert (b / "deploy.jsonl").read_bytes() == deploy_before  # not recomputed
    for name in ("deploy.jsonl", "samples.jsonl", "pairs.jsonl"):
        assert (a / name).read_text() == (b / name).read_text(), name
    assert (a / "pctr" / "vocab.json").read_text() == (b / "pctr" / "vocab.json").read_text()
    if (a / "pctr" / "model.pt").exists():  # only if the random policy exposed an ad to click on
        pa, pb = torch.load(a / "pctr" / "model.pt"), torch.load(b / "pctr" / "model.pt")
        for k in pa:
            torch.testing.assert_close(pa[k], pb[k])
    wa, wb = load_file(a / "policy" / "adapter_model.safetensors"), load_file(b / "policy" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("second_targets", [["q_proj", "v_proj"], ["q_proj", "up_proj", "down_proj"]])
def test_concat_adapters_is_exact(tiny_llama, tmp_path, second_targets):
    """The concatenation equals merging the adapters one after the other, also when the second
    adapter targets other modules (a larger adapter in a later epoch: zero blocks where one is absent)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    model, tok = tiny_llama
    dirs = []
    for k, targets in enumerate([["q_proj", "v_proj"], second_targets]):
        torch.manual_seed(k)
        peft = get_peft_model(copy.deepcopy(model), LoraConfig(r=2 + k, lora_alpha=4, target_modules=targets,
                                                               init_lora_weights=False))
        peft.save_pretrained(tmp_path / f"a{k}")
        dirs.append(str(tmp_path / f"a{k}"))
    concat_adapters(dirs, tmp_path / "both")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    sequential = copy.deepcopy(model)
    for d in dirs:
        sequential = PeftModel.from_pretrained(sequential, d).merge_and_unload()
    combined = PeftModel.from_pretrained(copy.deepcopy(model), str(tmp_path / "both")).merge_and_unload()
    with torch.no_grad():
        torch.testing.assert_close(combined(ids).logits, sequential(ids).logits, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(combined(ids).logits, model(ids).logits)


def test_llm_auction_mechanism_serves_trained_adapter(uninterrupted, tiny_llama, tmp_path):
    import shutil

    from llm_auction_env.llm.transformers_backend import TransformersBackend
    from mechanisms.base import make_mechanism

    run, _ = uninterrupted
    export = tmp_path / "export"  # the layout `llm-auction train --export` writes
    shutil.copytree(run / "epoch_01" / "policy", export / "policy")
    trained = json.loads((run / "config.json").read_text())
    (export / "config.json").write_text(json.dumps({**trained, "ad_open_after": "sentence", "max_ads": 1}))
    model, tok = tiny_llama
    backend = TransformersBackend.from_model(copy.deepcopy(model), tok, batch_size=4)
    from llm_auction_env.llm.base import Sampling

    mech = make_mechanism("llm_auction", backend=backend, adapter=str(export), sampling=Sampling(max_new_tokens=6))
    assert mech.config.constrain_ads is True and mech.config.prompt_style == "compact"  # as trained
    assert mech.config.ad_open_bias == 2.0  # the sampling aid is served as trained
    assert mech.config.ad_open_after == "sentence" and mech.config.max_ads == 1
    from peft import PeftModel

    assert isinstance(backend.model, PeftModel)  # the shared backend now serves the adapter
    inst = AuctionInstance("q?", UserProfile("u", "x"), ADS, np.array([3.0, 2.0, 1.0]))
    (alloc,) = mech.allocate([inst], np.random.default_rng(0))
    assert isinstance(alloc.response, str) and alloc.cost.llm_calls == 1
    with pytest.raises(FileNotFoundError, match="llm-auction train"):
        make_mechanism("llm_auction_oracle", backend=backend, adapter=str(tmp_path / "missing"))


def test_llm_auction_reserve_serves_the_policy_response_through_its_own_pctr(uninterrupted, tmp_path):
    """``llm_auction_reserve``: the policy's response, then mechanisms/reserve.py on the pCTR saved
    beside the policy (the run's epoch folder); ``llm_auction`` serves the same text untouched."""
    import shutil

    from llm_auction_env.llm.base import Completion
    from mechanisms.base import make_mechanism
    from mechanisms.reserve import apply_reserve
    from mechanisms.training.pctr import PCTRModel

    class Fixed:  # a TextBackend that always writes the same two-ad answer
        def generate(self, chats, n=1, sampling=None, **kwargs):
            return [[Completion(text, 10, 5)] for _ in chats]

    run, _ = uninterrupted
    text = f"Here is a plan. Try {parsing.render(ADS[0])} today. Or {parsing.render(ADS[1])} instead. Good luck."
    insts = [AuctionInstance("q?", UserProfile("u", "x"), ADS, np.array(b, float)) for b in ([5e3, 0.0, 1.0], [0.0, 0.0, 0.0])]
    plain = make_mechanism("llm_auction", backend=Fixed(), adapter=str(run / "epoch_01"))
    assert [a.response for a in plain.allocate(insts, np.random.default_rng(0))] == [text, text]
    mech = make_mechanism("llm_auction_reserve", backend=Fixed(), adapter=str(run / "epoch_01"))
    assert mech.reserve_label == f"pctr:{run / 'epoch_01' / 'pctr'}" and mech.config.reserve == "pctr"
    allocs = mech.allocate(insts, np.random.default_rng(0))
    predict = PCTRModel.load(run / "epoch_01" / "pctr").predict
    assert [(a.response, a.extra["reserve_dropped"]) for a in allocs] == apply_reserve([(i, text) for i in insts], predict)
    assert allocs[1].response == "Here is a plan. Good luck."  # no bid pays for its place: both sentences go
    assert allocs[0].response == f"Here is a plan. Try {parsing.render(ADS[0])} today. Good luck."  # a zero bid never pays
    assert all(a.cost.llm_calls == 1 for a in allocs)
    bare = tmp_path / "bare"
    shutil.copytree(run / "epoch_01" / "policy", bare)
    with pytest.raises(FileNotFoundError, match="pctr"):
        make_mechanism("llm_auction_reserve", backend=Fixed(), adapter=str(bare))
    with pytest.raises(ValueError, match="reserve must be"):
        make_mechanism("llm_auction", backend=Fixed(), adapter=str(bare), reserve="nowhere")
    with pytest.raises(ValueError, match="reserve_tau"):
        make_mechanism("llm_auction_oracle_reserve", backend=Fixed(), adapter=str(bare), reserve_tau=-1.0)
    oracle = make_mechanism("llm_auction_oracle_reserve", backend=Fixed(), adapter=str(bare))
    assert oracle.reserve_label.startswith("oracle:")


def test_export_carries_the_pctr_and_serving_json_overrides_the_training_config(uninterrupted, tmp_path):
    from mechanisms.llm_auction import resolve_policy
    from mechanisms.training.irpo import export

    run, history = uninterrupted
    export(run, history, tmp_path / "export")
    assert (tmp_path / "export" / "pctr" / "vocab.json").is_file()
    assert (tmp_path / "export" / "policy" / "adapter_model.safetensors").is_file()
    trained = json.loads((run / "config.json").read_text())
    assert resolve_policy(tmp_path / "export")[1] == trained
    (tmp_path / "export" / "serving.json").write_text(json.dumps({"constrain_ads": True, "max_ads": 2}))
    served = resolve_policy(tmp_path / "export")[1]
    assert served == {**trained, "constrain_ads": True, "max_ads": 2} and trained.get("max_ads") != 2
    (tmp_path / "export" / "serving.json").write_text(json.dumps({"learning_rate": 1.0}))
    with pytest.raises(ValueError, match="may set only"):
        resolve_policy(tmp_path / "export")
    (tmp_path / "export" / "serving.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        resolve_policy(tmp_path / "export")


def test_a_trained_policy_keeps_the_prompt_it_was_trained_on(uninterrupted, tmp_path):
    """An IRPO run's epoch folder carries the run's config (prompt style, aid), and the leaderboard
    and property sweeps serve a trained policy with its own prompt, not the table's."""
    import shutil
    from types import SimpleNamespace

    from benchmarks.leaderboard import LeaderboardConfig, mechanism_kwargs
    from mechanisms.llm_auction import resolve_policy

    run, _ = uninterrupted
    trained = json.loads((run / "config.json").read_text())
    for path in (run / "epoch_01", run / "epoch_01" / "policy"):
        adapter, cfg = resolve_policy(path)
        assert adapter == run / "epoch_01" / "policy" and cfg == trained
    bare = tmp_path / "bare"  # a bare adapter folder: no config, the defaults
    shutil.copytree(run / "epoch_01" / "policy", bare)
    assert resolve_policy(bare) == (bare, {})
    lb = LeaderboardConfig(prompt_style="paper", mechanism_kwargs={"llm_auction_oracle": {"prompt_style": "compact_bid_first"}})
    clicks = SimpleNamespace(click_probs=None)
    assert "prompt_style" not in mechanism_kwargs("llm_auction", lb, None, clicks)
    assert mechanism_kwargs("llm_auction_oracle", lb, None, clicks)["prompt_style"] == "compact_bid_first"
    assert mechanism_kwargs("pretrained", lb, None, clicks)["prompt_style"] == "paper"


def test_choice_whether_needs_choice_groups_with_a_none_option(tmp_path):
    with pytest.raises(ValueError, match="choice_whether"):
        config(tmp_path, pair_kind="choice", choice_none=False, choice_whether=True)
    with pytest.raises(ValueError, match="choice_whether"):
        config(tmp_path, pair_kind="swap", choice_none=True, choice_whether=True)
    assert config(tmp_path, pair_kind="choice", choice_none=True, choice_whether=True).choice_whether


def test_ad_open_bias_needs_constrained_markup(tmp_path):
    with pytest.raises(ValueError, match="constrain_ads"):
        config(tmp_path, constrain_ads=False, ad_open_bias=6.0)
    with pytest.raises(ValueError, match="constrain_ads"):
        config(tmp_path, constrain_ads=False, ad_open_bias=0.0, max_ads=1)
    with pytest.raises(ValueError, match="open_after"):
        config(tmp_path, ad_open_after="paragraph")
    assert config(tmp_path, ad_open_after="sentence", max_ads=1).markup_aid.max_ads == 1


def test_historical_click_log_joins_the_first_pctr_fit(tiny_llama, tmp_path):
    """psi_0 and replay: every pCTR update fits the template click log and all deploy logs so far."""
    comps = components(tiny_llama)
    comps.historical_instances = lambda n: comps.instances[:n]
    irpo = IRPO(config(tmp_path / "h", historical_queries=2), comps)
    rows = [{"i": k % 3, "bids": [1.0, 1.0, 1.0], "response": f"Sure. {parsing.render(ADS[k % 3])} helps.",
             "clicks": {ADS[k % 3].ad_id: k % 2}} for k in range(6)]  # a deploy log with valid ads
    _, metrics = irpo.phase_pctr(1, rows)
    assert metrics["n_historical"] == 2 * 3 * len(ADS)  # every ad inside / first / appended
    assert metrics["n_train"] + metrics["n_val"] + metrics["n_heldout"] >= metrics["n_historical"]
    (irpo.epoch_dir(1)).mkdir(parents=True, exist_ok=True)
    (irpo.epoch_dir(1) / "deploy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, later = irpo.phase_pctr(2, rows)  # replays D_1 and the historical log; scores psi_1 on D_2 first
    assert later["n_historical"] == metrics["n_historical"] and later["n_new"] == metrics["n_new"] > 0
    size = lambda m: m["n_train"] + m["n_val"] + m["n_heldout"]  # noqa: E731
    assert size(later) == size(metrics) + later["n_new"]
    assert "prequential_auc" in later
    comps.historical_instances = None
    with pytest.raises(ValueError, match="historical_instances"):
        IRPO(config(tmp_path / "h2", historical_queries=2), comps).phase_pctr(1, rows)


def test_a_fixed_pctr_scores_every_epoch_without_deploy_or_refit(uninterrupted, tiny_llama, tmp_path):
    """``pctr_path``: the saved pCTR prices the samples (no deploy log, no refit) and the export
    carries that pCTR; it is a pCTR option, and a folder without a saved pCTR is refused."""
    from mechanisms.training.irpo import export
    from mechanisms.training.pctr import PCTRModel

    fixed = uninterrupted[0] / "epoch_01" / "pctr"
    comps = components(tiny_llama)
    run = tmp_path / "fixed"
    (m,) = IRPO(config(run, pctr_path=str(fixed)), comps).train()
    ep = run / "epoch_01"
    assert not (ep / "deploy.jsonl").exists() and not (ep / "pctr").exists()
    assert m["reward_model"] == str(fixed) and "pctr_auc" not in m and m["dpo_steps"] >= 1
    rows = [json.loads(x) for x in (ep / "samples.jsonl").read_text().splitlines()]
    predicted = PCTRModel.load(fixed, BagEncoder()).predict(
        [(comps.instances[r["i"]].with_bids(r["bids"]), r["response"]) for r in rows])
    assert [r["ctr"] for r in rows] == [pytest.approx(p) for p in predicted]
    export(run, [m], tmp_path / "export")
    assert (tmp_path / "export" / "pctr" / "vocab.json").read_text() == (fixed / "vocab.json").read_text()
    with pytest.raises(ValueError, match="reward='pctr'"):
        config(tmp_path / "o", reward="oracle", pctr_path=str(fixed))
    with pytest.raises(FileNotFoundError, match="no saved pCTR"):
        IRPO(config(tmp_path / "missing", pctr_path=str(tmp_path)), comps).train()


def test_sampling_goes_through_the_engine_one_server_per_policy(tiny_llama, tmp_path):
    """With ``Components.engine`` the samples phase samples through it (base + the policy's LoRA),
    one engine per policy, each stopped when the policy changes and the last when training ends."""
    made, closed, calls = [], [], []
    comps = components(tiny_llama)
    irpo = IRPO(config(tmp_path / "run", epochs=2, reward="oracle"), comps)

    class FakeEngine:  # serves the adapter through the tiny model's transformers backend
        def __init__(self, adapter):
            self.adapter = adapter
            made.append(adapter)

        def generate(self, *args, **kwargs):
            calls.append(self.adapter)
            return irpo.backend(self.adapter).generate(*args, **kwargs)

        def close(self):
            closed.append(self.adapter)

    comps.engine = FakeEngine
    irpo.train()
    policy_1 = str(tmp_path / "run" / "epoch_01" / "policy")
    assert made == [None, policy_1] and calls == [None, policy_1]
    assert closed == made  # epoch 1's engine stopped before epoch 2's started; the last at the end


def moved_bids(bids, base) -> list[int]:
    """The candidates whose bid in ``bids`` differs from ``base``."""
    return [j for j, (b, b0) in enumerate(zip(bids, base)) if b != b0]


SWAP_ADS = (Ad("Ad-11", "Trail Shoes", "shoes"), Ad("Ad-12", "Water Bottle", "bottles"), Ad("Ad-13", "Desk Lamp", "lamps"))
SWAP_INST = AuctionInstance("How do I start trail running?", UserProfile("u", "runner"), SWAP_ADS, np.array([10.0, 80.0, 40.0]))


def test_ad_variants_differ_only_in_the_inserted_ad():
    from mechanisms.training.irpo import ad_variants

    text = f"Start slowly on flat trails. For grip, try {parsing.render(SWAP_ADS[0])} on wet days. Rest often."
    variants = ad_variants(SWAP_INST, text)
    assert variants[0] == ("Ad-11", text) and [a for a, _ in variants] == ["Ad-11", "Ad-12", "Ad-13", None]
    for ad_id, v in variants[1:3]:
        ad = next(a for a in SWAP_ADS if a.ad_id == ad_id)
        assert v.replace(parsing.render(ad), "X") == text.replace(parsing.render(SWAP_ADS[0]), "X")
        assert parsing.valid_ids(parsing.placements(v, SWAP_ADS)) == [ad_id]
    assert variants[3][1] == "Start slowly on flat trails. Rest often."  # the ad's sentence removed
    # no variants for answers without exactly one clean insertion
    two = f"Try {parsing.render(SWAP_ADS[0])}. Or {parsing.render(SWAP_ADS[1])}."
    assert ad_variants(SWAP_INST, "No ads here.") == [] and ad_variants(SWAP_INST, two) == []
    assert ad_variants(SWAP_INST, f"Try {parsing.render(SWAP_ADS[0])}. Bad @X@[Ad-99].") == []
    # an answer that is only the ad's sentence has no no-ad variant
    assert [a for a, _ in ad_variants(SWAP_INST, f"Try {parsing.render(SWAP_ADS[1])}.")] == ["Ad-12", "Ad-11", "Ad-13"]


def test_swap_pairs_prefer_the_highest_expected_revenue():
    from llm_auction_env.reward import RewardConfig
    from mechanisms.training.irpo import swap_pairs

    text = f"Start slowly on flat trails. For grip, try {parsing.render(SWAP_ADS[0])} on wet days. Rest often."

    def ctr(batch):  # same click probability for every ad: bid x 0.5 decides
        return [{i: 0.5 for i in parsing.valid_ids(parsing.placements(y, inst.ads))} for inst, y in batch]

    pairs = swap_pairs(SWAP_INST, [text], ctr, RewardConfig(), delta_th=1.0)
    assert pairs and all(p["ad_w"] == "Ad-12" for p in pairs)  # bid 80: 40 - 10 = 30 expected reward
    assert [p["ad_l"] for p in pairs] == ["Ad-11", None, "Ad-13"]  # 5-10, 0, 20-10: largest gap first
    assert pairs[0]["r_w"] == pytest.approx(30.0) and pairs[0]["r_l"] == pytest.approx(-5.0)
    assert swap_pairs(SWAP_INST, [text], ctr, RewardConfig(), delta_th=100.0) == []
    assert len(swap_pairs(SWAP_INST, [text], ctr, RewardConfig(), delta_th=1.0, max_pairs=1)) == 1


def test_choice_group_near_misses_are_priced_format_errors():
    from llm_auction_env.reward import RewardConfig
    from mechanisms.training.irpo import choice_groups, near_misses

    text = f"Start slowly on flat trails. For grip, try {parsing.render(SWAP_ADS[0])} on wet days. Rest often."
    start = text.index("@")

    def ctr(batch):  # every valid insertion is clicked with probability 0.5: bid x 0.5 decides
        return [{i: 0.5 for i in parsing.valid_ids(parsing.placements(y, inst.ads))} for inst, y in batch]

    misses = near_misses(SWAP_INST, "Ad-11")
    assert [k for k, _, _ in misses] == ["id_only", "altered_title", "example_ad"]
    for kind, option, end in misses:  # each, put in the answer, is one format error and no valid ad
        found = parsing.placements(text[:start] + option + text[start + len(parsing.render(SWAP_ADS[0])):], SWAP_ADS)
        assert [p.error for p in found] == [{"id_only": "malformed", "altered_title": "altered_title",
                                             "example_ad": "unknown_id"}[kind]]
        assert 0 < end <= len(option) and option[0] == "@"
    assert misses[1][1][:misses[1][2]] == "@Trail@"  # scored through the cut title's closing @
    assert [k for k, _, _ in near_misses(SWAP_INST, "Ad-13")][1] == "altered_title"

    plain, = choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), delta_th=1.0)
    group, = choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), delta_th=1.0, with_near_misses=True)
    n = len(SWAP_ADS)
    assert group["options"][:n] == plain["options"] and group["rewards"][:n] == plain["rewards"]
    assert group["ad_ids"][n:] == ["id_only", "altered_title", "example_ad"] and len(group["title_ends"]) == n + 3
    # the format penalty (gamma 50) puts every near miss below every valid candidate, and the
    # candidates' best/worst (r_w, r_l: the cap's ordering) are unchanged
    assert max(group["rewards"][n:]) < min(plain["rewards"]) - 40
    assert (group["r_w"], group["r_l"]) == (plain["r_w"], plain["r_l"])


def test_choice_group_at_a_repeated_ad_prices_the_repeat_as_a_duplicate():
    from llm_auction_env.reward import RewardConfig
    from mechanisms.training.irpo import choice_groups, insertion_variants

    first, again = parsing.render(SWAP_ADS[1]), parsing.render(SWAP_ADS[1])
    text = f"For water, try {first} on long runs. You could also try {again}, which suits this well."
    second = text.rindex("@" + SWAP_ADS[1].title)
    variants = insertion_variants(SWAP_INST, text, 1)
    assert [a for a, _ in variants] == ["Ad-12", "Ad-11", "Ad-13", None] and variants[0][1] == text
    assert variants[-1][1] == f"For water, try {first} on long runs."  # None: stop after the first ad
    for ad_id, v in variants[1:-1]:  # the first insertion and every other word kept: only the repeat changes
        assert v[:second] == text[:second] and v.endswith(", which suits this well.")
        assert parsing.valid_ids(parsing.placements(v, SWAP_ADS)) == ["Ad-12", ad_id]
    # only a valid first insertion followed by a duplicate of it has repeat variants
    clean = f"For water, try {first} on long runs."
    two = f"Try {first}. Or {parsing.render(SWAP_ADS[0])}."
    assert insertion_variants(SWAP_INST, clean, 1) == [] and insertion_variants(SWAP_INST, two, 1) == []
    assert insertion_variants(SWAP_INST, f"Try @Water@[Ad-12]. Or {first}.", 1) == []  # first one not valid

    def ctr(batch):  # every valid insertion is clicked with probability 0.5: bid x 0.5 decides
        return [{i: 0.5 for i in parsing.valid_ids(parsing.placements(y, inst.ads))} for inst, y in batch]

    assert choice_groups(SWAP_INST, "P:", [text, clean], ctr, RewardConfig(), delta_th=1.0) != []
    off = choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), delta_th=1.0)
    group, = choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), delta_th=1.0, with_repeats=True)
    assert off == [] and group["second"] and group["sampled_ad"] == "Ad-12"
    assert group["context"] == "P:" + text[:second] and group["ad_ids"] == ["Ad-11", "Ad-12", "Ad-13"]
    # the repeat keeps the first ad's revenue and adds the duplicate's format penalty (gamma 50);
    # another candidate there is a second valid ad: its bid x 0.5 less the per-ad penalty
    r_11, r_12, r_13 = group["rewards"]
    assert r_12 == group["r_l"] < min(r_11, r_13) - 40
    assert r_13 - r_11 == pytest.approx(0.5 * (40.0 - 10.0))
    with_clean = choice_groups(SWAP_INST, "P:", [text, clean], ctr, RewardConfig(), delta_th=1.0, with_repeats=True)
    assert sorted(g["second"] for g in with_clean) == [False, True] and {g["answer"] for g in with_clean} == {0, 1}
    # a repeat in the first ad's own sentence has no "stop here" variant (it would drop the first ad)
    assert [a for a, _ in insertion_variants(SWAP_INST, f"Try {first} or {again}. Rest.", 1)][-1] == "Ad-13"
    # with_none: "stop after the first ad" competes at the start of the repeat's sentence, priced at
    # the first ad's reward alone (0.5 x 80 - 10), above the duplicate and below a second good ad
    more = text + " Rest often."
    stop, = choice_groups(SWAP_INST, "P:", [more], ctr, RewardConfig(), delta_th=1.0, with_repeats=True, with_none=True)
    assert stop["second"] and stop["ad_ids"][-1] == "none" and stop["options"][-1] == " Rest often."
    assert stop["context"] == "P:" + more[:more.index(" You could")]
    assert stop["options"][0] == " You could also try " + parsing.render(SWAP_ADS[0])
    assert stop["rewards"][-1] == stop["r_none"] == pytest.approx(30.0) and stop["rewards"][1] < 30.0 - 40
    assert stop["rewards"][2] == pytest.approx(30.0 + 0.5 * 40 - 10)
    # any_ad / with_second: a valid second ad is a choice too; here the first ad again is the duplicate
    other = f"For water, try {first} on long runs. You could also try {parsing.render(SWAP_ADS[0])}, which suits this. Rest."
    assert insertion_variants(SWAP_INST, other, 1) == []
    assert [a for a, _ in insertion_variants(SWAP_INST, other, 1, any_ad=True)] == ["Ad-11", "Ad-12", "Ad-13", None]
    assert choice_groups(SWAP_INST, "P:", [other], ctr, RewardConfig(), delta_th=1.0, with_repeats=True, with_none=True) == []
    at2, = choice_groups(SWAP_INST, "P:", [other], ctr, RewardConfig(), delta_th=1.0, with_second=True, with_none=True)
    assert at2["second"] and at2["sampled_ad"] == "Ad-11" and at2["ad_ids"] == ["Ad-11", "Ad-12", "Ad-13", "none"]
    assert at2["rewards"][1] < 30.0 - 40 and at2["rewards"][3] == pytest.approx(30.0)  # duplicate; stop
    assert at2["rewards"][0] == pytest.approx(30.0 + 0.5 * 10 - 10)  # Ad-11 (bid 10) costs more than it earns


def test_choice_later_poses_every_later_insertion_against_no_ad_there():
    """With ``with_later`` an answer with three ads gives a group at each: at the third, the same
    candidates in that place (an earlier ad there is a duplicate) against the answer without the
    third ad's sentence, priced at the two-ad reward; without it only the second is posed (the
    first insertion only in one-ad answers)."""
    from llm_auction_env.reward import RewardConfig
    from mechanisms.training.irpo import choice_groups, insertion_variants

    a11, a12, a13 = (parsing.render(a) for a in SWAP_ADS)
    text = f"Try {a12} for water. For grip, {a11} helps. At night, {a13} lights the way. Rest often."

    def ctr(batch):  # every valid insertion is clicked with probability 0.5: bid x 0.5 decides
        return [{i: 0.5 for i in parsing.valid_ids(parsing.placements(y, inst.ads))} for inst, y in batch]

    third = insertion_variants(SWAP_INST, text, 2, any_ad=True)
    assert [a for a, _ in third] == ["Ad-13", "Ad-11", "Ad-12", None]
    assert third[-1][1] == f"Try {a12} for water. For grip, {a11} helps. Rest often."
    assert insertion_variants(SWAP_INST, text, 3, any_ad=True) == []
    first = insertion_variants(SWAP_INST, text, 0)
    assert [a for a, _ in first] == ["Ad-12", "Ad-11", "Ad-13", None]
    assert first[-1][1] == f"For grip, {a11} helps. At night, {a13} lights the way. Rest often."
    assert insertion_variants(SWAP_INST, f"Try {a12} and {a11}. Rest.", 0)[-1][0] == "Ad-13"  # one sentence, two ads
    kw = dict(delta_th=1.0, with_second=True, with_none=True)
    assert sorted(g["insertion"] for g in choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), **kw)) == [1]  # ad_variants: only a one-ad answer has a first-insertion group
    groups = choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), with_later=True, **kw)
    assert sorted(g["insertion"] for g in groups) == [0, 1, 2]
    g3, = [g for g in groups if g["insertion"] == 2]
    assert g3["second"] and g3["sampled_ad"] == "Ad-13" and g3["ad_ids"][-1] == "none"
    assert g3["context"] == "P:" + text[:text.index(" At night")]
    two_ads = 0.5 * 80 + 0.5 * 10 - 2 * 10  # the no-ad-there option: the first two ads, each less the per-ad penalty
    assert g3["rewards"][-1] == g3["r_none"] == pytest.approx(two_ads)
    assert g3["rewards"][2] == pytest.approx(two_ads + 0.5 * 40 - 10)  # Ad-13 there: one more ad worth 20 - 10
    assert g3["rewards"][0] < two_ads - 40 and g3["rewards"][1] < two_ads - 40  # earlier ads again: duplicates


def test_choice_group_with_none_poses_the_insertion_at_the_sentence_start():
    from llm_auction_env.reward import RewardConfig
    from mechanisms.training.irpo import choice_groups

    text = f"Start slowly on flat trails. For grip, try {parsing.render(SWAP_ADS[0])} on wet days. Rest often."
    sentence = text.index(" For grip")

    def ctr(batch):  # every valid insertion is clicked with probability 0.5: bid x 0.5 decides
        return [{i: 0.5 for i in parsing.valid_ids(parsing.placements(y, inst.ads))} for inst, y in batch]

    plain, = choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), delta_th=1.0, with_near_misses=True)
    group, = choice_groups(SWAP_INST, "P:", [text], ctr, RewardConfig(), delta_th=1.0, with_near_misses=True,
                           with_none=True)
    n = len(plain["options"])
    assert group["context"] == "P:" + text[:sentence] and group["ad_ids"] == plain["ad_ids"] + ["none"]
    # every candidate (and near miss) keeps its markup, behind the sentence's words up to it
    lead = " For grip, try "
    assert group["options"][:n] == [lead + o for o in plain["options"]]
    assert [o[:e] for o, e in zip(group["options"][:n], group["title_ends"][:n])] == \
        [lead + o[:e] for o, e in zip(plain["options"], plain["title_ends"])]
    assert group["rewards"][:n] == plain["rewards"] and (group["r_w"], group["r_l"]) == (plain["r_w"], plain["r_l"])
    # "no ad": the answer goes on without the sentence, its next sentence scored at Eq. 5's 0
    assert group["options"][n] == " Rest often." and group["title_ends"][n] == len(" Rest often.")
    assert group["rewards"][n] == group["r_none"] == pytest.approx(0.0)
    assert group["rewards"][SWAP_ADS.index(SWAP_ADS[1])] == pytest.approx(0.5 * 80 - 10)  # Ad-12 beats no ad
    # an ad sentence that ends the answer has nothing after it to score: the group stays at the markup
    last = f"Start slowly on flat trails. For grip, try {parsing.render(SWAP_ADS[0])}."
    g_last, = choice_groups(SWAP_INST, "P:", [last], ctr, RewardConfig(), delta_th=1.0, with_none=True)
    assert "none" not in g_last["ad_ids"] and g_last["context"] == "P:" + last[:last.index("@")]


def test_swap_pair_epoch_trains_on_pairs_that_differ_only_in_the_ad(tiny_llama, tmp_path):
    """One oracle epoch with ``pair_kind="swap"`` on the tiny model: every pair written differs from
    its partner only in the inserted ad (or the ad's sentence), and DPO trains on them."""
    comps = components(tiny_llama)
    irpo = IRPO(config(tmp_path / "run", reward="oracle", pair_kind="swap", max_ads=1, ad_open_bias=50.0,
                       max_new_tokens=24, max_pairs_per_query=2), comps)
    history = irpo.train()
    pairs = [json.loads(x) for x in (tmp_path / "run" / "epoch_01" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["kind"] == "swap" for p in pairs)
    by_id = {a.ad_id: a for a in ADS}
    for p in pairs:
        inst = comps.instances[p["i"]]
        chosen, rejected = parsing.placements(p["chosen"], inst.ads), parsing.placements(p["rejected"], inst.ads)
        assert [x.ad_id for x in chosen if x.valid] == ([p["ad_w"]] if p["ad_w"] else [])
        assert [x.ad_id for x in rejected if x.valid] == ([p["ad_l"]] if p["ad_l"] else [])
        if p["ad_w"] and p["ad_l"]:
            assert p["chosen"].replace(parsing.render(by_id[p["ad_w"]]), "X") == \
                p["rejected"].replace(parsing.render(by_id[p["ad_l"]]), "X")
        assert p["r_w"] - p["r_l"] > -1.0  # config's delta_th
    assert history[0]["pairs_kept"] == len(pairs) and history[0]["dpo_steps"] >= 1
    # The DPO phase counts pairs longer than max_length (TRL would cut their completions).
    m = history[0]
    assert (m["truncated_pairs"] > 0) == (m["longest_pair_tokens"] > 128)

    # max_pairs_per_epoch keeps the largest reward gaps of the epoch, in query order.
    rows = [json.loads(x) for x in (tmp_path / "run" / "epoch_01" / "samples.jsonl").read_text().splitlines()]
    capped_cfg = config(tmp_path / "capped", reward="oracle", pair_kind="swap", max_ads=1, ad_open_bias=50.0,
                        max_new_tokens=24, max_pairs_per_query=2, max_pairs_per_epoch=2)
    capped = IRPO(capped_cfg, comps).phase_pairs(1, rows, None)
    gaps = sorted((p["r_w"] - p["r_l"] for p in pairs), reverse=True)
    assert len(capped) == min(2, len(pairs))
    assert sorted((p["r_w"] - p["r_l"] for p in capped), reverse=True) == pytest.approx(gaps[:len(capped)])
    assert [p["i"] for p in capped] == sorted(p["i"] for p in capped)
    with pytest.raises(ValueError, match="max_pairs_per_epoch"):
        config(tmp_path / "bad", max_pairs_per_epoch=-1)

    assert history[0]["eos_completions"] == len(pairs)

    # pair_kind="choice": one group per sampled answer with an insertion; the context is the answer
    # up to its markup, the options every candidate in its place, scored like the swap variants.
    choice_irpo = IRPO(config(tmp_path / "choice", reward="oracle", pair_kind="choice", max_ads=1, ad_open_bias=50.0,
                              max_new_tokens=24, max_pairs_per_query=0), comps)
    groups = choice_irpo.phase_pairs(1, rows, None)
    assert groups and all(g["kind"] == "choice" for g in groups)
    responses = {r["response"] for r in rows}
    for g in groups:
        inst = comps.instances[g["i"]]
        markup = parsing.render(by_id[g["sampled_ad"]])  # the context ends with the sampled answer up to its markup
        sampled = next(y for y in responses if markup in y and g["context"].endswith(y[:y.index(markup)]))
        head, tail = sampled[:sampled.index(markup)], sampled[sampled.index(markup) + len(markup):]
        assert g["options"] == [parsing.render(a) for a in inst.ads] and g["ad_ids"] == [a.ad_id for a in inst.ads]
        for option, end, ad in zip(g["options"], g["title_ends"], inst.ads):
            assert option[:end] == f"@{ad.title}@"  # only the title is scored, not the id
            # context + option + the rest of the answer is the sampled answer with that ad swapped in
            assert parsing.valid_ids(parsing.placements(head + option + tail, inst.ads)) == [ad.ad_id]
        assert max(g["rewards"]) - min(g["rewards"]) > -1.0
    # choice_bid_draws: the same answers posed again under fresh bids; the toy click model is
    # bid-blind (0.4 for every ad), so each copy's rewards are 0.4 x its own bids - alpha.
    drawn_cfg = config(tmp_path / "drawn", reward="oracle", pair_kind="choice", max_ads=1, ad_open_bias=50.0,
                       max_new_tokens=24, max_pairs_per_query=0, choice_bid_draws=3)
    drawn = IRPO(drawn_cfg, comps).phase_pairs(1, rows, None)
    assert [g for g in drawn if g["draw"] == 0] == groups
    for g in drawn:
        assert g["rewards"] == pytest.approx([0.4 * b - 10.0 for b in g["bids"]])
        assert g["bids"] == [float(b) for b in g["bids"]] and len(g["bids"]) == len(ADS)
    copies = {}
    for g in drawn:
        copies.setdefault((g["i"], g["answer"]), []).append(g)
    assert any(len({tuple(c["bids"]) for c in cs}) == 3 for cs in copies.values())
    for cs in copies.values():  # one answer: same text after the prompt, other bids
        tails = {c["context"][-20:] for c in cs}
        assert len(tails) == 1
    capped = IRPO(override(drawn_cfg, {"max_pairs_per_epoch": 4}), comps).phase_pairs(1, rows, None)
    kept = {(g["i"], g["answer"]) for g in capped}
    assert len(capped) <= 4 and all(len([g for g in capped if (g["i"], g["answer"]) == k]) == len(copies[k]) for k in kept)
    with pytest.raises(ValueError, match="choice_bid_draws"):
        config(tmp_path / "bad", choice_bid_draws=0)
    # choice_top_bid = 1: every answer posed once more under its sampled bids with one candidate at 100
    topped = IRPO(override(drawn_cfg, {"choice_bid_draws": 1, "choice_top_bid": 1.0}), comps).phase_pairs(1, rows, None)
    assert [g for g in topped if g["draw"] == 0] == groups
    tops = [g for g in topped if g["draw"] == 1]
    assert {(g["i"], g["answer"]) for g in tops} == {(g["i"], g["answer"]) for g in groups}
    for g in tops:
        sampled = rows[g["i"] * drawn_cfg.m_samples]["bids"]  # the bids its answers were sampled under
        moved = moved_bids(g["bids"], sampled)
        assert 100.0 in g["bids"] and len(moved) <= 1 and all(g["bids"][j] == 100.0 for j in moved)
        assert g["rewards"] == pytest.approx([0.4 * b - 10.0 for b in g["bids"]])
    assert len({tuple(g["bids"]).index(100.0) for g in tops}) > 1  # the candidate is drawn, not fixed
    with pytest.raises(ValueError, match="choice_top_bid"):
        config(tmp_path / "bad", choice_top_bid=1.5)
    # choice_top_bid_pick="contrast": the toy clicks are equal (0.4), so the best ad is the highest
    # bid and the top bid goes to the first other candidate (contrast_candidate's tie rule)
    contrast = IRPO(override(drawn_cfg, {"choice_bid_draws": 1, "choice_top_bid": 1.0, "choice_top_bid_pick": "contrast"}),
                    comps).phase_pairs(1, rows, None)
    assert [g for g in contrast if g["draw"] == 0] == groups
    assert any(g["draw"] == 1 for g in contrast)
    assert {g.get("top_bid_pick") for g in contrast} == {None, "contrast"}  # no fallback: every answer has one ad
    assert {g.get("top_bid_pick") for g in topped} == {None, "uniform"}
    for g in (g for g in contrast if g["draw"] == 1):
        sampled = rows[g["i"] * drawn_cfg.m_samples]["bids"]
        best = int(np.argmax(sampled))
        assert g["bids"] == [100.0 if j == min(set(range(len(sampled))) - {best}) else b for j, b in enumerate(sampled)]
    with pytest.raises(ValueError, match="choice_top_bid_pick"):
        config(tmp_path / "bad", choice_top_bid_pick="best")
    # choice_tie_bid = 1: one more copy per answer, made on its top-bid copy when there is one, in
    # which a second candidate bids the best ad's bid (equal toy clicks: the best is the highest bid)
    for top, pick in ((0.0, None), (1.0, "contrast")):
        tied = IRPO(override(drawn_cfg, {"choice_bid_draws": 1, "choice_top_bid": top, "choice_top_bid_pick": "contrast",
                                         "choice_tie_bid": 1.0}), comps).phase_pairs(1, rows, None)
        assert [g for g in tied if g["draw"] == 0] == groups
        by_answer = {}
        for g in tied:
            by_answer.setdefault((g["i"], g["answer"]), {})[g["draw"]] = g
        assert set(by_answer) == {(g["i"], g["answer"]) for g in groups}
        for draws in by_answer.values():
            tie, base = draws[max(draws)], draws[max(draws) - 1]  # base: the top-bid copy or the sampled bids
            assert max(draws) == (2 if top else 1) and "tie_with" in tie and "tie_with" not in base
            assert tie.get("top_bid_pick") == base.get("top_bid_pick") == pick
            best = int(np.argmax(base["bids"]))
            moved = moved_bids(tie["bids"], base["bids"])
            assert len(moved) == 1 and tie["bids"][moved[0]] == base["bids"][best] == tie["tie_bid"]
            assert tie["tie_with"] == ADS[best].ad_id
            assert tie["rewards"] == pytest.approx([0.4 * b - 10.0 for b in tie["bids"]])
    # with fresh bid draws and no top-bid copy the tie is still made on the sampled bids
    tied = IRPO(override(drawn_cfg, {"choice_bid_draws": 2, "choice_tie_bid": 1.0}), comps).phase_pairs(1, rows, None)
    ties = [g for g in tied if "tie_with" in g]
    assert ties and all(g["draw"] == 2 and "top_bid_pick" not in g for g in ties)
    for g in ties:
        sampled = rows[g["i"] * drawn_cfg.m_samples]["bids"]
        moved = moved_bids(g["bids"], sampled)
        assert len(moved) == 1 and g["bids"][moved[0]] == max(sampled) == g["tie_bid"]
    with pytest.raises(ValueError, match="choice_tie_bid"):
        config(tmp_path / "bad", choice_tie_bid=-0.1)
    dm = choice_irpo.phase_dpo(1, None, groups)
    assert dm["dpo_steps"] >= 1 and dm["choice_groups"] == len(groups) and np.isfinite(dm["dpo_loss"])
    assert (tmp_path / "choice" / "epoch_01" / "policy" / "adapter_model.safetensors").exists()


def test_contrast_candidate_is_the_most_clickable_ad_that_does_not_win_at_its_bid():
    from mechanisms.training.irpo import candidate_clicks, contrast_candidate

    clicks = {"Ad-11": 0.5, "Ad-12": 0.2, "Ad-13": 0.3}
    seen = []

    def reward_model(pairs):
        seen.extend(pairs)
        return [{a.ad_id: clicks[a.ad_id] for a in parsing.placements(text, SWAP_ADS) if a.valid} for _, text in pairs]

    one_ad = f"Start slowly. For grip, try {parsing.render(SWAP_ADS[2])} on wet days. Rest often."
    click = candidate_clicks(SWAP_INST, [one_ad, "No ad at all."], reward_model)
    assert click == pytest.approx({0: 0.5, 1: 0.2, 2: 0.3})
    assert {text for _, text in seen} >= {one_ad.replace(parsing.render(SWAP_ADS[2]), parsing.render(a)) for a in SWAP_ADS}
    # bids 10, 80, 40: bid x click 5, 16, 12, so Ad-12 wins; of the others Ad-11 clicks most
    assert contrast_candidate(SWAP_INST, click) == 0
    # Ad-11 already bids 100 (and wins at 50): the most clickable of the rest is Ad-13
    assert contrast_candidate(SWAP_INST.with_bids([100.0, 80.0, 40.0]), click) == 2
    # a two-ad answer is read at its first insertion; the candidate it names second is left out
    # there (a duplicate), and the first ad's click is the one the reward model gives the first slot
    seen.clear()
    two_ads = f"For grip, try {parsing.render(SWAP_ADS[2])} on wet days. Carry {parsing.render(SWAP_ADS[1])} too."
    assert candidate_clicks(SWAP_INST, [two_ads], reward_model) == pytest.approx({0: 0.5, 2: 0.3})
    assert len(seen) == 2 and all(text.endswith(f"Carry {parsing.render(SWAP_ADS[1])} too.") for _, text in seen)
    assert candidate_clicks(SWAP_INST, [two_ads, one_ad], reward_model) == pytest.approx({0: 0.5, 1: 0.2, 2: 0.3})
    # no answer whose first ad is valid: no clicks, nothing to contrast
    assert candidate_clicks(SWAP_INST, ["No ad at all.", f"Try @{SWAP_ADS[0].title}@[Ad-99]. Carry {parsing.render(SWAP_ADS[1])}."],
                            reward_model) == {}
    assert contrast_candidate(SWAP_INST, {}) is None


def test_tie_copy_gives_another_candidate_the_best_ads_bid():
    from mechanisms.training.irpo import tie_copy

    click = {0: 0.5, 1: 0.2, 2: 0.3}  # bids 10, 80, 40: Ad-12 wins at 16
    moved = collections.Counter()
    for seed in range(40):
        inst, tag = tie_copy(SWAP_INST, click, np.random.default_rng(seed))
        assert tag == {"tie_with": "Ad-12", "tie_bid": 80.0}
        changed = moved_bids(inst.bids, SWAP_INST.bids)
        assert len(changed) == 1 and inst.bids[changed[0]] == 80.0
        moved[changed[0]] += 1
    assert set(moved) == {0, 2} and min(moved.values()) >= 10  # uniform over the others (p ~ 1e-3 to fail)
    # a candidate already at the best ad's bid is not drawn; nothing to tie when all share it
    inst, _ = tie_copy(SWAP_INST.with_bids([80.0, 80.0, 40.0]), click, np.random.default_rng(0))
    assert inst.bids.tolist() == [80.0, 80.0, 80.0]
    assert tie_copy(SWAP_INST.with_bids([80.0, 80.0, 80.0]), click, np.random.default_rng(0)) is None
    assert tie_copy(SWAP_INST, {}, np.random.default_rng(0)) is None


def test_summarize_samples_reports_the_bid_rank_of_inserted_ads():
    from mechanisms.training.irpo import summarize_samples

    inst = SWAP_INST  # bids 10, 80, 40 for Ad-11, Ad-12, Ad-13
    row = dict(reward=0.0, revenue=0.0, n_err=0, n_ads=1, bids=[10.0, 80.0, 40.0])
    rows = [dict(row, i=0, ctr={"Ad-12": 0.3}), dict(row, i=0, ctr={"Ad-11": 0.1}), dict(row, i=0, n_ads=0, ctr={})]
    out = summarize_samples(rows, [inst])
    assert out["inserted_bid_mean"] == pytest.approx(45.0)
    assert out["inserted_bid_rank"] == pytest.approx(0.5)  # highest (1) and lowest (0) bid
    assert summarize_samples(rows[:1], [inst])["inserted_bid_rank"] == 1.0
    assert "inserted_bid_rank" not in summarize_samples(rows)
    assert "errors_duplicate" not in out  # rows without their response text


def test_error_kinds_tell_a_title_id_mismatch_from_an_altered_title():
    from mechanisms.training.irpo import summarize_samples

    a, b, c = SWAP_ADS
    texts = [f"Try @{b.title}@[{a.ad_id}] today.",  # b's title with a's id: a mismatch
             f"Try @{a.title} Pro@[{a.ad_id}] and {parsing.render(c)}, {parsing.render(c)}.",  # altered + duplicate
             f"Try {parsing.render(a)}.", f"Try @{a.title}@[Ad-99999]."]
    rows = [dict(i=0, reward=0.0, revenue=0.0, n_err=1, n_ads=1, bids=[10.0, 80.0, 40.0], ctr={}, response=y) for y in texts]
    out = summarize_samples(rows, [SWAP_INST])
    assert out["errors_title_of_other_ad"] == pytest.approx(1 / 4)
    assert out["errors_altered_title"] == pytest.approx(1 / 4)
    assert out["errors_duplicate"] == pytest.approx(1 / 4)
    assert out["errors_unknown_id"] == pytest.approx(1 / 4)
    assert out["errors_malformed"] == 0.0


def test_irpo_report_tables_every_epoch(uninterrupted, tiny_llama, tmp_path):
    from benchmarks import irpo_report

    run, history = uninterrupted
    cfg, rows = irpo_report.epoch_rows(run, components(tiny_llama).instances)
    assert [r["epoch"] for r in rows] == [1] and cfg["reward"] == "pctr"
    rank = rows[0]["inserted_bid_rank"]
    assert (0.0 <= rank <= 1.0) if rows[0]["ads_per_response"] > 0 else np.isnan(rank)
    assert rows[0]["pairs_kept"] == history[0]["pairs_kept"]
    text = irpo_report.markdown({"full": (cfg, rows)})
    assert "bid rank" in text and text.count("\n| 1 |") == 3  # the epoch table, the error kinds, the deploy
    assert "title of other ad" in text
    deploy = [json.loads(x) for x in (run / "epoch_01" / "deploy.jsonl").read_text().splitlines()]
    assert rows[0]["deploy"]["reward"] == pytest.approx(np.mean([d["reward"] for d in deploy]))
    assert rows[0]["deploy"]["answers"] == len(deploy)
    # an epoch stopped after its deploy phase is listed with its deploy answers only
    import shutil
    cut = tmp_path / "cut"
    shutil.copytree(run, cut)
    (cut / "epoch_02").mkdir()
    shutil.copy(run / "epoch_01" / "deploy.jsonl", cut / "epoch_02" / "deploy.jsonl")
    _, rows = irpo_report.epoch_rows(cut, components(tiny_llama).instances)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[1]["unfinished"] and "sampled_reward" not in rows[1]
    assert rows[1]["deploy"] == rows[0]["deploy"]
    assert "\n| 2 (deploy only) | n/a" in irpo_report.markdown({"cut": (cfg, rows)})


class RankedClicks(ToyClicks):
    """Exact click probability 0.1, 0.3, 0.5 for ADS[0..2]: a ranking for the probe to recover."""

    def click_probs(self, batch):
        probs = {ADS[0].ad_id: 0.1, ADS[1].ad_id: 0.3, ADS[2].ad_id: 0.5}
        return [{i: probs[i] for i in parsing.valid_ids(parsing.placements(y, inst.ads))} for inst, y in batch]


def test_pctr_probe_refits_the_runs_own_pctr_phase(tiny_llama, tmp_path):
    """The probe's "as run" variant is IRPO's pctr phase on the run's logs (the same fit as the
    run wrote), a variant changes it, and the exact-probability columns are measured."""
    from benchmarks import pctr_probe

    comps = components(tiny_llama)
    comps.click_model = RankedClicks()
    cfg = config(tmp_path / "run")
    irpo = IRPO(cfg, comps)
    rows = [{"i": k % 3, "bids": [10.0, 20.0, 30.0], "response": f"Sure. {parsing.render(ADS[k % 3])} helps.",
             "clicks": {ADS[k % 3].ad_id: int(k % 3 == 2 or k % 4 == 0)}} for k in range(24)]
    for t in (1, 2):
        irpo.epoch_dir(t).mkdir(parents=True)
        (irpo.epoch_dir(t) / "deploy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (irpo.epoch_dir(1) / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "run" / "config.json").write_text(json.dumps(to_dict(cfg)))
    _, run_fit = irpo.phase_pctr(1, rows)  # what the run's pctr phase wrote for epoch 1
    result = pctr_probe.probe(tmp_path / "run", {"as run": {}, "longer": {"steps": "40"}}, 50, comps)
    first, second = result["variants"]["as run"]["epochs"]
    assert first["fit"]["train_loss"] == run_fit["train_loss"] and np.isfinite(first["fit"]["train_loss"])
    assert result["variants"]["longer"]["epochs"][0]["fit"]["train_loss"] != run_fit["train_loss"]
    assert 0 <= first["next_auc"] <= 1 and "next_auc" not in second  # D_3 does not exist
    assert first["choice"]["n_answers"] == 24 and -1 <= first["choice"]["ctr_spearman"] <= 1
    c = first["choice"]  # exact bid x probability 1, 6, 15 for the three ads of every answer
    assert c["best_exact_revenue"] == pytest.approx(15.0) and 1.0 <= c["pick_exact_revenue"] <= 15.0
    assert "choice" not in second  # epoch 2 has no samples
    assert "| as run |" in pctr_probe.markdown({"config": {"run": "r", "git_commit": "abc"}, **result})
    with pytest.raises(ValueError, match="steps"):
        pctr_probe.probe(tmp_path / "run", {"bad": {"steps": "many"}}, 50, comps)


@pytest.mark.parametrize("reward", ["oracle", "pctr"])
def test_shipped_adapter_is_the_quick_preset_recipe(reward):
    """`llm-auction train --preset quick --reward R` reproduces the shipped adapter's config."""
    from dataclasses import asdict
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "mechanisms" / "adapters" / f"llm_auction_{reward}"
    saved = json.loads((shipped / "config.json").read_text())
    saved.setdefault("choice_bid_draws", 1)  # fields added after that run (default = its behaviour)
    saved.setdefault("choice_near_misses", False)
    saved.setdefault("choice_repeats", False)
    saved.setdefault("choice_none", False)
    saved.setdefault("choice_second", False)
    saved.setdefault("choice_whether", False)
    saved.setdefault("choice_neutral_ties", False)
    saved.setdefault("choice_later", False)
    saved.setdefault("choice_cap", "gap")
    saved.setdefault("choice_answers_per_query", 0)
    saved.setdefault("choice_label_temperature", 0.0)
    saved.setdefault("choice_top_bid", 0.0)
    saved.setdefault("choice_top_bid_pick", "uniform")
    saved.setdefault("choice_tie_bid", 0.0)
    saved.setdefault("pctr_path", None)
    saved["pctr"] = json.loads(json.dumps(asdict(saved_config(saved["pctr"]))))  # pCTR fields added later
    expect = json.loads(json.dumps(asdict(IRPOConfig.from_preset("quick", reward=reward))))
    unused = {"run_dir"} | ({"pctr"} if reward == "oracle" else set())  # the Oracle run fits no pCTR
    differ = {k: (saved.get(k), v) for k, v in expect.items() if k not in unused and saved.get(k) != v}
    assert not differ
    assert [m["epoch"] for m in json.loads((shipped / "metrics.json").read_text())] == [1, 2, 3]
    assert (shipped / "policy" / "adapter_model.safetensors").stat().st_size > 0
    from mechanisms.llm_auction import resolve_policy

    served = resolve_policy(shipped)[1]  # served with the markup settings of its serving.json
    assert served["constrain_ads"] is True and served["max_ads"] == 2 and saved["constrain_ads"] is False
    if reward == "pctr":  # the reserve's reward model ships with the policy
        assert (shipped / "pctr" / "model.pt").stat().st_size > 0


def test_markup_binding_masks_the_id_and_the_title_tokens(tiny_llama):
    from benchmarks.markup_binding import markup_masks, side_logprobs

    model, tok = tiny_llama
    ad = SWAP_ADS[0]
    prompt, text = "Question: shoes?\nAnswer:", f" For grip, try {parsing.render(ad)} on wet days."
    (p,) = parsing.placements(text, SWAP_ADS)
    enc = tok(prompt + text, return_offsets_mapping=True, add_special_tokens=False)
    ids, starts = enc["input_ids"][1:], [s for s, _ in enc["offset_mapping"]][1:]
    id_mask, title_mask = markup_masks(starts, len(prompt), p)
    assert tok.decode([t for t, m in zip(ids, id_mask) if m]).strip() == f"{ad.ad_id}]"
    assert tok.decode([t for t, m in zip(ids, title_mask) if m]).strip() == ad.title
    lp = side_logprobs(model, tok, prompt, text, SWAP_INST)
    # a random model is near-uniform: about -log(vocabulary) per masked token
    assert lp["id"] == pytest.approx(-id_mask.sum() * np.log(len(tok)), rel=0.2)
    assert lp["title"] == pytest.approx(-title_mask.sum() * np.log(len(tok)), rel=0.2)
    assert side_logprobs(model, tok, prompt, " No ad here.", SWAP_INST) is None


def test_markup_binding_cli_rejects_bad_combos(tmp_path):
    from benchmarks import markup_binding

    with pytest.raises(SystemExit):
        markup_binding.main([str(tmp_path), "--combo", "1:0"])
    with pytest.raises(SystemExit):
        markup_binding.main([str(tmp_path), "--combo", "x"])
    with pytest.raises(SystemExit):  # not a run directory
        markup_binding.main([str(tmp_path), "--combo", "0:1"])


def test_train_resume_applies_set_to_the_saved_config_not_the_preset(tmp_path, monkeypatch):
    """``--resume --set K=V`` overrides the run's saved config: a field valid only with the saved
    run's settings (``choice_neutral_ties`` needs its ``choice_whether``) is accepted, the saved
    fields are kept; the same ``--set`` on the preset alone is refused with a clear message."""
    from dataclasses import asdict
    from pathlib import Path

    import mechanisms.training.irpo as irpo

    seen = []

    class Fake:
        def __init__(self, cfg):
            seen.append(cfg)

        def train(self):
            return []

    monkeypatch.setattr(irpo, "IRPO", Fake)
    saved = IRPOConfig.from_preset("quick", pair_kind="choice", choice_none=True, choice_whether=True, n_queries=7)
    (tmp_path / "config.json").write_text(json.dumps(asdict(saved), default=list))
    assert irpo.main(["--run-dir", str(tmp_path), "--resume", "--set", "choice_neutral_ties=true", "epochs=4"]) == 0
    (cfg,) = seen
    assert cfg.choice_neutral_ties and cfg.choice_whether and cfg.n_queries == 7 and cfg.epochs == 4
    assert cfg.run_dir == str(tmp_path)
    with pytest.raises(SystemExit, match="choice_neutral_ties needs choice_whether"):
        irpo.main(["--run-dir", str(tmp_path / "new"), "--set", "choice_neutral_ties=true", "choice_whether=false"])
    # the default run dir (named by the reward --set may choose) is found without validating
    # the other --set values against the preset
    default = tmp_path / "runs" / "irpo-quick-oracle"
    default.mkdir(parents=True)
    (default / "config.json").write_text(json.dumps(asdict(saved), default=list))
    monkeypatch.chdir(tmp_path)
    assert irpo.main(["--resume", "--set", "reward=oracle", "choice_neutral_ties=true"]) == 0
    assert seen[-1].run_dir == str(Path("runs") / "irpo-quick-oracle") and seen[-1].choice_neutral_ties
    assert seen[-1].reward == "oracle" and seen[-1].n_queries == 7


def test_cap_answers_by_gap_or_at_random_keeps_whole_answers():
    """``gap`` keeps the answers with the largest reward gap; ``random`` a seeded draw that also
    reaches the small-gap answers; either way whole answers (all their groups) in query order."""
    from mechanisms.training.irpo import _cap_answers

    groups = [{"i": i, "answer": a, "r_w": float(10 * i + a), "r_l": 0.0, "k": k}
              for i in range(10) for a in range(2) for k in range(2)]  # 20 answers, 2 groups each
    by_gap = _cap_answers(groups, 6)  # "gap" is the default
    assert {(g["i"], g["answer"]) for g in by_gap} == {(9, 1), (9, 0), (8, 1)} and len(by_gap) == 6
    draws = [_cap_answers(groups, 6, "random", np.random.default_rng(s)) for s in range(20)]
    for d in draws:
        assert len(d) == 6 and [(g["i"], g["answer"]) for g in d] == sorted((g["i"], g["answer"]) for g in d)
        assert all(sum(1 for h in d if (h["i"], h["answer"]) == (g["i"], g["answer"])) == 2 for g in d)
    assert _cap_answers(groups, 6, "random", np.random.default_rng(3)) == draws[3]  # seeded
    reached = {(g["i"], g["answer"]) for d in draws for g in d}
    assert len(reached) > 12 and ((0, 0) in reached or (0, 1) in reached)  # the smallest gaps too
    with pytest.raises(ValueError, match="choice_cap"):
        IRPOConfig(choice_cap="largest")


@pytest.mark.parametrize("how", ["gap", "random", "stratified"])
def test_cap_answers_per_query_spreads_the_groups_over_queries(how):
    """``per_query``: at most that many answers of a query kept, the first in the cap's order, so
    the same cap reaches more queries; 0 leaves the cap as it was; with no epoch cap it limits alone."""
    from mechanisms.training.irpo import _cap_answers

    groups = [{"i": i, "answer": a, "r_w": float(10 * i + a), "r_l": 0.0, "k": k, "ad_ids": ["a", "b"], "sampled_ad": "a"}
              for i in range(10) for a in range(3) for k in range(2)]  # 30 answers, 2 groups each, no "none" option
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    for per in (1, 2):
        kept = _cap_answers(groups, 12, how, rng(), per_query=per)
        answers = {(g["i"], g["answer"]) for g in kept}
        assert len(kept) == 12 and len(answers) == 6
        assert all(sum(1 for i, _ in answers if i == q) <= per for q in range(10))
    assert len({g["i"] for g in _cap_answers(groups, 12, how, rng(), per_query=1)}) == 6
    assert _cap_answers(groups, 12, how, rng(), per_query=0) == _cap_answers(groups, 12, how, rng())
    if how == "gap":  # the largest gap of each query first: answer 2 of the top queries
        assert {(g["i"], g["answer"]) for g in _cap_answers(groups, 12, per_query=1)} == {(i, 2) for i in range(4, 10)}
    alone = _cap_answers(groups, 0, how, rng(), per_query=1)
    assert len({(g["i"], g["answer"]) for g in alone}) == 10 and len({g["i"] for g in alone}) == 10
    with pytest.raises(ValueError, match="choice_answers_per_query"):
        IRPOConfig(pair_kind="choice", choice_answers_per_query=-1)
    with pytest.raises(ValueError, match="choice_answers_per_query needs pair_kind"):
        IRPOConfig(pair_kind="full", choice_answers_per_query=1)


def test_stratified_cap_keeps_each_insertion_decision_at_its_share():
    """``gap`` keeps only the answers where inserting pays most; ``stratified`` gives the "insert",
    "no ad" and tie answers their shares of all groups (here 3/6, 2/6, 1/6 of a cap of 6) and
    within each the largest gaps."""
    from mechanisms.training.irpo import _answer_whether, _cap_answers

    def group(i, gap, r_none, r_sampled):  # options: the sampled ad, a bad ad, no ad
        return {"i": i, "answer": 0, "ad_ids": ["Ad-1", "Ad-2", "none"], "sampled_ad": "Ad-1",
                "rewards": [r_sampled, r_sampled - gap, r_none], "r_w": max(r_sampled, r_none), "r_l": r_sampled - gap}

    inserts = [group(i, 50.0 + i, 0.0, 30.0) for i in range(6)]  # inserting wins by 30
    nones = [group(6 + i, 5.0 + i, 0.0, -20.0) for i in range(4)]  # no ad wins by 20
    ties = [group(10 + i, 1.0 + i, 0.0, 2.0) for i in range(2)]  # within delta_th
    groups = inserts + nones + ties
    assert [_answer_whether([g], 10.0) for g in (inserts[0], nones[0], ties[0])] == ["insert", "none", "tie"]
    assert {g["i"] for g in _cap_answers(groups, 6, "gap")} == {0, 1, 2, 3, 4, 5}
    kept = _cap_answers(groups, 6, "stratified", delta_th=10.0)
    assert [g["i"] for g in kept] == [3, 4, 5, 8, 9, 11]  # largest gaps per decision, query order
    two_groups = [dict(inserts[5], i=0), dict(inserts[4], i=0), dict(inserts[0], i=1)]  # answer (0, 0) has 2 groups
    assert _cap_answers(two_groups, 1, "stratified", delta_th=10.0) == [two_groups[2]]  # whole answers only
    thirds = inserts[:2] + nones[:2] + ties  # shares of a cap of 5: 5/3 each, rounded up to 2 each
    assert len(_cap_answers(thirds, 5, "stratified", delta_th=10.0)) == 5  # never more than the cap
    assert _cap_answers([], 5, "stratified", delta_th=10.0) == []
