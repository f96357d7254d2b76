"""OpenAI-compatible backend against a local fake server (127.0.0.1, ephemeral port).

Each fake endpoint is a path prefix with its own behaviour: ``/ok``, ``/slow`` (first request sleeps
past the client timeout), ``/flaky`` (two 500s, then fine), ``/down`` (always 503), ``/busy`` (one
429 with Retry-After, then fine), ``/garbage`` (200 with non-JSON), ``/bad`` (400), ``/noecho``
(400 on /completions). Timeouts and backoff are tiny so the file runs in a few seconds.
"""
from __future__ import annotations

import json
import re
import logging
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llm_auction_env.llm import Sampling, make_backend
from llm_auction_env.llm.openai_backend import BackendRequestError, BackendResponseError, OpenAIBackend

SECRET = "sk-test-SECRET-0123456789"
CHAT = [{"role": "user", "content": "Where can I buy running shoes?"}]


class FakeServer:
    def __init__(self):
        self.hits: Counter = Counter()
        self.bodies: dict[str, list] = defaultdict(list)
        self.auth: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status, payload, headers=()):
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                mode, _, rest = self.path.strip("/").partition("/")
                server.hits[mode] += 1
                server.bodies[mode].append(body)
                server.auth.append(self.headers.get("Authorization"))
                k = server.hits[mode]
                if mode == "slow" and k == 1:
                    time.sleep(0.6)
                if mode == "flaky" and k <= 2:
                    return self._send(500, {"error": "boom"})
                if mode == "down":
                    return self._send(503, {"error": "unavailable"})
                if mode == "busy" and k == 1:
                    return self._send(429, {"error": "slow down"}, [("Retry-After", "0.05")])
                if mode == "garbage":
                    return self._send(200, b"<html>definitely not json")
                if mode == "bad":
                    return self._send(400, {"error": "bad request"})
                if rest.endswith("chat/completions"):
                    n = body.get("n", 1)
                    choices = [
                        {"index": i, "message": {"role": "assistant", "content": f"{mode} answer {i}"},
                         "finish_reason": "stop"} for i in range(n)
                    ]
                    return self._send(200, {"choices": choices, "usage": {"prompt_tokens": 11, "completion_tokens": 3 * n}})
                if rest.endswith("completions") and mode == "llama":
                    # llama-server: echo is ignored; a grammar of <[id]> tokens forces them (logprobs.content)
                    if "grammar" in body:
                        ids = [int(t) for t in re.findall(r"<\[(\d+)\]>", body["grammar"])]
                        content = [{"id": t, "logprob": -0.01 * (t % 100)} for t in ids]
                        return self._send(200, {"choices": [{"text": "", "logprobs": {"content": content}}]})
                    if isinstance(body.get("prompt"), list):
                        n = body.get("n", 1)
                        choices = [{"index": i, "text": f"tok {i}", "finish_reason": "length"} for i in range(n)]
                        return self._send(200, {"choices": choices, "usage": {"prompt_tokens": len(body["prompt"]),
                                                                              "completion_tokens": 2 * n}})
                    return self._send(200, {"choices": [{"text": "x", "logprobs": None}]})
                if rest.endswith("completions"):
                    if mode == "noecho":
                        return self._send(400, {"error": "echo is not supported"})
                    ids = body["prompt"]
                    values = [None] + [-0.01 * (t % 100) for t in ids[1:]] + [-1.0]
                    return self._send(200, {"choices": [{"text": "", "logprobs": {"token_logprobs": values}}]})
                return self._send(404, {"error": "no such route"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, mode):
        return f"http://127.0.0.1:{self.port}/{mode}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def backend(server, *modes, **kw):
    cfg = dict(model="fake-model", timeout=0.3, max_retries=3, backoff=0.01, max_backoff=0.1, seed=0)
    cfg.update(kw)
    return make_backend("openai", endpoints=[server.url(m) for m in modes], **cfg)


def test_normal_request_n_samples_and_body(server):
    be = backend(server, "ok")
    out = be.generate([CHAT, CHAT], n=3, sampling=Sampling(seed=5, stop=("\n\n",), min_new_tokens=4))
    assert [[c.text for c in row] for row in out] == [[f"ok answer {i}" for i in range(3)]] * 2
    assert out[0][0].prompt_tokens == 11 and out[0][0].completion_tokens == 3
    body = server.bodies["ok"][0]
    assert body["n"] == 3 and body["temperature"] == 0.7 and body["top_p"] == 0.8 and body["top_k"] == 20
    assert body["messages"][0]["role"] == "system"  # a system message is always sent
    assert body["stop"] == ["\n\n"] and body["min_tokens"] == 4
    assert sorted(b["seed"] for b in server.bodies["ok"]) == [5, 6]  # one seed per prompt
    assert server.auth[0] == f"Bearer {SECRET}"
    assert be.stats["requests"] == 2 and be.stats["retries"] == 0


def test_progress_bar_keeps_order_and_results(server, capsys):
    be = backend(server, "ok")
    plain = be.generate([CHAT] * 3, n=2, sampling=Sampling(seed=5))
    shown = be.generate([CHAT] * 3, n=2, sampling=Sampling(seed=5), progress=True)
    assert [[c.text for c in r] for r in shown] == [[c.text for c in r] for r in plain]
    assert "3/3" in capsys.readouterr().err  # one bar step per finished request


def test_round_robin_over_endpoints(server):
    be = backend(server, "ok", "flaky")
    be.max_retries = 0
    server.hits["flaky"] = 10  # past its failures
    be.generate([CHAT] * 4)
    assert server.hits["ok"] == 2 and server.hits["flaky"] == 12


def test_slow_endpoint_times_out_then_retry_succeeds(server):
    be = backend(server, "slow")
    out = be.generate([CHAT])
    assert out[0][0].text == "slow answer 0"
    assert be.stats["retries"] == 1 and server.hits["slow"] == 2


def test_5xx_then_success(server):
    be = backend(server, "flaky")
    assert be.generate([CHAT])[0][0].text == "flaky answer 0"
    assert be.stats["retries"] == 2


def test_permanent_failure_gives_clear_error_after_retries(server, caplog):
    be = backend(server, "down", max_retries=2)
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendRequestError, match="after 3 attempts.*HTTP 503"):
        be.generate([CHAT])
    assert server.hits["down"] == 3 and be.stats["failed"] == 1


