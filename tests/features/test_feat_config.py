"""Feature configs: --llm as inline YAML or a file, failures as ConfigError, step-local resume keys."""

from __future__ import annotations

import pytest

from afscope.config import build_config
from afscope.errors import ConfigError
from afscope.features import AutointerpConfig, DescribeConfig, DescribeParams
from afscope.features.config import step_fields


def test_llm_inline_file_and_default(tmp_path):
    base = {"cache": "c", "layer": 1, "data": "d.jsonl"}
    cfg = build_config(DescribeConfig, None, {**base, "llm": "{backend: claude-cli, model: opus}"})
    assert cfg.llm.backend == "claude-cli" and cfg.llm_config().on_error == "record"
    f = tmp_path / "llm.yaml"
    f.write_text("backend: openai\nmodel: qwen\nbase_url: http://127.0.0.1:8000/v1\n")
    assert build_config(DescribeConfig, None, {**base, "llm": str(f)}).llm.model == "qwen"
    assert build_config(DescribeConfig, None, base).llm_config().backend == "transformers"
    for bad in ("[1, 2]", "{backend: gpt}", "{temprature: 0}"):
        with pytest.raises(ConfigError, match="llm"):
            build_config(DescribeConfig, None, {**base, "llm": bad})


def test_resume_keys_are_the_step_fields_only():
    a = AutointerpConfig(n_boot=10, min_relevance=3)
    b = AutointerpConfig(n_boot=999, min_relevance=8)
    assert step_fields(a, DescribeParams) == step_fields(b, DescribeParams)
    assert set(step_fields(a, DescribeParams)) == {"n_top", "n_zero", "max_chars"}
