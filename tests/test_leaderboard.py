"""Leaderboard end to end on the tiny random Llama (3 queries), bootstrap CIs, resume, CLI help."""
import dataclasses
import json

import numpy as np
import pytest

from benchmarks import leaderboard as lb


def test_bootstrap_ci_brackets_the_mean_and_collapses_on_constant_data():
    x = np.random.default_rng(0).normal(5.0, 1.0, 200)
    m, lo, hi = lb.bootstrap_ci([x], lambda a, axis=-1: np.mean(a, axis=axis), 1000, 0)
    assert lo < m < hi and hi - lo < 0.5
    assert lb.bootstrap_ci([np.ones(5)], lambda a, axis=-1: np.mean(a, axis=axis), 1000, 0) == (1.0, 1.0, 1.0)


def test_paired_difference_uses_common_queries():
    base = [{k: 0.0 for k in ("revenue", "reward", "expected_revenue", "expected_reward", "clicks", "n_ads", "format_error", "payments", "advertiser_surplus",
                              "llm_calls", "prompt_tokens", "generated_tokens", "seconds")} | {"query_id": f"q{k}"}
            for k in range(20)]
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 50, 20)
    for r, e in zip(base, noise):
        r["revenue"] = 100 + e
    better = [dict(r, revenue=r["revenue"] + 3.0) for r in base]  # +3 on every query, same noise
    metrics, diffs = lb.summarise(better, base, 500, 0)
    assert diffs["revenue"]["diff"] == pytest.approx(3.0)
    assert diffs["revenue"]["lo"] == pytest.approx(3.0) and diffs["revenue"]["hi"] == pytest.approx(3.0)
    assert metrics["revenue"]["hi"] - metrics["revenue"]["lo"] > 10  # unpaired CI is wide
    with pytest.raises(ValueError, match="same queries"):
        lb.paired_differences(better[::-1], base, 500, 0)


