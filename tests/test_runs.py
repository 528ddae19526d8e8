import json

import pytest

from afscope.errors import DataError
from afscope.fileio import atomic_path, atomic_write_json, sha256_json
from afscope.runs import start_run


def test_manifest_records_config_versions_timings(tmp_path):
    with start_run("unit", {"seed": 3}, tmp_path / "r") as run:
        run.add_dataset("d", {"content_hash": "abc"})
        with run.timer("step"):
            pass
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["status"] == "complete" and m["config"] == {"seed": 3}
    assert m["datasets"]["d"]["content_hash"] == "abc"
    assert {"step", "total"} <= set(m["timings_s"])
    assert m["versions"]["torch"] and m["versions"]["afscope"]


def test_bad_input_leaves_no_new_run_dir(tmp_path):
    with pytest.raises(DataError):
        with start_run("unit", {}, tmp_path / "r"):
            raise DataError("x.json: record 0: field 'text': missing")
    assert not (tmp_path / "r").exists()


def test_interrupted_run_keeps_a_failed_manifest(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with start_run("unit", {}, tmp_path / "r"):
            raise KeyboardInterrupt
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["status"] == "failed"


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_sha256_json_is_key_order_independent():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
