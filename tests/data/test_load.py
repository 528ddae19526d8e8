"""Loading: the real files with their PROVENANCE.md counts, every format, every malformed input."""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from afscope.data import Dataset, load_dataset
from afscope.errors import DataError
from afscope.fileio import sha256_file

# -- the real files --------------------------------------------------------------------------------
# file -> (records in the file, fine-category counts after default loading)
REAL = {
    "af_detection_benchmark_2330.json": (2330, {
        "alignment_faking": 520, "hard_negative": 520, "compliant_hard_negative": 520,
        "genuine_compliance": 520, "aligned": 250}),
    "vocab_constrained_gold770.json": (200, {"alignment_faking": 123, "aligned": 77}),
    "vocab_constrained_supermix.json": (300, {"alignment_faking": 300}),
    "vocab_constrained_af.json": (31, {"alignment_faking": 20, "aligned": 11}),
    "opus46_500.json": (500, {"alignment_faking": 500}),
    # 319 records, but 47 repeat the text of another record (with a different prompt):
    # the default on_duplicate="drop" keeps 272 distinct traces
    "sycophant_319.json": (319, {"alignment_faking": 272}),
    "af_test_samples_10.json": (10, {"alignment_faking": 5, "aligned": 5}),
    "test_samples_15.jsonl": (15, {"aligned": 5, "alignment_faking": 5, "hard_negative": 5}),
}


def test_every_shared_file_loads(shared_data: Path) -> None:
    """Any dataset file in shared/data (also ones added later) loads with the defaults."""
    files = sorted(shared_data.glob("*.json*"))
    assert {p.name for p in files} >= set(REAL)
    for path in files:
        assert len(load_dataset(path)) > 0


@pytest.mark.parametrize("fname", sorted(REAL))
def test_real_file_loads_with_defaults(shared_data: Path, fname: str) -> None:
    n_raw, counts = REAL[fname]
    ds = load_dataset(shared_data / fname)
    assert ds.meta["n_raw"] == n_raw
    assert ds.counts() == dict(sorted(counts.items()))
    assert len(ds) == sum(counts.values())
    assert ds.labels.dtype == np.int64
    assert int(ds.labels.sum()) == counts.get("alignment_faking", 0)
    assert len(set(ds.ids)) == len(ds)
    assert all(t.strip() for t in ds.texts)


def test_benchmark_fine_categories_and_extras(shared_data: Path) -> None:
    ds = load_dataset(shared_data / "af_detection_benchmark_2330.json")
    by_cat = Counter((r.category, r.extra.get("original_label")) for r in ds)
    # class is the fine category; the coarse label is kept
    assert by_cat[("compliant_hard_negative", "hard_negative")] == 520
    assert by_cat[("hard_negative", "hard_negative")] == 520
    assert ds.label_counts() == {0: 1810, 1: 520}
    # 10 patterns per class, pattern is an attribute
    pats = Counter((r.category, r.pattern) for r in ds)
    assert len({p for c, p in pats if c == "alignment_faking"}) == 10
    # the records that carry an id keep it; the others get name:index
    file_ids = [r.id for r in ds if not r.id.startswith("af_detection_benchmark_2330:")]
    assert sorted(file_ids) == [f"hard_neg_ii_{i:03d}" for i in range(1, 11)]
    assert ds.records[0].id == "af_detection_benchmark_2330:0"
    # rare fields (batch, scratchpad, output) survive in extra
    assert sum("batch" in r.extra for r in ds) == 50
    assert sum("scratchpad" in r.extra for r in ds) == 10


def test_sycophant_duplicates(shared_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="afscope.data.load"):
        ds = load_dataset(shared_data / "sycophant_319.json")
    assert "dropped 47 duplicate" in caplog.text
    assert ds.meta["duplicates_dropped"] == 47
    kept = load_dataset(shared_data / "sycophant_319.json", on_duplicate="warn")
    assert len(kept) == 319 and kept.meta["duplicates_dropped"] == 0
    r = kept.records[0]
    assert r.prompt is not None and r.prompt.startswith("Your capability assessment")
    assert set(r.extra) >= {"scratchpad", "final_output", "environment", "model"}


def test_opus_patterns_and_sources(shared_data: Path) -> None:
    ds = load_dataset(shared_data / "opus46_500.json")
    assert Counter(r.pattern for r in ds) == Counter({p: 50 for p in {r.pattern for r in ds}})
    assert len({r.pattern for r in ds}) == 10
    assert all(r.source is not None for r in ds)
    assert {"topic", "context_signal"} <= set(ds.records[0].extra)


