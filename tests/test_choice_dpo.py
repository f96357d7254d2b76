"""Shared-context DPO on the ad choice (mechanisms/training/choice_dpo.py), on the tiny random Llama."""
from __future__ import annotations

import copy

import pytest
import torch

from mechanisms.training.choice_dpo import (
    ChoiceDPOConfig, ChoiceDPOTrainer, build_examples, encode_group, group_pairs, option_logps, soft_labels,
    whether_pair,
)

CONTEXT = "<|im_start|>user\nAds: @Trail Shoes@[Ad-11] bid 10, @Water Bottle@[Ad-12] bid 80<|im_end|>\n" \
          "<|im_start|>assistant\nStart slowly. For grip, try "
OPTIONS = ["@Trail Shoes@[Ad-11]", "@Water Bottle@[Ad-12]", "@Desk Lamp@[Ad-13]"]
ENDS = [o.index("@", 1) + 1 for o in OPTIONS]


def _lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))


def _args(tmp_path, **kw) -> ChoiceDPOConfig:
    return ChoiceDPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=1, logging_steps=1, save_strategy="no",
                           use_cpu=True, seed=0, **kw)


def test_encode_group_scores_the_title_through_its_closing_at_not_the_id(smollm2_tokenizer):
    tok = smollm2_tokenizer
    g = encode_group(tok, CONTEXT, OPTIONS, ENDS)
    for option, ids, end in zip(OPTIONS, g["options"], ENDS):
        whole = tok(CONTEXT + option, add_special_tokens=False)["input_ids"]
        assert whole[: len(g["context"])] == g["context"].tolist()  # the shared context is each text's own tokens
        assert whole[len(g["context"]): len(g["context"]) + len(ids)] == ids.tolist()
        text = tok.decode(ids)
        assert option[1:end - 1] in text and "Ad-1" not in text  # the title, never the id
    with pytest.raises(ValueError, match="no token after the shared context"):
        encode_group(tok, CONTEXT, ["@Same@[Ad-1]", "@Same@[Ad-2]"], [6, 6])


def test_encode_group_of_an_insertion_decision_scores_the_sentence_lead_and_the_no_ad_sentence(smollm2_tokenizer):
    """A ``choice_none`` group (irpo.choice_groups) starts at the ad's sentence: the shared context
    stops there, every candidate's tokens carry the sentence's words up to its markup, and the
    no-ad option's tokens are the next sentence."""
    import numpy as np

    from llm_auction_env import parsing
    from llm_auction_env.reward import RewardConfig
    from llm_auction_env.types import Ad, AuctionInstance, UserProfile
    from mechanisms.training.irpo import choice_groups

    ads = (Ad("Ad-11", "Trail Shoes", "shoes"), Ad("Ad-12", "Water Bottle", "bottles"))
    inst = AuctionInstance("How do I start?", UserProfile("u", "runner"), ads, np.array([10.0, 80.0]))
    text = f"Start slowly. For grip, try {parsing.render(ads[0])} on wet days. Rest often."
    clicks = lambda batch: [{i: 0.5 for i in parsing.valid_ids(parsing.placements(y, x.ads))} for x, y in batch]
    g, = choice_groups(inst, CONTEXT[:CONTEXT.index("Start")], [text], clicks, RewardConfig(), 1.0, with_none=True)
    tok = smollm2_tokenizer
    enc = encode_group(tok, g["context"], g["options"], g["title_ends"])
    assert tok.decode(enc["context"]).endswith("Start slowly.")
    decoded = [tok.decode(o) for o in enc["options"]]
    assert all(d.startswith(" For grip, try @") for d in decoded[:2]) and "Ad-1" not in decoded[0]
    assert decoded[0].endswith("Trail Shoes@") and decoded[1].endswith("Water Bottle@")
    assert decoded[2] == " Rest often." and g["rewards"] == pytest.approx([5 - 10, 40 - 10, 0.0])