def test_429_backs_off_with_retry_after(server):
    be = backend(server, "busy", backoff=0.0001)
    start = time.perf_counter()
    assert be.generate([CHAT])[0][0].text == "busy answer 0"
    assert time.perf_counter() - start >= 0.05  # honoured Retry-After
    assert be.stats["retries"] == 1


def test_4xx_is_not_retried(server):
    be = backend(server, "bad")
    with pytest.raises(BackendRequestError, match="HTTP 400"):
        be.generate([CHAT])
    assert server.hits["bad"] == 1


def test_garbage_response_is_a_clear_counted_error(server):
    be = backend(server, "garbage")
    with pytest.raises(BackendResponseError, match="invalid response"):
        be.generate([CHAT, CHAT])
    assert be.stats["invalid_responses"] >= 1 and server.hits["garbage"] <= 2


def test_connection_refused_is_retried_then_fails(server):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    be = make_backend("openai", model="m", endpoints=[f"http://127.0.0.1:{dead}/v1"], timeout=0.3, max_retries=1, backoff=0.01)
    with pytest.raises(BackendRequestError, match="after 2 attempts"):
        be.generate([CHAT])


def test_key_never_in_logs_errors_or_repr(server, caplog):
    be = backend(server, "down", "bad", max_retries=3)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(BackendRequestError) as info:
            be.generate([CHAT])
    assert caplog.records, "retries should have been logged"
    assert SECRET not in caplog.text
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert SECRET not in repr(be) and "api_key=<set>" in repr(be)
    assert info.value.__cause__ is None or SECRET not in str(info.value.__cause__)