class CountingBackend:
    """Wraps a backend and counts generate calls (to check that a resumed run does no work)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def generate(self, *a, **k):
        self.calls += 1
        return self.inner.generate(*a, **k)

    def logprobs(self, *a, **k):
        return self.inner.logprobs(*a, **k)


def test_leaderboard_end_to_end_on_tiny_model(tiny_llama, tmp_path, monkeypatch):
    pytest.importorskip("llm_auction_env.prompts")
    from llm_auction_env.llm.transformers_backend import TransformersBackend

    model, tok = tiny_llama
    backend = CountingBackend(TransformersBackend.from_model(model, tok, batch_size=8))
    cfg = lb.LeaderboardConfig.from_preset(
        "quick", mechanisms=("pretrained", "mosaic", "rag_auction", "gsp_slot"), n_queries=3, k_ads=5,
        max_new_tokens=10, mosaic_m=2, batch_size=3, n_boot=200, out=str(tmp_path / "lb"), seed=3,
        compare=(("gsp_slot", "mosaic"), ("llm_auction", "mosaic")))
    from llm_auction_env.users.semantic import SemanticClickModel

    users = SemanticClickModel()
    res = lb.run_leaderboard(cfg, backend=backend, click_model=users)
    out = tmp_path / "lb"
    for f in ("table.md", "results.json", "results.csv", "per_query.csv", "leaderboard.png"):
        assert (out / f).stat().st_size > 0, f
    data = json.loads((out / "results.json").read_text())
    assert set(data["mechanisms"]) == {"pretrained", "mosaic", "rag_auction", "gsp_slot"}
    assert data["meta"]["seed"] == 3 and data["meta"]["git_commit"] and data["meta"]["versions"]["numpy"]
    for name, r in data["mechanisms"].items():
        assert r["n"] == 3
        rev = r["metrics"]["revenue"]
        assert rev["lo"] <= rev["mean"] <= rev["hi"]
        assert r["metrics"]["llm_calls"]["mean"] >= 1
        assert (name == "pretrained") == (not r["vs_pretrained"])
    # the table's MOSAIC row: no pi_ref/pi_gen weight, so M=2 generations and no scoring passes
    assert data["mechanisms"]["mosaic"]["metrics"]["llm_calls"]["mean"] == 2
    assert "oracle reward" in data["mechanisms"]["mosaic"]["label"]
    assert "no pi_ref/pi_gen weight" in data["mechanisms"]["mosaic"]["label"]
    table = (out / "table.md").read_text()
    assert "Revenue/query" in table and "Paired difference" in table and "[" in table
    assert "Skipped" not in table  # only the requested mechanisms
    # The requested comparison between two rows that ran (llm_auction did not: no entry for it).
    assert list(data["paired"]) == ["gsp_slot - mosaic"]
    rows = {}
    for line in (out / "per_query.csv").read_text().splitlines()[1:]:
        name, _, revenue, *_ = line.split(",")
        rows.setdefault(name, []).append(float(revenue))
    expect = np.mean(rows["gsp_slot"]) - np.mean(rows["mosaic"])
    assert data["paired"]["gsp_slot - mosaic"]["revenue"]["diff"] == pytest.approx(expect)
    assert "`gsp_slot - mosaic`" in table

    # Resume: the same config reads every batch from the checkpoints; no generation at all.
    before = backend.calls
    res2 = lb.run_leaderboard(cfg, backend=backend, click_model=users)
    assert backend.calls == before
    assert json.dumps(res2["mechanisms"]) == json.dumps(res["mechanisms"])  # NaN-safe comparison

    # Reuse: rows read from that folder's per_query.csv instead of run; same numbers, no generation,
    # the source named in the table; a run with another config is refused.
    import dataclasses

    cfg3 = dataclasses.replace(cfg, out=str(tmp_path / "lb3"), mechanisms=("pretrained", "gsp_slot"), compare=(),
                               reuse={"pretrained": str(out), "gsp_slot": str(out)})
    res3 = lb.run_leaderboard(cfg3, backend=backend, click_model=users)
    assert backend.calls == before
    for name in ("pretrained", "gsp_slot"):
        assert json.dumps(res3["mechanisms"][name]) == json.dumps(res["mechanisms"][name])
    assert "`gsp_slot` read from an earlier run" in (tmp_path / "lb3" / "table.md").read_text()
    with pytest.raises(ValueError, match="different seed"):
        lb.run_leaderboard(dataclasses.replace(cfg3, seed=4), backend=backend, click_model=users)
    with pytest.raises(ValueError, match="not in mechanisms"):
        dataclasses.replace(cfg3, reuse={"mosaic": str(out)})
    # Fields only MOSAIC reads do not bind the other rows: another tau still reuses them, not MOSAIC's.
    cfg4 = dataclasses.replace(cfg3, out=str(tmp_path / "lb4"), mosaic_tau=cfg.mosaic_tau * 2)
    res4 = lb.run_leaderboard(cfg4, backend=backend, click_model=users)
    assert backend.calls == before and json.dumps(res4["mechanisms"]) == json.dumps(res3["mechanisms"])
    with pytest.raises(ValueError, match="different mosaic_tau"):
        lb.run_leaderboard(dataclasses.replace(cfg4, mechanisms=("pretrained", "mosaic"), reuse={"mosaic": str(out)}),
                           backend=backend, click_model=users)
    assert f"tau={cfg.mosaic_tau:g}" in data["mechanisms"]["mosaic"]["label"]

    # Expected reward: Eq. 8 with the user's exact click probability of each valid ad, checked
    # against the click model directly on the stored responses.
    from llm_auction_env.data import load_dataset
    from llm_auction_env.instances import make_instances
    from llm_auction_env.scoring import parse_batch
    from llm_auction_env.reward import exposure_vector

    insts = make_instances(load_dataset(), "test", 3, 5, rng=3, bids="uniform")
    recs = [r for b in lb._load_checkpoint(out / "checkpoints" / "gsp_slot.jsonl", None).values() for r in b]
    parsed = parse_batch([(i, r["response"]) for i, r in zip(insts, recs)])
    for (inst, resp), probs, r in zip(parsed, users.click_probs(parsed), recs):
        p = np.array([probs.get(a.ad_id, 0.0) for a in inst.ads])
        assert r["expected_revenue"] == pytest.approx(float(np.sum(inst.bids * p * exposure_vector(inst, resp.placements))))
        assert r["expected_reward"] == pytest.approx(r["expected_revenue"] - r["penalty"])
    assert any(r["n_ads"] for r in recs)  # the GSP slot always inserts: the check above is not vacuous
    # Records written before the expected fields existed (checkpoint and per_query.csv) are scored
    # again from their responses: a resumed or reused row gets the same numbers, still without generating.
    import csv

    for ck in (out / "checkpoints").glob("*.jsonl"):
        lines = ck.read_text().splitlines()
        strip = [lines[0]] + [json.dumps({**b, "records": [{k: v for k, v in r.items() if k not in lb.EXPECTED_FIELDS}
                                                             for r in b["records"]]}) for b in map(json.loads, lines[1:])]
        ck.write_text("\n".join(strip) + "\n")
    res5 = lb.run_leaderboard(cfg, backend=backend, click_model=users)
    assert backend.calls == before and json.dumps(res5["mechanisms"]) == json.dumps(res["mechanisms"])
    with open(out / "per_query.csv", newline="") as f:
        old_rows = [{k: v for k, v in r.items() if k not in lb.EXPECTED_FIELDS} for r in csv.DictReader(f)]
    with open(out / "per_query.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(old_rows[0]))
        w.writeheader()
        w.writerows(old_rows)
    res6 = lb.run_leaderboard(dataclasses.replace(cfg3, out=str(tmp_path / "lb6")), backend=backend, click_model=users)
    assert backend.calls == before and json.dumps(res6["mechanisms"]) == json.dumps(res3["mechanisms"])
    # A row is reused only if it ran what this config would run: same config and kwargs, and the
    # same model weights, prompt template and adapter (the checkpoint header's fingerprint).
    from llm_auction_env.llm import models

    warm = tmp_path / "other-warm-start"
    warm.mkdir()
    (warm / "adapter_config.json").write_text("{}")
    (warm / "adapter_model.safetensors").write_bytes(b"retrained")
    monkeypatch.setattr(models, "WARMSTART_DIR", warm)
    with pytest.raises(ValueError, match="reuse 'pretrained': .* ran another model, prompt template"):
        lb.run_leaderboard(dataclasses.replace(cfg3, out=str(tmp_path / "lb7")), backend=backend, click_model=users)
    monkeypatch.undo()
    ck = out / "checkpoints" / "gsp_slot.jsonl"
    ck.write_text("a header lost\n" + ck.read_text().split("\n", 1)[1])
    with pytest.raises(ValueError, match="reuse 'gsp_slot': cannot read the fingerprint"):
        lb.run_leaderboard(dataclasses.replace(cfg3, out=str(tmp_path / "lb8")), backend=backend, click_model=users)
    assert backend.calls == before


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        lb.main(["--help"])
    assert e.value.code == 0
    assert "--preset" in capsys.readouterr().out


def test_compare_option():
    args = lb.build_parser().parse_args(["--compare", "llm_auction:mosaic", "--compare", "gsp_slot:pretrained"])
    assert lb.config_from_args(args).compare == (("llm_auction", "mosaic"), ("gsp_slot", "pretrained"))
    assert lb.config_from_args(lb.build_parser().parse_args([])).compare == lb.COMPARISONS
    with pytest.raises(SystemExit, match="A:B"):
        lb.config_from_args(lb.build_parser().parse_args(["--compare", "mosaic"]))
    with pytest.raises(ValueError, match="two different rows"):
        lb.LeaderboardConfig(compare=(("mosaic", "mosaic"),))


def test_mechanism_kwargs_option(capsys):
    args = lb.build_parser().parse_args(["--mechanism-kwargs", '{"llm_auction": {"adapter": "runs/x"}}'])
    assert lb.config_from_args(args).mechanism_kwargs == {"llm_auction": {"adapter": "runs/x"}}
    for bad in ('{"llm_auction": ', '{"llm_auction": 3}'):
        with pytest.raises(SystemExit):
            lb.build_parser().parse_args(["--mechanism-kwargs", bad])
        assert "--mechanism-kwargs" in capsys.readouterr().err


def test_presets():
    q, p = lb.LeaderboardConfig.from_preset("quick"), lb.LeaderboardConfig.from_preset("paper")
    assert (q.n_queries, q.k_ads, q.mosaic_m, q.sampling.max_new_tokens, q.prompt_style) == (30, 10, 4, 128, "compact")
    assert (p.n_queries, p.k_ads, p.mosaic_m) == (3000, 100, 20)
    with pytest.raises(ValueError, match="preset"):
        lb.LeaderboardConfig.from_preset("huge")


def test_checkpoint_fingerprint_follows_the_served_adapter(tmp_path):
    """Retrained weights at the same adapter path must not reuse checkpointed rows."""
    class Served:
        def __init__(self, adapter):
            self.adapter = adapter

    adapter = tmp_path / "policy"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-1")
    cfg = lb.LeaderboardConfig()
    first = lb._fingerprint("llm_auction", cfg, Served(adapter))
    assert lb._fingerprint("llm_auction", cfg, Served(adapter)) == first
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-2")
    assert lb._fingerprint("llm_auction", cfg, Served(adapter)) != first
    assert lb._fingerprint("pretrained", cfg) == lb._fingerprint("pretrained", cfg, object())  # no adapter: config only


def test_checkpoint_fingerprint_follows_the_warm_start_and_the_prompt(tmp_path, monkeypatch):
    """A new shipped warm start (the ``embedded`` model) or a changed prompt template must not reuse
    checkpointed rows (a demo once resumed a leaderboard made with the previous warm start)."""
    from llm_auction_env import prompts
    from llm_auction_env.llm import models

    cfg = lb.LeaderboardConfig()
    assert cfg.model == "embedded"
    first = lb._fingerprint("pretrained", cfg)
    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "adapter_config.json").write_text("{}")
    (warm / "adapter_model.safetensors").write_bytes(b"other warm start")
    monkeypatch.setattr(models, "WARMSTART_DIR", warm)
    second = lb._fingerprint("pretrained", cfg)
    assert second != first
    monkeypatch.setattr(prompts, "ad_llm_chat", lambda inst, style="paper": [{"role": "user", "content": "changed"}])
    assert lb._fingerprint("pretrained", cfg) != second


def test_label_says_when_a_row_decodes_with_constrained_markup():
    """A row run with ``constrain_ads`` (the format-error-free ablation) is labelled so in the table."""
    from types import SimpleNamespace

    from mechanisms.mosaic import MosaicConfig
    from mechanisms.pretrained import PretrainedConfig

    cfg = lb.LeaderboardConfig()
    plain = SimpleNamespace(config=PretrainedConfig(prompt_style=cfg.prompt_style))
    assert lb.label("pretrained", plain, cfg) == "pretrained"
    constrained = SimpleNamespace(config=PretrainedConfig(prompt_style=cfg.prompt_style, constrain_ads=True))
    assert lb.label("pretrained", constrained, cfg) == "pretrained (constrained markup)"
    mos = SimpleNamespace(config=MosaicConfig(n_candidates=4, tau=1.0, importance_weights=False, constrain_ads=True))
    assert "constrained markup" in lb.label("mosaic", mos, cfg)
    assert "constrained markup" not in lb.label("mosaic", SimpleNamespace(config=MosaicConfig()), cfg)


def test_mechanism_kwargs_sampling_dict_replaces_only_its_fields_and_shows_in_the_label():
    """``--mechanism-kwargs '{"pretrained": {"sampling": {"temperature": 0.3}}}'``: JSON gives a
    dict; the row samples with the table's settings except the fields named, says so in its label,
    and a misspelt field is a clear error."""
    from types import SimpleNamespace

    from mechanisms.pretrained import PretrainedConfig

    cfg = lb.LeaderboardConfig.from_preset("quick")
    cfg = dataclasses.replace(cfg, mechanism_kwargs={"pretrained": {"sampling": {"temperature": 0.3}}})
    kw = lb.mechanism_kwargs("pretrained", cfg, backend=object(), click_model=SimpleNamespace(click_probs=None))
    assert kw["sampling"] == dataclasses.replace(cfg.sampling, temperature=0.3)
    mech = SimpleNamespace(config=PretrainedConfig(prompt_style=cfg.prompt_style, sampling=kw["sampling"]))
    assert lb.label("pretrained", mech, cfg) == "pretrained (temperature 0.3)"
    plain = SimpleNamespace(config=PretrainedConfig(prompt_style=cfg.prompt_style, sampling=cfg.sampling))
    assert lb.label("pretrained", plain, cfg) == "pretrained"
    bad = dataclasses.replace(cfg, mechanism_kwargs={"pretrained": {"sampling": {"temprature": 0.3}}})
    with pytest.raises(ValueError, match="temprature"):
        lb.mechanism_kwargs("pretrained", bad, backend=object(), click_model=SimpleNamespace(click_probs=None))