def test_option_logps_equal_full_sequence_teacher_forcing(tiny_llama):
    model, tok = tiny_llama
    g = encode_group(tok, CONTEXT, OPTIONS, ENDS)
    with torch.no_grad():
        fast = option_logps(model, g["context"], g["options"])
        for j, o in enumerate(g["options"]):
            ids = torch.cat([g["context"], o])[None]
            logp = model(ids).logits[0].log_softmax(-1)
            n = len(g["context"])
            slow = sum(logp[n - 1 + k, o[k]] for k in range(len(o)))
            assert fast[j].item() == pytest.approx(slow.item(), abs=1e-4)


def test_group_pairs_take_every_gap_above_delta_th():
    assert group_pairs([30.0, -5.0, 20.0], 5.0) == [(0, 1), (0, 2), (2, 1)]
    assert group_pairs([1.0, 1.0], 0.0) == []


def test_choice_dpo_moves_the_choice_toward_the_best_option(tiny_llama, tmp_path):
    """Trained on one group whose second option is best, the policy's log-ratio of that option
    rises above every other's; the log-ratios start at exactly 0 (reference = the model before its
    LoRA), and groups without a pair are dropped."""
    base, tok = tiny_llama
    model = copy.deepcopy(base)
    groups = [{"context": CONTEXT, "options": OPTIONS, "title_ends": ENDS, "rewards": [-5.0, 30.0, 0.0]},
              {"context": CONTEXT, "options": OPTIONS, "title_ends": ENDS, "rewards": [1.0, 1.0, 1.0]}]
    examples, left_out = build_examples(tok, model, groups, delta_th=2.0)
    assert len(examples) == 1 and examples[0]["best"] == 1 and left_out == 0
    assert sorted(map(tuple, examples[0]["pairs"].tolist())) == [(1, 0), (1, 2), (2, 0)]
    model, args = _lora(model), _args(tmp_path, beta=0.5, rpo_alpha=0.0, learning_rate=5e-3, num_train_epochs=8)
    trainer = ChoiceDPOTrainer(model=model, args=args, train_dataset=examples)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs[0]["rewards/chosen"] == 0.0 and logs[0]["rewards/margins"] == 0.0
    model.eval()
    with torch.no_grad():
        ratio = option_logps(model, examples[0]["context"], examples[0]["options"]) - examples[0]["ref_logps"]
    assert ratio[1] > ratio[0] + 0.5 and ratio[1] > ratio[2]
    assert logs[-1]["dpo_loss"] < logs[0]["dpo_loss"]
    with pytest.raises(ValueError, match="per_device_train_batch_size=1"):
        ChoiceDPOTrainer(model=model, args=ChoiceDPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2,
                                                           use_cpu=True), train_dataset=examples)


def test_choice_probe_gives_a_distribution_over_the_candidates_per_bid(tiny_llama):
    """benchmarks/choice_probe on the tiny model: held-out contexts end right before a markup, q is
    a distribution over the candidates, and the curves hold one value per context and bid."""
    import numpy as np

    from benchmarks.choice_probe import choice_probs, load_contexts, probe

    model, tok = tiny_llama
    contexts = load_contexts(2, seed=0)
    for inst, prefix, j in contexts:
        assert 0 <= j < len(inst.ads) and "@" not in prefix[-3:]
        q = choice_probs(model, tok, inst, prefix)
        assert q.shape == (len(inst.ads),) and q.sum() == pytest.approx(1.0) and (q > 0).all()
    r = probe(model, tok, contexts, np.array([1.0, 100.0]), seed=0)
    assert np.asarray(r["curves"]).shape == (2, 2) and 0 <= r["choice_bid_rank"][0] <= 1


