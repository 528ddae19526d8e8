import dataclasses

import pytest

from afscope.errors import ArtifactError, ConfigError
from afscope.models import PLAIN_TEMPLATE, embedded, load_model, render_chat


def test_local_folder_loads_with_identity(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    info = lm.info
    assert (info.n_layers, info.d_model, info.architecture) == (4, 32, "LlamaForCausalLM")
    assert info.has_chat_template and info.weights_sha256
    assert info.fingerprint == load_model(str(tiny_model_dir)).info.fingerprint
    assert not lm.model.training


def test_bad_dtype_and_missing_model(tmp_path):
    with pytest.raises(ConfigError, match="dtype"):
        load_model("x", dtype="float8")
    with pytest.raises(ArtifactError, match="could not load model"):
        load_model(str(tmp_path / "nothing-here"))


def test_explicit_template_for_models_without_one(tiny_tokenizer):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    assert render_chat(tiny_tokenizer, msgs).endswith("<|im_start|>assistant\n")
    plain = render_chat(tiny_tokenizer, msgs, template=PLAIN_TEMPLATE)
    assert plain == "S\n\nUser: Hi\n\nAssistant:"


def test_prepare_refuses_a_gguf_with_the_wrong_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("AFSCOPE_CACHE", str(tmp_path / "cache"))

    def fake_fetch(spec, workdir):
        path = workdir / "model.gguf"
        path.write_bytes(b"not the model")
        return path

    spec = dataclasses.replace(embedded.EMBEDDED["smollm2-135m-instruct"], fetch=fake_fetch)
    monkeypatch.setitem(embedded.EMBEDDED, spec.name, spec)
    with pytest.raises(ArtifactError, match="does not match the expected"):
        embedded.prepare(spec.name)
    assert not embedded.is_prepared(spec.name)
    assert not (tmp_path / "cache" / "models" / spec.name).exists()