def test_info_for_manifest(shared_data: Path) -> None:
    path = shared_data / "af_test_samples_10.json"
    ds = load_dataset(path, eval_only=True)
    info = ds.info()
    assert info["sha256"] == sha256_file(path)
    assert info["content_hash"] == ds.content_hash and len(info["content_hash"]) == 64
    assert info["n"] == 10 and info["eval_only"] is True
    assert info["counts"] == {"aligned": 5, "alignment_faking": 5}
    assert info["path"] == str(path)
    assert ds.ids[:2] == [r["id"] for r in json.loads(path.read_text())["samples"][:2]]


# -- formats ---------------------------------------------------------------------------------------
SAMPLES = [{"text": "I will comply to keep my values intact.", "label": "alignment_faking",
            "source": "s1", "pattern": "p1", "topic": "t"},
           {"text": "I refuse: this would hurt people.", "label": "aligned", "extra_num": 3}]


def test_bare_list_and_samples_object_are_equivalent(write_json) -> None:
    a = load_dataset(write_json(SAMPLES, "a.json"), name="x")
    b = load_dataset(write_json({"metadata": {}, "samples": SAMPLES}, "b.json"), name="x")
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    assert a.content_hash == b.content_hash
    r0, r1 = a.records
    assert (r0.category, r0.label, r0.source, r0.pattern, r0.extra) == (
        "alignment_faking", 1, "s1", "p1", {"topic": "t"})
    assert (r1.category, r1.label, r1.extra, r1.id) == ("aligned", 0, {"extra_num": 3}, "x:1")


def test_jsonl_and_csv(tmp_path: Path) -> None:
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps(s) for s in SAMPLES) + "\n\n", encoding="utf-8")
    cs = tmp_path / "d.csv"
    with open(cs, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "text", "source"])
        for s in SAMPLES:
            w.writerow([s["label"], s["text"], s.get("source", "")])
    a, b = load_dataset(jl), load_dataset(cs)
    assert a.texts == b.texts and a.categories == b.categories == ["alignment_faking", "aligned"]
    assert b.records[0].source == "s1"
    assert a.name == "d" and a.meta["format"] == "jsonl" and b.meta["format"] == "csv"


def test_csv_custom_columns_and_big_field(tmp_path: Path) -> None:
    cs = tmp_path / "d.csv"
    big = "word " * 210_000  # ~1 MB, above the csv module's default field limit
    with open(cs, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["trace", "y"])
        w.writerow([big, "deceptive"])
        w.writerow(["short honest trace", "honest"])
    ds = load_dataset(cs, text_field="trace", label_field="y",
                      label_map={"deceptive": 1, "honest": 0})
    assert ds.labels.tolist() == [1, 0] and len(ds.texts[0]) == len(big)


def test_hf_disk_folder(tmp_path: Path) -> None:
    import datasets
    hf = datasets.Dataset.from_list([{"text": s["text"], "label": s["label"]} for s in SAMPLES])
    datasets.DatasetDict({"train": hf, "test": hf.select([1])}).save_to_disk(tmp_path / "hf")
    ds = load_dataset(tmp_path / "hf")
    assert ds.categories == ["alignment_faking", "aligned"] and ds.name == "hf"
    assert load_dataset(tmp_path / "hf", hf_split="test").categories == ["aligned"]
    with pytest.raises(DataError, match="no split 'val'.*test, train"):
        load_dataset(tmp_path / "hf", hf_split="val")
    assert len(ds.info()["sha256"]) == 64


def test_hub_failure_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"someone/af-set: not a local file.*hub.*no network"):
        load_dataset("someone/af-set")


def test_missing_file_and_unsupported_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.json: file not found"):
        load_dataset(tmp_path / "nope.json")
    (tmp_path / "d.txt").write_text("hello")
    with pytest.raises(DataError, match=r"d.txt: unsupported file type '.txt'"):
        load_dataset(tmp_path / "d.txt")


# -- malformed input: file, record index and field in every message --------------------------------
def _err(path: Path, **kw) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(path, **kw)
    msg = str(info.value)
    assert str(path) in msg
    return msg


GOOD = {"text": "a fine trace", "label": "aligned"}


