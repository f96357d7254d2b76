"""Click models (the simulated user, paper's User-LLM): ``make_click_model(name, **config)``.

* ``semantic`` (:class:`SemanticClickModel`): embedded default on MiniLM embeddings, exact
  probabilities;
* ``llm_judge`` (:class:`LLMJudgeClickModel`): the paper's User-LLM prompt on any text backend.

``encoder.get_text_encoder()`` / ``encoder.embed(texts)``: the shared frozen sentence encoder.
"""
from .base import CLICK_MODELS, ClickModel, Judged, make_click_model
from .llm_judge import JudgeConfig, JudgeStats, LLMJudgeClickModel, parse_judgement
from .semantic import SemanticClickModel, SemanticConfig

__all__ = [
    "CLICK_MODELS", "ClickModel", "Judged", "make_click_model", "JudgeConfig", "JudgeStats",
    "LLMJudgeClickModel", "parse_judgement", "SemanticClickModel", "SemanticConfig",
]
