"""The llama.cpp engine against a real ``llama-server`` on the embedded Ad-LLM.

Skipped only when the binary is absent and this is not CI (``CI`` or ``LLM_AUCTION_REQUIRE_ENGINE``
set: then a missing binary fails). The server runs on 127.0.0.1 with the F32 GGUF (the transformers
backend's weights exactly) for the exactness checks and the BF16 GGUF (the default) for the
faithfulness check.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import numpy as np
import pytest

from llm_auction_env.llm.base import BackendCapabilityError, Sampling, supports
from llm_auction_env.llm.llama_server import LlamaServerError, find_llama_server
from llm_auction_env.types import Ad

REQUIRED = bool(os.environ.get("CI") or os.environ.get("LLM_AUCTION_REQUIRE_ENGINE"))
if find_llama_server() is None:
    if REQUIRED:
        raise RuntimeError("llama-server is required here (CI) but not installed; run `make engine`")
    pytest.skip("llama-server is not installed (build it with `make engine`)", allow_module_level=True)

from llm_auction_env.llm.llamacpp_backend import LlamaCppBackend, trim_unfinished  # noqa: E402
from llm_auction_env.parsing import placements  # noqa: E402

ADS = [
    Ad("Ad-1021", "Trailblazer Running Shoes"),
    Ad("Ad-1187", "Coastal Family Resorts"),
    Ad("Ad-1302", "GreenStart Oat Bowls"),
]
SYSTEM = (
    "You are a helpful assistant. You may insert one relevant ad from this list, written exactly as "
    "@Ad Title@[Ad-ID]:\n" + "\n".join(f"- [{a.ad_id}] {a.title}" for a in ADS)
)
CHATS = [
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
    for q in ("Where can I buy running shoes for a marathon?", "Plan a weekend at the coast with kids.",
              "What is a healthy breakfast before a workout?")
]
SHORT = Sampling(max_new_tokens=16, seed=3)


@pytest.fixture(scope="module")
def hf():
    from llm_auction_env.llm.transformers_backend import TransformersBackend

    return TransformersBackend("embedded", threads=2)


@pytest.fixture(scope="module")
def engine():
    backend = LlamaCppBackend(gguf="f32", slots=8, ctx=8192)
    yield backend.start()
    backend.close()


def test_generate_n_seeds_and_max_tokens(engine):
    out = engine.generate(CHATS[:2], n=3, sampling=SHORT)
    assert [len(row) for row in out] == [3, 3]
    for row in out:
        for c in row:
            assert 0 < c.completion_tokens <= 16 and c.prompt_tokens > 50
            assert c.finish_reason in ("stop", "length") and c.text
            assert engine.tokenizer.decode(c.extra["token_ids"], skip_special_tokens=True) == c.text
    texts = [c.text for row in out for c in row]
    assert len(set(texts)) > 1  # the n samples are independent draws
    again = engine.generate(CHATS[:2], n=3, sampling=SHORT)
    assert [c.text for row in again for c in row] == texts  # seeded
    long = engine.generate(CHATS[:1], sampling=dataclasses.replace(SHORT, max_new_tokens=12, min_new_tokens=12))
    assert long[0][0].completion_tokens == 12 and long[0][0].finish_reason == "length"


def test_greedy_matches_transformers_and_stop_strings(engine, hf):
    greedy = dataclasses.replace(SHORT, temperature=0.0, max_new_tokens=12)
    ours = engine.generate(CHATS, sampling=greedy)
    ref = hf.generate(CHATS, sampling=greedy)
    agree = sum(a[0].text == b[0].text for a, b in zip(ours, ref))
    assert agree >= 2, [(a[0].text, b[0].text) for a, b in zip(ours, ref)]  # F32: same weights, tiny rounding
    text = ours[0][0].text
    words = text.split()
    stop = words[2]
    cut = engine.generate(CHATS[:1], sampling=dataclasses.replace(greedy, stop=(stop,)))[0][0]
    assert cut.finish_reason == "stop" and cut.text == text[: text.index(stop)]


def test_logprobs_match_transformers(engine, hf):
    comps = [row[0] for row in engine.generate(CHATS, sampling=SHORT)]
    ours = engine.logprobs(CHATS, comps)
    ref = hf.logprobs(CHATS, comps)
    np.testing.assert_allclose(ours, ref, atol=0.02 * 16)  # per-token tolerance 0.02 nats
    strings = engine.logprobs(CHATS[:1], ["Try the running shoes."])
    np.testing.assert_allclose(strings, hf.logprobs(CHATS[:1], ["Try the running shoes."]), atol=0.1)


def test_grammar_constrained_markup_has_no_format_errors(engine):
    at_tokens = [i for i, b in enumerate(engine.token_bytes()) if b and b.lstrip(b" ").startswith(b"@")]
    bias = {t: 10.0 for t in at_tokens}  # make the small model open insertions often
    sampling = dataclasses.replace(SHORT, max_new_tokens=32, temperature=1.0)
    out = engine.generate(CHATS, n=3, sampling=sampling, constrain_ads=[ADS] * 3, logit_bias=bias)
    errors, valid = 0, 0
    for row in out:
        for c in row:
            found = placements(c.text, ADS)
            errors += sum(p.error is not None for p in found)
            valid += sum(p.valid for p in found)
    assert errors == 0
    assert valid >= 3  # the grammar did make insertions, all well-formed


def test_trim_unfinished():
    assert trim_unfinished("Try @Trailblazer Run", ADS) == "Try "
    assert trim_unfinished("Try @Trailblazer Running Shoes@[Ad-1021] now", ADS).endswith(" now")
    assert trim_unfinished("mail me at a@b", ADS) == "mail me at a@b"


def test_adapter_served_per_request(engine, hf):
    from importlib.resources import files

    adapter = files("mechanisms") / "adapters" / "llm_auction_pctr" / "policy"
    comps = [row[0] for row in engine.generate(CHATS, sampling=SHORT)]
    base = engine.logprobs(CHATS, comps)
    ref_base = hf.logprobs(CHATS, comps)
    engine.load_adapter(str(adapter))
    try:
        tuned = engine.logprobs(CHATS, comps)
        hf.load_adapter(str(adapter))
        ref = hf.logprobs(CHATS, comps)
        # the adapter's effect on each completion's log-prob, engine vs transformers + peft
        assert np.abs(ref - ref_base).max() > 0.005
        np.testing.assert_allclose(tuned - base, ref - ref_base, atol=0.005 + 0.05 * np.abs(ref - ref_base).max())
        assert engine.generate(CHATS[:1], sampling=SHORT)[0][0].text
    finally:
        hf.load_adapter(None)
        engine.load_adapter(None)
    # per request: the base model again (equal up to batch-dependent rounding, ~1e-3 per token)
    np.testing.assert_allclose(engine.logprobs(CHATS, comps), base, atol=0.02)


def _prompt_tokens_served(server) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("llamacpp:prompt_tokens_total"))


def test_concurrent_threads_and_endpoints(engine):
    from llm_auction_env.llm.llama_server import LlamaServer
    from llm_auction_env.llm.openai_backend import OpenAIBackend

    second = LlamaServer(engine.gguf_path, slots=2, ctx=2048, threads=1).start()
    try:
        client = OpenAIBackend(model="x", endpoints=[engine.server.url, second.url], tokenizer=engine.tokenizer,
                               prompt_format="tokens", extra_body={"samplers": ["top_k", "temperature", "top_p"]})
        results, errors = {}, []

        def work(k, backend):
            try:
                results[k] = backend.generate(CHATS, n=2, sampling=dataclasses.replace(SHORT, max_new_tokens=8, seed=k))
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(k, engine if k % 2 else client)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors and len(results) == 4
        assert all(len(row) == 2 and all(c.text for c in row) for out in results.values() for row in out)
        assert client.stats["requests"] == 6 and client.stats["failed"] == 0 and client.stats["retries"] == 0
        assert _prompt_tokens_served(second) > 0  # the round-robin reached both servers
    finally:
        second.stop()
    assert not second.running


def test_capabilities_and_errors(engine):
    from llm_auction_env.llm.constrained import MarkupAid

    assert supports(engine, "load_adapter") and supports(engine, "constrain_ads")
    with pytest.raises(BackendCapabilityError, match="llamacpp.*open_bias"):
        engine.generate(CHATS[:1], sampling=SHORT, constrain_ads=[ADS], markup_aid=MarkupAid(open_bias=3.0))
    with pytest.raises(BackendCapabilityError, match="min_new_tokens"):
        engine.generate(CHATS[:1], sampling=dataclasses.replace(SHORT, min_new_tokens=2))


def _kill_during(backend, delay):
    def kill():
        time.sleep(delay)
        os.killpg(backend.server.process.pid, signal.SIGKILL)

    threading.Thread(target=kill, daemon=True).start()


def test_server_killed_mid_run_restarts_and_counts():
    backend = LlamaCppBackend(gguf="f32", slots=2, ctx=2048, auto_restart=1)
    try:
        backend.start()
        first = backend.server.process.pid
        _kill_during(backend, 0.5)
        out = backend.generate(CHATS[:2], sampling=Sampling(max_new_tokens=48, min_new_tokens=48, seed=1))
        assert [len(row) for row in out] == [1, 1] and backend.stats["restarts"] == 1
        assert backend.server.process.pid != first
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # no orphan left
    finally:
        backend.close()
    assert backend.server.process is None


@pytest.mark.parametrize("first_use", ["start", "generate"])
def test_server_stops_when_its_owner_is_killed(first_use):
    """SIGKILL of the process that started the server (no atexit runs) still stops the server, also
    when the owner never called ``start`` and the server came up for its first ``generate``, whose
    requests run in pool threads (session 29: a SIGTERM-ed IRPO run left such a server running)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("setpriv") is None:
        pytest.skip("needs util-linux setpriv (without it only atexit stops the server)")
    use = "b.start()" if first_use == "start" else (
        "from llm_auction_env.llm.base import Sampling\n"
        "b.generate([[{'role': 'user', 'content': 'Hi'}]], n=2, sampling=Sampling(max_new_tokens=4, seed=1))")
    code = ("from llm_auction_env.llm.llamacpp_backend import LlamaCppBackend\n"
            "b = LlamaCppBackend(gguf='f32', slots=2, ctx=1024)\n"
            f"{use}\n"
            "print(b.server.process.pid, flush=True)\n"
            "import time; time.sleep(300)\n")
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        server = int(owner.stdout.readline())
        os.kill(server, 0)  # running
        owner.kill()
        owner.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                state = open(f"/proc/{server}/stat").read().split(")")[-1].split()[0]
            except FileNotFoundError:
                break
            if state == "Z":  # exited, not yet reaped by init
                break
            time.sleep(0.2)
        else:
            os.killpg(server, signal.SIGKILL)
            pytest.fail("llama-server outlived the process that started it")
    finally:
        owner.kill()


