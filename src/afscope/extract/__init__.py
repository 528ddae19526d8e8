"""The activation cache: run a model over a dataset, pool residual activations, store them sharded."""

from afscope.extract.config import ExtractConfig
from afscope.extract.pooling import pool
from afscope.extract.runner import extract, merge_shards, plan_batches
from afscope.extract.store import ActivationCache, merge_caches

__all__ = ["ActivationCache", "ExtractConfig", "extract", "merge_caches", "merge_shards",
           "plan_batches", "pool"]
