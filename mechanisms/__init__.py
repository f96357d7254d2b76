"""Allocation + payment rules for LLM-native ad auctions. Importing this package registers every
built-in mechanism in :data:`mechanisms.base.MECHANISMS`; build one with
``make_mechanism(name, **config)``.

=====================  ================================================================
``pretrained``         base Ad-LLM, App. B prompt, one sample; first price per click
``mosaic``             MOSAIC (arXiv:2405.05905): M candidates, reweighting, Rochet payments
``rag_auction``        RAG segment auction (arXiv:2406.09459): winners by bid x relevance,
                       then the LLM integrates exactly the winners
``gsp_slot``           answer without ads + one fixed ad slot, GSP price per click
``llm_auction``        IRPO-trained policy (``mechanisms/llm_auction.py``, if present)
=====================  ================================================================
"""
import importlib

from . import gsp_slot, mosaic, pretrained, rag_auction  # noqa: F401  (register on import)
from .base import MECHANISMS, Mechanism, first_price_per_click, make_mechanism  # noqa: F401

# --- llm_auction / llm_auction_oracle: registered by mechanisms/llm_auction.py (IRPO issue). ---
try:
    importlib.import_module(f"{__name__}.llm_auction")
except ModuleNotFoundError as err:  # the module is optional; a missing dependency inside it is not
    if err.name != f"{__name__}.llm_auction":
        raise