def test_choice_probe_resume_keeps_measured_policies_and_checks_the_rest(tmp_path, monkeypatch, capsys):
    """A resumed probe keeps a policy measured before even when its adapter folder is gone (a fresh
    machine), and still refuses a policy still to measure whose adapter is not a LoRA folder."""
    import json

    from benchmarks import choice_probe as cp

    monkeypatch.setattr(cp, "load_contexts", lambda n, seed: [])
    monkeypatch.setattr(cp, "markdown", lambda result: "")
    monkeypatch.setattr(cp, "plot", lambda result, path: None)
    old = {"config": {"contexts": [], "bids": [1.0, 100.0], "seed": 0, "prompt_style": "compact"},
           "policies": {"e1": {"adapter": "gone/policy", "curves": [[0.1, 0.2]]}}}
    (tmp_path / "choice_probe.json").write_text(json.dumps(old))
    assert cp.main(["--policy", "e1=gone/policy", "--bids", "1,100", "--out", str(tmp_path)]) == 0
    kept = json.loads((tmp_path / "choice_probe.json").read_text())["policies"]
    assert kept == old["policies"]
    with pytest.raises(SystemExit):
        cp.main(["--policy", "e1=gone/policy", "--policy", "e2=also/gone", "--bids", "1,100", "--out", str(tmp_path)])
    assert "also/gone is not a LoRA adapter folder" in capsys.readouterr().err


def test_a_group_encode_group_rejects_is_left_out_with_a_warning(tiny_llama):
    """Session 13: a "no ad" option whose words all lie in the options' shared tokens (the answer's
    next sentence cut short, " You can", under a lead " You can also try ") stopped a DPO phase;
    such a group is now left out and warned about, and a phase with no encodable group is an error."""
    base, tok = tiny_llama
    lead = " You can also try "
    bad = {"context": CONTEXT, "options": [lead + o for o in OPTIONS] + [" You can"],
           "title_ends": [len(lead) + e for e in ENDS] + [8], "rewards": [-5.0, 30.0, 0.0, 1.0]}
    good = {"context": CONTEXT, "options": OPTIONS, "title_ends": ENDS, "rewards": [-5.0, 30.0, 0.0]}
    with pytest.warns(UserWarning, match="choice group left out"):
        examples, left_out = build_examples(tok, base, [bad, good], delta_th=2.0)
    assert len(examples) == 1 and len(examples[0]["options"]) == 3 and left_out == 1
    with pytest.raises(ValueError, match="none of the 1 choice groups"), pytest.warns(UserWarning):
        build_examples(tok, base, [bad], delta_th=2.0)


def test_whether_pair_prices_inserting_at_the_policys_own_choice():
    """The best candidate (30) beats "no ad" (0), but a policy that writes the bad one (-20) nine
    times in ten inserts at an expected -15: "no ad" wins. The same rewards under a policy that
    writes the best one: inserting wins; close to even within delta_th: no pair."""
    ids = ["Ad-1", "Ad-2", "none"]
    r = [30.0, -20.0, 0.0]
    to_bad = torch.log(torch.tensor([0.1, 0.9, 0.5]))  # the none entry is ignored
    to_best = torch.log(torch.tensor([0.9, 0.1, 0.5]))
    even = torch.log(torch.tensor([0.4, 0.6, 0.5]))  # 0.4 * 30 - 0.6 * 20 = 0
    assert whether_pair(r, ids, to_bad, 5.0) == 1
    assert whether_pair(r, ids, to_best, 5.0) == -1
    assert whether_pair(r, ids, even, 5.0) == 0
    assert whether_pair(r, ["Ad-1", "Ad-2", "Ad-3"], to_bad, 5.0) == 0


