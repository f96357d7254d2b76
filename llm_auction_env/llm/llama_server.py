"""llama.cpp's ``llama-server`` as a managed local process, and LoRA adapters converted for it.

The binary is built once by ``scripts/build_llama_server.sh`` (``make engine``; ``make test`` depends
on it) from the llama.cpp sources vendored in the ``llama-cpp-python`` sdist on PyPI, into
``<cache>/llama.cpp/<version>/bin/llama-server``.

=======================  ======================================================================================
``find_llama_server()``  ``$LLAMA_SERVER_BIN`` if set, else the cached build, else ``llama-server`` on ``PATH``;
                         ``None`` when there is none
``LlamaServer``          one server process: ``start()`` picks a free port on 127.0.0.1, waits for ``/health``,
                         and raises ``LlamaServerError`` naming the log file when the process fails to start or
                         dies; ``stop()`` ends its process group; every started server is stopped at exit, and
                         by the kernel when the starting process is killed (``setpriv --pdeathsig``)
``lora_gguf(adapter)``   a peft LoRA folder converted once to a GGUF LoRA with the vendored
                         ``convert_lora_to_gguf.py``, cached under ``<cache>/lora-gguf/<sha256 of its files>``
=======================  ======================================================================================

Server flags: ``-t threads -c ctx -np slots`` (each slot gets ``ctx / slots`` tokens), ``--poll 0``
(threads sleep instead of spinning while they wait for work: the same speed alone, and three times the
speed when two servers share two cores; see ``LlamaServer``), ``--lora`` for every
adapter given, with ``--lora-init-without-apply`` so a request chooses its adapter (the ``lora`` field:
``[{"id": i, "scale": 1.0}]``) and the base model stays the default. Logs go to
``<cache>/logs/llama-server-<port>.log``.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Sequence

from .models import adapter_hash, cache_dir

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
"""Version of the llama-cpp-python sdist whose vendored llama.cpp the build script compiles."""
BUILD_HINT = "build it with `make engine` (or scripts/build_llama_server.sh; ~4-7 min on 2 cores)"


class LlamaServerError(RuntimeError):
    """The server binary is missing, or the server failed to start or died (message names the log)."""


def engine_dir() -> Path:
    """Where the build script installs the binary and the vendored converter scripts."""
    return cache_dir() / "llama.cpp" / LLAMA_CPP_PYTHON_VERSION


def find_llama_server() -> Path | None:
    """The ``llama-server`` binary to use, or ``None`` (see the module docstring for the order)."""
    env = os.environ.get("LLAMA_SERVER_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    built = engine_dir() / "bin" / "llama-server"
    if built.is_file() and (engine_dir() / ".complete").is_file():
        return built
    found = shutil.which("llama-server")
    return Path(found) if found else None


def require_llama_server() -> Path:
    binary = find_llama_server()
    if binary is None:
        raise LlamaServerError(f"llama-server is not installed; {BUILD_HINT}")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIVE: "weakref.WeakSet[LlamaServer]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _dies_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` run through util-linux ``setpriv --pdeathsig KILL``: the kernel kills the server when
    the process that started it dies, even by SIGKILL or an unhandled SIGTERM, where ``atexit``
    never runs. Only when started from the main thread (the signal fires when the starting *thread*
    exits) and where ``setpriv`` exists; otherwise ``cmd`` unchanged (``atexit`` still stops it).

    KILL, not TERM: the kernel sends the death signal again each time the child is handed to another
    thread of the dying owner, and llama-server treats a second SIGTERM as "terminate immediately"
    by calling ``exit()`` from its signal handler, which can deadlock and leave it running (seen
    in about 1 of 5 kills of a multi-threaded owner). The server holds nothing to flush."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return cmd
    return [setpriv, "--pdeathsig", "KILL", "--", *cmd]


class LlamaServer:
    """One managed ``llama-server`` process (see the module docstring).

    ``poll`` is llama.cpp's ``--poll`` (0-100: how long a thread spins before it sleeps while it
    waits for work; llama.cpp's default is 50). Ours is 0. Measured in session 21
    (``benchmarks/results/engine-poll/``, 32 chats x 64 tokens, 2 threads per server, 2 cores):
    alone, 479 tok/s at 0 against 467 at 50; two servers at once, 32 tok/s each at 0 against 11 at
    50 (their spinning threads take each other's cores). One thread per server is faster still when
    two share the cores (about 360 each), which ``auto_threads`` picks when it sees the other job.
    A user's ``extra_args`` come last and override it."""

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        loras: Sequence[str | os.PathLike] = (),
        threads: int = 2,
        ctx: int = 8192,
        slots: int = 16,
        batch: int = 512,
        poll: int = 0,
        extra_args: Sequence[str] = (),
        binary: str | os.PathLike | None = None,
        startup_timeout: float = 120.0,
        log_dir: str | os.PathLike | None = None,
    ) -> None:
        self.model = Path(model)
        self.loras = [Path(p) for p in loras]
        if not 0 <= poll <= 100:
            raise ValueError(f"poll must be in [0, 100] (llama.cpp's --poll), got {poll}")
        self.threads, self.ctx, self.slots, self.batch, self.poll = threads, ctx, slots, batch, poll
        self.extra_args = list(extra_args)
        self.binary = Path(binary) if binary else None
        self.startup_timeout = startup_timeout
        self.log_dir = Path(log_dir) if log_dir else cache_dir() / "logs"
        self.port: int | None = None
        self.log_path: Path | None = None
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = f"pid={self.process.pid}, port={self.port}" if self.running else "stopped"
        return f"LlamaServer({self.model.name}, {state})"

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API (ends with ``/v1``)."""
        if self.port is None:
            raise LlamaServerError("the server has not been started")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, port: int) -> list[str]:
        binary = self.binary or require_llama_server()
        cmd = [
            str(binary), "-m", str(self.model), "--host", "127.0.0.1", "--port", str(port),
            "-t", str(self.threads), "-tb", str(self.threads), "-c", str(self.ctx), "-np", str(self.slots),
            "-b", str(self.batch), "--poll", str(self.poll), "--no-webui", "--metrics",
        ]
        for lora in self.loras:
            cmd += ["--lora", str(lora)]
        if self.loras:
            cmd.append("--lora-init-without-apply")
        return cmd + self.extra_args

    def _tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines() if self.log_path else []
        except OSError:
            text = []
        return "\n".join(text[-lines:])

    def start(self) -> "LlamaServer":
        """Start the process (no-op when running) and wait until ``/health`` answers ok."""
        with self._lock:
            if self.running:
                return self
            if not self.model.is_file():
                raise LlamaServerError(f"model file {self.model} does not exist")
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.port = _free_port()
            cmd = self.command(self.port)
            self.log_path = self.log_dir / f"llama-server-{self.port}.log"
            with open(self.log_path, "wb") as log:
                log.write((" ".join(cmd) + "\n").encode())
                log.flush()
                self.process = subprocess.Popen(
                    _dies_with_parent(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            _LIVE.add(self)
            deadline = time.monotonic() + self.startup_timeout
            while True:
                code = self.process.poll()
                if code is not None:
                    self.process = None
                    raise LlamaServerError(
                        f"llama-server exited with code {code} while starting; log: {self.log_path}\n{self._tail()}"
                    )
                if self.healthy():
                    return self
                if time.monotonic() > deadline:
                    self._kill()
                    raise LlamaServerError(
                        f"llama-server did not become healthy within {self.startup_timeout:.0f} s; "
                        f"log: {self.log_path}\n{self._tail()}"
                    )
                time.sleep(0.1)

    def healthy(self) -> bool:
        """Whether ``/health`` answers ``{"status": "ok"}`` now."""
        if self.port is None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                return json.loads(resp.read()).get("status") == "ok"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def check(self) -> None:
        """Raise ``LlamaServerError`` (naming the log) if the process was started and has died."""
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            raise LlamaServerError(f"llama-server died (exit code {code}); log: {self.log_path}\n{self._tail()}")

    def _kill(self) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, PermissionError):
                pass
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        else:
            proc.wait()

    def stop(self) -> None:
        """Stop the process and its process group (safe to call twice)."""
        with self._lock:
            self._kill()
        _LIVE.discard(self)

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:  # a forgotten server must not outlive its owner
        try:
            self._kill()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------- LoRA
def lora_gguf(adapter: str | os.PathLike, base_model_dir: str | os.PathLike | None = None) -> Path:
    """The GGUF LoRA (F32) of a peft adapter folder, converted once and cached by content hash."""
    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"no LoRA adapter (adapter_config.json) in {folder}")
    target = cache_dir() / "lora-gguf" / adapter_hash(folder) / "adapter.gguf"
    if target.is_file():
        return target
    script = engine_dir() / "convert_lora_to_gguf.py"
    if not script.is_file():
        raise LlamaServerError(f"{script} is missing (it is installed with llama-server); {BUILD_HINT}")
    if base_model_dir is None:
        from .models import embedded_model_path

        base_model_dir = embedded_model_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".adapter.", suffix=".gguf.tmp", dir=target.parent)
    os.close(fd)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(engine_dir() / "gguf-py"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(script), str(folder), "--base", str(base_model_dir), "--outtype", "f32", "--outfile", tmp]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise LlamaServerError(f"converting the LoRA adapter {folder} failed:\n{done.stderr[-2000:]}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
