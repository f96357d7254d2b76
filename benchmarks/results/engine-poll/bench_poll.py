"""Throughput of one embedded llama-server at a given --poll level (s21).
usage: bench_poll.py POLL THREADS OUT.json  -- 32 chats x 64 tokens, after a warm-up call."""
import json, sys, time
from llm_auction_env.llm.llamacpp_backend import LlamaCppBackend
from llm_auction_env.llm.base import Sampling
poll, threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
be = LlamaCppBackend(threads=threads, server_args=["--poll", poll]).start()
chats = [[{"role": "user", "content": f"Write a short tip about topic number {i} for hikers."}] for i in range(32)]
s = Sampling(max_new_tokens=64, min_new_tokens=64, temperature=0.7, top_p=0.8, top_k=20, seed=0)
be.generate(chats[:4], 1, s)
t0 = time.monotonic(); be.generate(chats, 1, s); dt = time.monotonic() - t0
toks = 32 * 64
json.dump({"poll": poll, "threads": threads, "seconds": dt, "tok_per_s": toks / dt, "t_end": time.time()}, open(out, "w"))
print(poll, threads, f"{dt:.1f}s {toks/dt:.1f} tok/s")
be.close()