def test_logprobs_via_echo(server, smollm2_tokenizer):
    be = backend(server, "ok", tokenizer=smollm2_tokenizer)
    comps = ["Try @Running Shoes@[Ad-1] today.", ""]
    got = be.logprobs([CHAT, CHAT], comps)
    tok = smollm2_tokenizer
    c_ids = tok.encode(comps[0], add_special_tokens=False)
    assert got[0] == pytest.approx(sum(-0.01 * (t % 100) for t in c_ids), abs=1e-9)
    assert got[1] == 0.0
    body = server.bodies["ok"][0]
    assert body["echo"] is True and body["prompt"][-len(c_ids):] == c_ids


def test_logprobs_unsupported_is_not_implemented(server, smollm2_tokenizer):
    with pytest.raises(NotImplementedError, match="tokenizer"):
        backend(server, "ok").logprobs([CHAT], ["x"])
    with pytest.raises(NotImplementedError, match="echo"):
        backend(server, "noecho", tokenizer=smollm2_tokenizer).logprobs([CHAT], ["x"])


def test_rejects_bad_config():
    with pytest.raises(ValueError):
        OpenAIBackend(endpoints=[])


def test_logprobs_forced_and_auto_for_llama_server(server, smollm2_tokenizer):
    comp = "Try @Running Shoes@[Ad-1] today."
    c_ids = smollm2_tokenizer.encode(comp, add_special_tokens=False)
    want = sum(-0.01 * (t % 100) for t in c_ids)
    with pytest.raises(BackendResponseError, match="logprobs_method"):  # echo ignored: clear message
        backend(server, "llama", tokenizer=smollm2_tokenizer).logprobs([CHAT], [comp])
    forced = backend(server, "llama", tokenizer=smollm2_tokenizer, logprobs_method="forced")
    assert forced.logprobs([CHAT], [comp])[0] == pytest.approx(want, abs=1e-9)
    body = server.bodies["llama"][-1]
    assert body["max_tokens"] == len(c_ids) and body["post_sampling_probs"] is False and "echo" not in body
    auto = backend(server, "llama", tokenizer=smollm2_tokenizer, logprobs_method="auto")
    assert auto.logprobs([CHAT, CHAT], [comp, ""])[0] == pytest.approx(want, abs=1e-9)
    assert auto.logprobs_method == "forced"  # remembered after the first echo without prompt log-probs


def test_forced_logprobs_checks_the_returned_tokens(server, smollm2_tokenizer):
    be = backend(server, "ok", tokenizer=smollm2_tokenizer, logprobs_method="forced")  # no grammar support
    with pytest.raises(BackendResponseError, match="exactly the completion's tokens"):
        be.logprobs([CHAT], ["hello there"])


def test_token_prompts_and_capabilities(server, smollm2_tokenizer):
    from llm_auction_env.llm.base import BackendCapabilityError, supports
    from llm_auction_env.types import Ad

    be = backend(server, "llama", tokenizer=smollm2_tokenizer, prompt_format="tokens", extra_body={"min_p": 0.0})
    out = be.generate([CHAT], n=2)
    assert [c.text for c in out[0]] == ["tok 0", "tok 1"]
    body = server.bodies["llama"][-1]
    assert body["prompt"] == be.prompt_ids(CHAT) and body["min_p"] == 0.0 and "messages" not in body
    assert be.chat_text(CHAT).endswith("<|im_start|>assistant\n")
    assert supports(be, "chat_text") and not supports(be, "load_adapter")
    with pytest.raises(BackendCapabilityError, match="openai backend does not support load_adapter"):
        be.load_adapter("x")
    with pytest.raises(BackendCapabilityError, match="constrain_ads"):
        be.generate([CHAT], constrain_ads=[[Ad("Ad-1", "Shoes")]])
    plain = backend(server, "ok")
    assert not supports(plain, "chat_text")
    with pytest.raises(BackendCapabilityError, match="chat_text"):
        plain.chat_text(CHAT)
    with pytest.raises(ValueError, match="tokenizer"):
        backend(server, "ok", prompt_format="tokens")