def test_whether_splits_which_from_whether_and_moves_mass_to_no_ad(tiny_llama, tmp_path):
    """With ``whether``, "no ad" is in no ad-vs-ad pair; when the policy's own choice is worth less
    than no ad, the NLL and the whether pair push "no ad" up against inserting at all (its log-ratio
    rises above the log-sum of the inserting options'), while the which pairs still order the ads."""
    base, tok = tiny_llama
    model = copy.deepcopy(base)
    options = OPTIONS + ["Rest often."]
    ends = ENDS + [len("Rest often.")]
    ids = ["Ad-11", "Ad-12", "Ad-13", "none"]
    g = {"context": CONTEXT, "options": options, "title_ends": ends, "ad_ids": ids, "rewards": [30.0, -20.0, -20.0, 0.0]}
    (plain,), _ = build_examples(tok, model, [g], delta_th=2.0)
    assert any(3 in pair for pair in plain["pairs"].tolist()) and "whether" not in plain
    (ex,), _ = build_examples(tok, model, [g], delta_th=2.0, whether=True)
    assert not any(3 in pair for pair in ex["pairs"].tolist())
    assert sorted(map(tuple, ex["pairs"].tolist())) == [(0, 1), (0, 2)]
    # the untrained tiny model spreads its choice near evenly over the three ads: (30 - 40) / 3 < -2
    assert ex["whether"] == 1 and ex["best"] == 3 and ex["insert"].tolist() == [0, 1, 2]
    model, args = _lora(model), _args(tmp_path, beta=0.5, rpo_alpha=0.0, learning_rate=5e-3, num_train_epochs=8)
    trainer = ChoiceDPOTrainer(model=model, args=args, train_dataset=[ex])
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs[0]["whether_none"] == 1.0
    model.eval()
    with torch.no_grad():
        lp = option_logps(model, ex["context"], ex["options"])
    ref = ex["ref_logps"]
    ratio_none = lp[3] - ref[3]
    ratio_insert = torch.logsumexp(lp[:3], 0) - torch.logsumexp(ref[:3], 0)
    assert ratio_none > ratio_insert + 0.5
    assert lp[0] - ref[0] > lp[1] - ref[1]  # which: the best ad still above the bad one


def test_neutral_ties_train_which_ad_without_raising_the_insertion_rate(tiny_llama, tmp_path):
    """A group whose whether decision is a tie ("no ad" at 7.5; the policy's own choice of the ads,
    worth 10, 6 and 6, is within delta_th of it unless it writes the best one 7 times in 8); a small
    beta leaves its which pairs a small gradient, so the NLL term drives training. On the best ad's
    own probability it raises P(any ad); with ``neutral_ties`` it moves the best ad up *among the
    ads* as much, and P(any ad) ends lower than without (by 0.84 in log on this seed)."""
    base, tok = tiny_llama
    g = {"context": CONTEXT, "options": OPTIONS + ["Rest often."], "title_ends": ENDS + [len("Rest often.")],
         "ad_ids": ["Ad-11", "Ad-12", "Ad-13", "none"], "rewards": [10.0, 6.0, 6.0, 7.5]}
    gains = {}
    for neutral in (False, True):
        model = copy.deepcopy(base)
        (ex,), _ = build_examples(tok, model, [g], delta_th=2.0, whether=True, neutral_ties=neutral)
        assert ex["whether"] == 0 and ex["best"] == 0 and sorted(map(tuple, ex["pairs"].tolist())) == [(0, 1), (0, 2)]
        assert ex.get("nll_given_insert", False) is neutral
        model, args = _lora(model), _args(tmp_path, beta=0.01, rpo_alpha=1.0, learning_rate=5e-3, num_train_epochs=8)
        ChoiceDPOTrainer(model=model, args=args, train_dataset=[ex]).train()
        model.eval()
        with torch.no_grad():
            lp = option_logps(model, ex["context"], ex["options"])
        ref = ex["ref_logps"]
        gains[neutral] = (float(torch.logsumexp(lp[:3], 0) - torch.logsumexp(ref[:3], 0)),  # log P(any ad)
                          float((lp[0] - torch.logsumexp(lp[:3], 0)) - (ref[0] - torch.logsumexp(ref[:3], 0))))
    assert gains[False][0] > 0.1  # the plain NLL pushes inserting up in a tie
    assert gains[True][0] < gains[False][0] - 0.5
    assert gains[True][1] > 1.0 and gains[False][1] > 1.0  # both teach which ad


