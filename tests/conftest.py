"""Shared fixtures. ``tiny_llama``: a randomly initialised 2-layer Llama (hidden 64) with the real
SmolLM2 tokenizer, built once per test session (~3 s; the tokenizer comes from the converted model
cache, or is extracted once from the GGUF into ``<cache>/tokenizers``)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from llm_auction_env.llm.models import ModelMissingError, embedded_tokenizer_path

    try:
        path = embedded_tokenizer_path()
    except ModelMissingError as err:
        pytest.skip(str(err))
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


@pytest.fixture(scope="session")
def tiny_llama(smollm2_tokenizer):
    """``(model, tokenizer)``: a seeded random LlamaForCausalLM in fp32, eval mode. Shared by the
    session: tests that change weights (training, peft) must work on a ``copy.deepcopy``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tok),
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    return model, tok
