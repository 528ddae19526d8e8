"""``afscope generate``: prompt files (strings and chats), n-generations, resume, shards, steering
from a vector file, and clean refusals of bad input."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from afscope.cli import main
from afscope.models import load_model
from afscope.rows import JsonlStore
from afscope.steer import SteeringVector


@pytest.fixture()
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [{"id": "a", "prompt": "Hi", "topic": "greet"},
            {"id": "b", "messages": [{"role": "system", "content": "You are monitored."},
                                     {"role": "user", "content": "Help me."}]},
            {"prompt": "I refuse because this would hurt people."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def invoke(*args):
    return CliRunner().invoke(main, ["-q", "generate", *map(str, args)], catch_exceptions=False)


def test_generate_resume_and_shards(tmp_path, tiny_model_dir, prompts):
    out = tmp_path / "run"
    base = ["--model", tiny_model_dir, "--prompts", prompts, "--out", out, "--max-new-tokens", 4]
    r = invoke(*base, "--n-generations", 2, "--temperature", 1.0, "--cue", "monitored")
    assert r.exit_code == 0, r.output
    rows = JsonlStore(out / "generations.jsonl").rows()
    assert sorted(x["id"] for x in rows) == ["a#0", "a#1", "b#0", "b#1", "p0002#0", "p0002#1"]
    a0 = next(x for x in rows if x["id"] == "a#0")
    assert a0["topic"] == "greet" and a0["prompt_id"] == "a" and a0["n_new_tokens"] <= 4
    assert a0["prompt"][0]["role"] == "system"  # the cue wraps string prompts, not chats
    assert next(x for x in rows if x["id"] == "b#0")["prompt"][0]["content"] == "You are monitored."
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["outputs"]["rows"] == 6
    again = invoke(*base, "--n-generations", 2, "--temperature", 1.0, "--cue", "monitored")
    assert again.exit_code == 0 and JsonlStore(out / "generations.jsonl").rows() == rows
    # other decoding settings cannot be mixed into the same file
    clash = CliRunner().invoke(main, ["generate", *map(str, base), "--temperature", 0.5])
    assert clash.exit_code == 2 and "other settings" in clash.output
    s1 = invoke(*base, "--out", tmp_path / "sh", "--shard", "1/2")
    assert s1.exit_code == 0
    shard_rows = JsonlStore(tmp_path / "sh" / "generations.shard-1-of-2.jsonl").rows()
    assert [x["id"] for x in shard_rows] == ["b"]


def test_generate_with_a_steering_vector(tmp_path, tiny_model_dir, prompts):
    lm = load_model(str(tiny_model_dir))
    g = torch.Generator().manual_seed(0)
    vec = SteeringVector({1: 50 * torch.randn(32, generator=g)}, model=lm.info.name,
                         model_fingerprint=lm.info.fingerprint, source="diffmean")
    path = vec.save(tmp_path / "v.safetensors")
    base = ["--model", tiny_model_dir, "--prompts", prompts, "--max-new-tokens", 6]
    assert invoke(*base, "--out", tmp_path / "plain").exit_code == 0
    r = invoke(*base, "--out", tmp_path / "steered", "--steer", path, "--alpha", 2.0,
               "--positions", "generated")
    assert r.exit_code == 0, r.output
    plain = {x["id"]: x["response"] for x in JsonlStore(tmp_path / "plain" / "generations.jsonl").rows()}
    steered = {x["id"]: x["response"] for x in JsonlStore(tmp_path / "steered" / "generations.jsonl").rows()}
    assert plain.keys() == steered.keys() and plain != steered
    manifest = json.loads((tmp_path / "steered" / "manifest.json").read_text())
    assert manifest["datasets"]["steering_vector"]["layers"] == [1]


def test_bad_prompt_file_is_one_clear_error(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"messages": [{"role": "robot", "content": "x"}]}\n')
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["generate", "--model", str(tiny_model_dir), "--prompts", str(bad),
                                  "--out", str(out)])
    assert r.exit_code == 2 and "bad.jsonl: record 1: field 'messages'" in r.output
    assert not out.exists()