def test_soft_labels_are_the_sigmoid_of_the_gap_and_the_softmax_over_the_winning_decision(tiny_llama):
    import math

    lab = soft_labels([30.0, -5.0, 20.0], [(0, 1), (0, 2), (2, 1)], [0, 2], temperature=10.0)
    assert lab["pair_probs"].tolist() == pytest.approx([1 / (1 + math.exp(-3.5)), 1 / (1 + math.exp(-1.0)),
                                                        1 / (1 + math.exp(-2.5))], rel=1e-6)
    w = lab["nll_weights"].tolist()
    assert w[1] == 0.0 and w[0] == pytest.approx(1 / (1 + math.exp(-1.0)), rel=1e-6) and sum(w) == pytest.approx(1.0)
    base, tok = tiny_llama
    g = {"context": CONTEXT, "options": OPTIONS + ["Rest often."], "title_ends": ENDS + [len("Rest often.")],
         "ad_ids": ["Ad-11", "Ad-12", "Ad-13", "none"], "rewards": [30.0, -20.0, -20.0, 0.0]}
    (hard,), _ = build_examples(tok, base, [g], delta_th=2.0, whether=True)
    assert "pair_probs" not in hard and "whether_prob" not in hard and "nll_weights" not in hard
    (ex,), _ = build_examples(tok, base, [g], delta_th=2.0, whether=True, label_temperature=10.0)
    assert ex["whether"] == 1 and ex["nll_weights"].tolist() == [0.0, 0.0, 0.0, 1.0]  # "no ad" won: NLL on it alone
    assert 0.5 < ex["whether_prob"] < 1.0 and ex["pair_probs"].tolist() == pytest.approx([1 / (1 + math.exp(-5))] * 2)
    with pytest.raises(ValueError, match="label_temperature"):
        build_examples(tok, base, [g], delta_th=2.0, label_temperature=-1.0)


def test_the_soft_pair_loss_is_flat_at_the_labels_logit_where_the_hard_loss_still_pushes():
    from mechanisms.training.choice_dpo import _pair_loss

    p = torch.tensor([0.6, 0.9, 0.99])
    m = torch.logit(p).requires_grad_()
    _pair_loss(m, p).sum().backward()
    assert m.grad.abs().max() < 1e-6  # the optimum: beta x log-ratio gap = (r_w - r_l) / T
    m2 = torch.logit(p).requires_grad_()
    _pair_loss(m2).sum().backward()
    assert (m2.grad < -0.005).all()  # hard labels: the margin is pushed up wherever it is


def test_soft_labels_train_the_margin_to_the_reward_gap_over_t(tiny_llama, tmp_path):
    """One group, rewards 10 / 0 / -10 at T = 10: trained from 0, beta times the log-ratio gap of
    neighbouring options settles near (r_w - r_l) / T = 1, the softmax allocation of Eq. 2."""
    base, tok = tiny_llama
    g = {"context": CONTEXT, "options": OPTIONS, "title_ends": ENDS, "rewards": [10.0, 0.0, -10.0]}
    model = copy.deepcopy(base)
    (ex,), _ = build_examples(tok, model, [g], delta_th=2.0, label_temperature=10.0)
    model, args = _lora(model), _args(tmp_path, beta=0.5, rpo_alpha=0.0, learning_rate=1e-2, num_train_epochs=40)
    ChoiceDPOTrainer(model=model, args=args, train_dataset=[ex]).train()
    model.eval()
    with torch.no_grad():
        ratio = option_logps(model, ex["context"], ex["options"]) - ex["ref_logps"]
    gap = 0.5 * float((ratio[0] - ratio[2]) / 2)  # beta x the mean gap of neighbours
    assert 0.6 < gap < 1.4, gap
    assert ratio[0] > ratio[1] > ratio[2]
