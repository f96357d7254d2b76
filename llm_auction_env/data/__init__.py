"""Ads, user profiles and queries (paper Sec. 5.2.1).

* ``load_dataset()`` -> ``Dataset`` (100 ads over 50 categories, 3,000 profiles, 15,000 queries,
  12k/3k train/test by profile); ``load_dataset(ads_path=..., profiles_path=..., queries_path=...)``
  swaps in the user's own JSONL/CSV files.
* ``load_catalog()`` -> the shipped ads.
* ``load_ads``, ``load_profiles``, ``load_queries`` (and ``save_*``): JSONL/CSV I/O with
  ``DataError`` naming file, line and field.
* ``candidate_ads(dataset, query, k, rng)``: the documented candidate rule.
* ``query_diversity(texts)``: distinct-query ratio and near-duplicate share.
* ``llm-auction generate-queries`` (``data/generate.py``): queries from any text backend.
"""
from .dataset import SPLITS, Dataset, candidate_ads, load_catalog, load_dataset
from .loaders import DataError, load_ads, load_profiles, load_queries, save_ads, save_profiles, save_queries
from .synthetic import DEFAULT_SEED, generate_profiles, generate_queries, query_diversity

__all__ = [
    "SPLITS", "Dataset", "candidate_ads", "load_catalog", "load_dataset", "DataError", "load_ads",
    "load_profiles", "load_queries", "save_ads", "save_profiles", "save_queries", "DEFAULT_SEED",
    "generate_profiles", "generate_queries", "query_diversity",
]