def test_server_killed_without_restart_names_the_log():
    backend = LlamaCppBackend(gguf="f32", slots=2, ctx=2048, auto_restart=0)
    try:
        backend.start()
        log = str(backend.server.log_path)
        _kill_during(backend, 0.5)
        with pytest.raises(LlamaServerError, match="died") as err:
            backend.generate(CHATS[:1], sampling=Sampling(max_new_tokens=64, min_new_tokens=64, seed=1))
        assert log in str(err.value)
    finally:
        backend.close()


def test_bad_model_file_fails_with_the_log(tmp_path):
    from llm_auction_env.llm.llama_server import LlamaServer

    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a gguf file")
    server = LlamaServer(bogus, slots=1, ctx=256, log_dir=tmp_path)
    with pytest.raises(LlamaServerError, match="exited with code") as err:
        server.start()
    assert str(tmp_path) in str(err.value) and not server.running


def test_servers_sleep_while_waiting_unless_told_otherwise(engine):
    """`--poll 0` reaches the process (spinning servers starve each other on shared cores); a
    user's `extra_args` come last and win; a level outside llama.cpp's range is refused."""
    from llm_auction_env.llm.llama_server import LlamaServer

    def served_poll(server):
        from pathlib import Path

        args = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().split(b"\0")
        return [args[i + 1].decode() for i, a in enumerate(args[:-1]) if a == b"--poll"]

    assert served_poll(engine.server) == ["0"]
    spinning = LlamaServer(engine.gguf_path, slots=1, ctx=256, threads=1, extra_args=["--poll", "50"]).start()
    try:
        assert served_poll(spinning) == ["0", "50"]  # the last one is the one llama.cpp keeps
    finally:
        spinning.stop()
    with pytest.raises(ValueError, match="poll"):
        LlamaServer(engine.gguf_path, poll=101)