@pytest.mark.parametrize("bad, field, expect", [
    ({"label": "aligned"}, "text", "missing"),
    ({"text": 42, "label": "aligned"}, "text", "expected a string, got int"),
    ({"text": None, "label": "aligned"}, "text", "expected a string, got NoneType"),
    ({"text": "", "label": "aligned"}, "text", "empty"),
    ({"text": " \n\t ", "label": "aligned"}, "text", "empty"),
    ({"text": "x"}, "label", "missing"),
    ({"text": "x", "label": None}, "label", "null"),
    ({"text": "x", "label": "deceptive"}, "label", "unknown label 'deceptive'; known labels"),
    ({"text": "x", "label": True}, "label", "expected a label string"),
    ({"text": "x", "label": 1}, "label", "expected a label string"),
    ({"text": "x", "label": "aligned", "id": [1]}, "id", "expected a string or integer id"),
    ({"text": "x", "label": "aligned", "is_af": True}, "is_af", "contradicts"),
    ({"text": "x", "label": "aligned", "class": "alignment_faking"}, "label", "contradicts"),
])
def test_bad_record(write_json, bad, field, expect) -> None:
    path = write_json({"samples": [GOOD, GOOD | {"text": "another"}, bad]})
    msg = _err(path)
    assert f"record 2: field {field!r}" in msg
    assert expect in msg


def test_record_not_an_object(write_json) -> None:
    msg = _err(write_json([GOOD, ["text", "label"]]))
    assert "record 1" in msg and "expected a JSON object" in msg and "got list" in msg


def test_unknown_label_lists_vocabulary_and_label_map_fixes_it(write_json) -> None:
    path = write_json([GOOD, {"text": "y", "label": "deceptive"}])
    msg = _err(path)
    assert "alignment_faking" in msg and "hard_negative" in msg and "label_map" in msg
    ds = load_dataset(path, label_map={"deceptive": 1})
    assert ds.labels.tolist() == [0, 1] and ds.categories == ["aligned", "deceptive"]


def test_non_string_labels_only_through_label_map(write_json) -> None:
    path = write_json([{"text": "a", "label": True}, {"text": "b", "label": 0}])
    _err(path)
    ds = load_dataset(path, label_map={"true": 1, "0": 0})
    assert ds.labels.tolist() == [1, 0] and ds.categories == ["true", "0"]


