"""``afscope data validate|split|synth``: outputs, exit 2 on bad input, nothing half-written."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from afscope.cli import main
from afscope.data import Dataset, load_dataset
from afscope.data.records import Record
from afscope.fileio import sha256_file


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- validate --------------------------------------------------------------------------------------
def test_validate_real_files(runner: CliRunner, shared_data: Path) -> None:
    paths = [shared_data / "af_detection_benchmark_2330.json",
             shared_data / "test_samples_15.jsonl"]
    res = runner.invoke(main, ["data", "validate", *map(str, paths)])
    assert res.exit_code == 0, res.output
    out = res.stderr
    assert "n=2330 (AF 520 / not 1810)" in out and "n=15 (AF 5 / not 10)" in out
    assert re.search(r"compliant_hard_negative\s*│\s*0\s*│\s*520\s*│\s*22.3%", out)
    assert re.search(r"hard_negative\s*│\s*0\s*│\s*5\s*│", out)
    assert load_dataset(paths[0]).content_hash[:16] in out


def test_validate_quiet_prints_nothing(runner: CliRunner, shared_data: Path) -> None:
    res = runner.invoke(main, ["-q", "data", "validate", str(shared_data / "opus46_500.json")])
    assert res.exit_code == 0 and res.output == ""


def test_validate_bad_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"text": "ok", "label": "aligned"}, {"text": "x", "label": "lol"}]))
    res = runner.invoke(main, ["data", "validate", str(bad)])
    assert res.exit_code == 2
    assert "record 1: field 'label'" in res.stderr and "unknown label 'lol'" in res.stderr
    assert "Traceback" not in res.output


def test_validate_reports_every_bad_file(runner: CliRunner, tmp_path: Path,
                                         shared_data: Path) -> None:
    a = tmp_path / "a.jsonl"
    a.write_text('{"text": "", "label": "aligned"}\n')
    b = tmp_path / "b.csv"
    b.write_text("body,label\nx,aligned\n")
    good = shared_data / "af_test_samples_10.json"
    res = runner.invoke(main, ["data", "validate", str(a), str(good), str(b)])
    assert res.exit_code == 2
    err = " ".join(res.stderr.split())  # rich wraps long lines
    assert "2 of 3 dataset(s) invalid" in err
    assert "record 0: field 'text'" in err and "b.csv: CSV header" in err
    assert "af_test_samples_10.json: n=10 (AF 5 / not 5)" in err  # the valid file is still reported


def test_validate_label_map_flag_and_config_file(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"t": "a trace", "y": "deceptive"}\n{"t": "b trace", "y": "honest"}\n')
    flags = ["--text-field", "t", "--label-field", "y"]
    res = runner.invoke(main, ["data", "validate", str(data), *flags])
    assert res.exit_code == 2 and "unknown label 'deceptive'" in res.stderr
    res = runner.invoke(main, ["data", "validate", str(data), *flags, "--label-map",
                               "{deceptive: 1, honest: 0}"])
    assert res.exit_code == 0, res.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"paths: [{data}]\ntext_field: t\nlabel_field: y\n"
                   "label_map: {deceptive: 1, honest: 0}\n")
    res = runner.invoke(main, ["data", "validate", "--config", str(cfg)])
    assert res.exit_code == 0, res.stderr
    assert re.search(r"deceptive\s*│\s*1\s*│\s*1\s*│", res.stderr)
    cfg.write_text("paths: [x.json]\ntext_feild: t\n")
    res = runner.invoke(main, ["data", "validate", "--config", str(cfg)])
    assert res.exit_code == 2 and "text_feild" in res.stderr


def test_validate_needs_a_path(runner: CliRunner) -> None:
    res = runner.invoke(main, ["data", "validate"])
    assert res.exit_code == 2 and "at least one dataset PATH" in res.stderr


# -- split -----------------------------------------------------------------------------------------
def test_split_writes_run_dir(runner: CliRunner, shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "af_detection_benchmark_2330.json"
    out = tmp_path / "run"
    res = runner.invoke(main, ["data", "split", str(src), "--out", str(out), "--seed", "1"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    assert _files(out) == ["manifest.json", "test.jsonl", "train.jsonl"]
    train, test = load_dataset(out / "train.jsonl"), load_dataset(out / "test.jsonl")
    assert len(train) == 1864 and len(test) == 466
    assert test.counts()["compliant_hard_negative"] == 104  # fine category survives the round trip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["command"] == "data split"
    info = manifest["datasets"]["af_detection_benchmark_2330"]
    assert info["sha256"] == sha256_file(src) and info["n"] == 2330
    assert manifest["outputs"]["test"]["n"] == 466
    assert manifest["config"]["seed"] == 1 and manifest["config"]["path"] == str(src)
    assert manifest["config"]["fractions"] == {"train": 0.8, "test": 0.2}
    # identical rerun, identical files
    out2 = tmp_path / "run2"
    assert runner.invoke(main, ["data", "split", str(src), "--out", str(out2), "--seed", "1"]
                         ).exit_code == 0
    for name in ("train.jsonl", "test.jsonl"):
        assert (out / name).read_bytes() == (out2 / name).read_bytes()


def test_split_three_way_with_groups(runner: CliRunner, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    src = shared_data / "vocab_constrained_af.json"
    res = runner.invoke(main, ["data", "split", "--path", str(src), "--out", str(out),
                               "--fractions", "train=0.6,val=0.2,test=0.2",
                               "--group-by", "scenario", "--stratify-by", "none"])
    assert res.exit_code == 0, res.stderr
    parts = {n: load_dataset(out / f"{n}.jsonl") for n in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 31
    scen = [{r.extra["scenario"] for r in p} for p in parts.values()]
    assert not (scen[0] & scen[1] or scen[0] & scen[2] or scen[1] & scen[2])


@pytest.mark.parametrize("args, expect", [
    (["--fractions", "train=0.8,test=0.3"], "must sum to 1"),
    (["--fractions", "train=abc"], "not a number"),
    (["--stratify-by", "scenario"], "field 'scenario': missing"),
])
def test_split_bad_options_exit_2_and_write_nothing(runner: CliRunner, shared_data: Path,
                                                    tmp_path: Path, args, expect) -> None:
    out = tmp_path / "run"
    res = runner.invoke(main, ["data", "split", str(shared_data / "af_test_samples_10.json"),
                               "--out", str(out), *args])
    assert res.exit_code == 2, res.output
    assert expect in " ".join(res.stderr.split())
    assert not out.exists()


def test_split_bad_input_exits_2_and_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "aligned"}\n{"text": "b", "label": "aligned"\n')
    out = tmp_path / "run"
    res = runner.invoke(main, ["data", "split", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    assert "record 1 (line 2)" in res.stderr
    assert _files(tmp_path) == ["bad.jsonl"]


def test_split_refuses_leakage(runner: CliRunner, shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    src = shared_data / "af_detection_benchmark_2330.json"
    res = runner.invoke(main, ["data", "split", str(src), "--out", str(out), "--eval-only",
                               str(shared_data / "test_samples_15.jsonl")])
    assert res.exit_code == 2
    err = " ".join(res.stderr.split())
    assert "leak eval-only data (test_samples_15) into the 'train' split" in err
    assert not out.exists()
    # an unrelated eval-only set passes and is recorded in the manifest
    res = runner.invoke(main, ["data", "split", str(src), "--out", str(out), "--eval-only",
                               str(shared_data / "sycophant_319.json")])
    assert res.exit_code == 0, res.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["leakage_guard"]["eval_only"][0]["name"] == "sycophant_319"


# -- synth -----------------------------------------------------------------------------------------
def _fake_synth(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []
    mod = types.ModuleType("afscope.data.synth")

    def generate_corpus(n, seed=0, *, mix=None, minimal_pairs=0.2):
        calls.append((n, seed, mix, minimal_pairs))
        cats = ["alignment_faking", "aligned", "hard_negative", "genuine_compliance"]
        return [Record(text=f"synthetic trace {seed} {i}", category=cats[i % 4],
                       label=int(i % 4 == 0), id=f"synth:{i}", pattern="p",
                       extra={"pair_id": i // 2}) for i in range(n)]

    def keyword_auroc_report(records):
        return {"af_vs_hard_negative": 0.5, "af_vs_aligned": 0.75,
                "af_vs_genuine_compliance": 0.6, "af_vs_all_negatives": 0.625}

    mod.generate_corpus = generate_corpus  # type: ignore[attr-defined]
    mod.keyword_auroc_report = keyword_auroc_report  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "afscope.data.synth", mod)
    return calls


def test_synth_writes_corpus_and_manifest(runner: CliRunner, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_synth(monkeypatch)
    out = tmp_path / "corpus" / "syn.jsonl"
    res = runner.invoke(main, ["data", "synth", "--n", "8", "--seed", "3", "--out", str(out),
                               "--minimal-pairs", "0.5"])
    assert res.exit_code == 0, res.stderr
    assert calls == [(8, 3, None, 0.5)]
    assert res.stdout.strip() == str(out)
    assert _files(out.parent) == ["syn.jsonl", "syn.manifest.json"]
    ds = load_dataset(out)
    assert len(ds) == 8 and ds.ids[0] == "synth:0" and ds.records[1].extra["pair_id"] == 0
    manifest = json.loads((out.parent / "syn.manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["n"] == 8
    assert manifest["outputs"]["keyword_auroc"]["af_vs_aligned"] == 0.75
    assert manifest["datasets"]["syn"]["sha256"] == sha256_file(out)
    assert "af_vs_hard_negative" in res.stderr and "0.500" in res.stderr


@pytest.mark.parametrize("args, expect", [
    (["--n", "0"], "greater than or equal to 1"),
    (["--out", "corpus.json"], "must be a .jsonl file"),
    (["--minimal-pairs", "2"], "minimal_pairs"),
])
def test_synth_bad_options(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           args, expect) -> None:
    _fake_synth(monkeypatch)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(main, ["data", "synth", "--out", "c.jsonl", *args])
    assert res.exit_code == 2 and expect in res.stderr
    assert _files(tmp_path) == []


def test_synth_real_generator(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "syn.jsonl"
    args = ["data", "synth", "--n", "60", "--seed", "0", "--out", str(out)]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.stderr
    ds = load_dataset(out, on_duplicate="warn")
    assert len(ds) == 60 and ds.labels.sum() > 0 and (ds.labels == 0).sum() > 0
    manifest = json.loads((tmp_path / "syn.manifest.json").read_text())
    assert set(manifest["outputs"]["keyword_auroc"]) == {
        "af_vs_hard_negative", "af_vs_aligned", "af_vs_genuine_compliance", "af_vs_all_negatives"}
    first = out.read_bytes()
    assert runner.invoke(main, args).exit_code == 0
    assert out.read_bytes() == first  # same seed, same corpus


def test_dataset_written_by_synth_is_a_dataset(tmp_path: Path) -> None:
    recs = [Record(text="t", category="aligned", label=0, id="a")]
    path = Dataset.from_records(recs, name="x").to_jsonl(tmp_path / "x.jsonl")
    assert load_dataset(path).ids == ["a"]