def _next_token_reference(hf, chat, s):
    """The fp32 transformers next-token distribution after top-k, temperature, top-p (in that order)."""
    import torch

    ids = torch.tensor([hf.tokenizer(hf.chat_text(chat), add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        logits = hf.model(input_ids=ids).logits[0, -1].float()
    values, index = torch.topk(logits / s.temperature, s.top_k)
    probs = values.softmax(-1)
    probs = probs.masked_fill(probs.cumsum(-1) - probs >= s.top_p, 0.0)
    return {int(t): float(p) for t, p in zip(index, probs / probs.sum()) if p > 0}


def _chi_square_p(counts: dict[int, int], dist: dict[int, float]) -> float:
    from scipy import stats

    keys = sorted(dist)
    observed = np.array([counts.get(t, 0) for t in keys], dtype=float)
    expected = np.array([dist[t] for t in keys]) * observed.sum()
    big = expected >= 5  # pool rare tokens into one cell
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


@pytest.mark.parametrize("gguf, tv_max", [("f32", 0.02), ("bf16", 0.1)])
def test_next_token_distribution_matches_fp32(engine, hf, gguf, tv_max):
    """The engine's exact post-sampling next-token distribution (top-k 20, temperature 0.7, top-p 0.8)
    against the transformers fp32 model the trainer scores: total variation below ``tv_max`` for
    each prompt (F32 GGUF: 0.02; the default BF16 GGUF: 0.1; measured on the 8 benchmark prompts:
    F32 mean 0.003 / max 0.009, BF16 mean 0.006 / max 0.009; 0.055 on this file's first prompt).
    400 seeded draws per prompt: for F32 they pass chi-square tests (p > 1e-3) of the distribution
    the engine reports and of the fp32 distribution, and never leave the fp32 top-k / top-p set; for
    BF16 (whose logits differ slightly between the prompt-batch and single-token kernels) their
    empirical total variation from fp32 stays below ``tv_max`` plus one standard deviation."""
    s = Sampling()
    backend = engine if gguf == "f32" else LlamaCppBackend(gguf=gguf, slots=8, ctx=4096)
    try:
        for chat in CHATS[:2]:
            ref = _next_token_reference(hf, chat, s)
            body = backend._chat_body(chat, 1, dataclasses.replace(s, max_new_tokens=1, seed=0), 0)
            body.update(logprobs=s.top_k, post_sampling_probs=True)
            top = backend._post("/completions", body)["choices"][0]["logprobs"]["content"][0]["top_probs"]
            ours = {int(t["id"]): float(t["prob"]) for t in top}
            tv = 0.5 * sum(abs(ref.get(t, 0.0) - ours.get(t, 0.0)) for t in set(ref) | set(ours))
            assert tv < tv_max, (tv, ref, ours)
            draws = backend.generate([chat], n=400, sampling=dataclasses.replace(s, max_new_tokens=1, seed=11))[0]
            counts: dict[int, int] = {}
            for c in draws:
                tok = c.extra["token_ids"][0]
                counts[tok] = counts.get(tok, 0) + 1
            assert sum(counts.values()) == 400
            if gguf == "f32":
                assert set(counts) <= set(ref) | set(ours)
                assert set(counts) <= set(ref)
                assert _chi_square_p(counts, ours) > 1e-3 and _chi_square_p(counts, ref) > 1e-3
            else:  # BF16 logits depend on the kernel path (prompt batch vs one token): compare with fp32
                freq = {t: c / 400 for t, c in counts.items()}
                empirical_tv = 0.5 * sum(abs(ref.get(t, 0.0) - freq.get(t, 0.0)) for t in set(ref) | set(freq))
                noise = 0.5 * sum(np.sqrt(p / 400) for p in ref.values())  # ~1 sd of the empirical TV
                assert empirical_tv < tv_max + noise, (empirical_tv, noise)
    finally:
        if backend is not engine:
            backend.close()


def test_requests_in_flight_fill_the_slots_and_no_more(engine, monkeypatch):
    """With ``n`` sequences per request, at most ``slots // n`` requests are in flight: the server
    never queues one, whose wait would count against its own HTTP timeout."""
    from llm_auction_env.llm.base import Completion

    lock, live, peak = threading.Lock(), [0], [0]

    def fake_one(chat, k, sampling, seed, extra=None):
        with lock:
            live[0] += k
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= k
        return [Completion("x", 1, 1)] * k

    monkeypatch.setattr(engine, "_one", fake_one)
    for n, most in ((3, 6), (1, 8), (20, 8)):  # 8 slots: 2 requests of 3, 8 of 1, one request of 8 at a time
        peak[0] = 0
        out = engine.generate(CHATS * 6, n=n, sampling=SHORT)
        assert [len(row) for row in out] == [n] * 18
        assert peak[0] == most, (n, peak[0])