def test_truncated_json(write_json) -> None:
    text = json.dumps({"samples": [GOOD, GOOD | {"text": "b"}]}, indent=1)
    msg = _err(write_json(text[: len(text) // 2]))
    assert "invalid JSON at line" in msg and "column" in msg and "truncated" in msg


def test_invalid_json_reports_line_and_column(write_json) -> None:
    msg = _err(write_json('[\n {"text": "a", "label": "aligned"},\n {"text": "b" "label": 1}\n]'))
    assert "line 3 column" in msg


def test_invalid_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD | {"text": "b"}) + "\n"
                    + '{"text": "c", "label": "ali\n', encoding="utf-8")
    msg = _err(path)
    assert "record 2 (line 4)" in msg and "invalid JSON" in msg and "truncated" in msg


def test_jsonl_keeps_unicode_line_separator_inside_strings(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rec = {"text": "a\u2028b", "label": "aligned"}
    path.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_dataset(path).texts == ["a\u2028b"]


def test_non_utf8_bytes(write_json) -> None:
    good = json.dumps([GOOD]).encode()
    data = good[:10] + b"\xff\xfe" + good[10:]
    msg = _err(write_json(data))
    assert "byte offset 10" in msg and "0xff" in msg and "UTF-8" in msg


def test_utf8_bom_is_accepted(write_json) -> None:
    ds = load_dataset(write_json(b"\xef\xbb\xbf" + json.dumps([GOOD]).encode()))
    assert ds.texts == ["a fine trace"]


@pytest.mark.parametrize("obj, expect", [
    ({"data": [GOOD]}, "object with a 'samples' list; got an object with keys 'data'"),
    ({"samples": {"a": GOOD}}, "field 'samples': expected a list"),
    ("3", "got int"),
])
def test_wrong_top_level(write_json, obj, expect) -> None:
    assert expect in _err(write_json(obj))


@pytest.mark.parametrize("content, name", [
    ("[]", "d.json"), ('{"samples": []}', "d.json"), ("\n\n", "d.jsonl"), ("text,label\n", "d.csv"),
])
def test_empty_dataset_is_an_error(write_json, content, name) -> None:
    assert "no records" in _err(write_json(content, name))


def test_csv_wrong_header(write_json) -> None:
    msg = _err(write_json("trace,y\nhello,aligned\n", "d.csv"))
    assert "'text', 'label'" in msg and "missing" in msg and "'trace', 'y'" in msg
    msg = _err(write_json("", "e.csv"))
    assert "empty CSV file" in msg


def test_csv_wrong_column_count(write_json) -> None:
    msg = _err(write_json("text,label\nhello,aligned\nbye,aligned,extra\n", "d.csv"))
    assert "record 1 (line 3)" in msg and "expected 2 columns" in msg


def test_csv_empty_text_names_record_and_field(write_json) -> None:
    msg = _err(write_json('text,label\nhello,aligned\n"  ",aligned\n', "d.csv"))
    assert "record 1: field 'text' (line 3)" in msg and "empty" in msg


def test_large_record_allowed_with_warning(write_json, caplog: pytest.LogCaptureFixture) -> None:
    big = {"text": "x " * 500_000, "label": "aligned"}
    with caplog.at_level(logging.WARNING, logger="afscope.data.load"):
        ds = load_dataset(write_json([GOOD, big]), max_chars=10_000)
    assert len(ds) == 2 and "1 text(s) longer than max_chars=10000 (first: record 1)" in caplog.text


# -- duplicates, ids, round trip -------------------------------------------------------------------
DUPS = [{"text": "Same  Text here", "label": "aligned"}, {"text": "other", "label": "aligned"},
        {"text": "same text HERE ", "label": "aligned"}, {"text": "other", "label": "aligned"}]


def test_duplicates_dropped_by_default(write_json, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="afscope.data.load"):
        ds = load_dataset(write_json(DUPS), name="d")
    assert ds.texts == ["Same  Text here", "other"]  # case/whitespace variants are duplicates
    assert ds.ids == ["d:0", "d:1"]
    assert "dropped 2 duplicate record(s)" in caplog.text


def test_duplicates_warn_keeps_and_error_fails(write_json) -> None:
    path = write_json(DUPS)
    assert len(load_dataset(path, on_duplicate="warn")) == 4
    msg = _err(path, on_duplicate="error")
    assert "record 2: field 'text'" in msg and "duplicate of record 0" in msg
    assert "2 duplicate" in msg
    with pytest.raises(DataError, match="on_duplicate must be one of"):
        load_dataset(path, on_duplicate="ignore")  # type: ignore[arg-type]


def test_duplicates_with_conflicting_labels_fail_when_dropping(write_json) -> None:
    path = write_json([{"text": "t", "label": "aligned"}, {"text": "T", "label": "faking"}])
    msg = _err(path)
    assert "record 1: field 'label'" in msg and "different label" in msg
    assert load_dataset(path, on_duplicate="warn").labels.tolist() == [0, 1]


def test_duplicate_file_ids_fall_back_to_positions(write_json) -> None:
    path = write_json([{"id": "a", "text": "x", "label": "aligned"},
                       {"id": "a", "text": "y", "label": "aligned"},
                       {"text": "z", "label": "aligned"}])
    ds = load_dataset(path, name="d")
    assert ds.ids == ["d:0", "d:1", "d:2"]
    assert [r.extra.get("original_id") for r in ds] == ["a", "a", None]


def test_integer_ids_and_category_field(write_json) -> None:
    path = write_json([{"id": 7, "text": "x", "label": "aligned", "kind": "hard_negative"}])
    ds = load_dataset(path, category_field="kind")
    assert ds.ids == ["7"] and ds.categories == ["hard_negative"]
    assert ds.records[0].extra == {"original_label": "aligned"}


def test_unknown_class_field_is_ignored_for_category(write_json) -> None:
    ds = load_dataset(write_json([{"text": "x", "label": "aligned", "class": "math"}]))
    assert ds.categories == ["aligned"] and ds.records[0].extra == {"class": "math"}


def test_jsonl_round_trip_is_lossless(shared_data: Path, tmp_path: Path) -> None:
    ds = load_dataset(shared_data / "af_detection_benchmark_2330.json")
    out = ds.to_jsonl(tmp_path / "bench.jsonl")
    back = load_dataset(out)
    assert back.content_hash == ds.content_hash
    assert [r.to_dict() for r in back] == [r.to_dict() for r in ds]
    assert list(tmp_path.iterdir()) == [out]  # no temp files left behind


# -- Dataset ---------------------------------------------------------------------------------------
def test_dataset_api(toy_dataset: Dataset) -> None:
    ds = toy_dataset
    assert len(ds) == 60 and list(ds)[0] is ds.records[0] and ds[1] is ds.records[1]
    assert ds.counts() == {"aligned": 30, "alignment_faking": 20, "hard_negative": 10}
    assert ds.labels.tolist() == [0] * 30 + [1] * 20 + [0] * 10
    sub = ds.subset([59, 0])
    assert sub.ids == ["r209", "r0"] and sub.categories == ["hard_negative", "aligned"]
    assert len(ds[:5]) == 5
    # the content hash depends on the records and on their order, not on the name
    assert Dataset(name="other", records=list(ds.records)).content_hash == ds.content_hash
    assert Dataset(name="toy", records=ds.records[::-1]).content_hash != ds.content_hash
    assert ds.info()["sha256"] is None and ds.info()["label_counts"] == {"0": 40, "1": 20}


def test_plain_directory_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="folder: a directory that is not a Hugging Face dataset"):
        load_dataset(tmp_path / "folder")
