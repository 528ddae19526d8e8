import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from report_fixtures import SCRIPT, make_results

from afscope.cli import main
from afscope.cli.report import command as report_command
from afscope.errors import ArtifactError, ConfigError
from afscope.report import load_results, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Refs(HTMLParser):
    """Collects <img src>, <a href> and the data-method order of the ladder rows."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.hrefs: list[str] = []
        self.ladder: list[str] = []
        self.ids: set[str] = set()
        self._table: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table":
            self._table = a.get("id")
        elif tag == "img":
            self.imgs.append(a["src"])
        elif tag == "a":
            self.hrefs.append(a["href"])
        elif tag == "tr" and self._table == "ladder-table" and "data-method" in a:
            self.ladder.append(a["data-method"])


def _parse(html: str) -> _Refs:
    p = _Refs()
    p.feed(html)
    return p


def _ladder_row(html: str, method: str) -> str:
    m = re.search(r'<tr[^>]*data-method="' + re.escape(method) + r'".*?</tr>', html, re.DOTALL)
    assert m, method
    return m.group(0)


def _check_links(page: Path, refs: _Refs) -> None:
    for src in refs.imgs:
        data = (page.parent / src).read_bytes()
        assert data.startswith(PNG_MAGIC), src
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 100 and height > 100, src
    for href in refs.hrefs:
        target, _, anchor = href.partition("#")
        if target:
            assert (page.parent / target).exists(), href
        if anchor and not target:
            assert anchor in refs.ids, href


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = make_results(tmp_path_factory.mktemp("report"))
    index = write_report(run)
    return run, index


def test_ladder_is_sorted_by_main_test_auroc_with_cis(report):
    run, index = report
    html = index.read_text(encoding="utf-8")
    results = load_results(run)
    main = {e.method: e.metrics.auroc for e in results.evaluations if e.dataset == "synth_test"}
    expected = sorted(main, key=lambda m: -main[m].value)
    refs = _parse(html)
    assert refs.ladder == expected
    assert len(refs.ladder) == 6
    for method, ci in main.items():
        row = _ladder_row(html, method)
        assert f"{ci.value:.3f} [{ci.lo:.2f}, {ci.hi:.2f}]" in row
    # baselines are marked, probes are not; the single-class OOD set shows a detection rate
    assert 'class="baseline"' in _ladder_row(html, "baseline/tfidf")
    assert 'class="baseline"' not in _ladder_row(html, expected[0])
    assert "det. " in _ladder_row(html, expected[0])
    assert re.search(r"\(\d+/40\)", _ladder_row(html, expected[0]))


def test_verdicts_compare_probes_with_the_best_baseline(report):
    _, index = report
    html = index.read_text(encoding="utf-8")
    # the run's own verdict, escaped
    assert "features do not transfer &lt;b&gt;out of distribution&lt;/b&gt;." in html
    # probes win in distribution, the TF-IDF baseline wins on the OOD benchmark
    assert "On synth_test (test), the best probe gemma-3-270m/L12/resid.mean/logistic_l1" in html
    assert ("No activation or SAE probe beats the best text baseline on benchmark_ood (ood): "
            "baseline/tfidf") in html
    assert 'id="baseline-alert"' not in html  # the main test set is won by a probe
    assert html.index('id="verdicts"') < html.index('id="ladder"')
    # the all-AF set has no AUROC: detection rates are compared instead
    assert re.search(r"(On organism_ood \(ood, all AF\), the best probe \S+ flags \d+% of the "
                     r"traces \(its false-positive rate on synth_test: \d+%\), the best text baseline baseline/\w+ \d+%\.)|(No activation or SAE "
                     r"probe flags more of organism_ood \(ood, all AF\))", html)


def test_alert_when_no_probe_beats_the_baseline_on_the_main_set(tmp_path):
    run = make_results(tmp_path, probes_win=False)
    html = write_report(run).read_text(encoding="utf-8")
    assert 'id="baseline-alert"' in html
    assert ("No activation or SAE probe beats the best text baseline (baseline/tfidf) on the main "
            "test set synth_test.") in " ".join(html.split())
    assert _parse(html).ladder[0] == "baseline/tfidf"


def test_untrusted_text_is_escaped(report):
    _, index = report
    for page in (index, index.parent / "features.html"):
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html
        assert SCRIPT not in html
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in html
    assert "&lt;synthetic&gt;" in index.read_text(encoding="utf-8")


def test_every_image_and_link_resolves(report):
    _, index = report
    refs = _parse(index.read_text(encoding="utf-8"))
    names = {Path(s).name for s in refs.imgs}
    assert "ladder.png" in names and "calibration.png" in names
    assert any(n.startswith("roc_") for n in names) and any(n.startswith("sweep_") for n in names)
    assert sum(n.startswith("roc_") for n in names) == 2  # organism_ood has one class: no ROC
    assert sum(n.startswith("scores_") for n in names) == 4  # top 3 probes + best baseline
    _check_links(index, refs)
    for name in ("../manifest.json", "../results.json", "../scores.jsonl", "features.html"):
        assert name in refs.hrefs
    assert any(h.startswith("../probes/") for h in refs.hrefs)  # method artifacts are linked
    features = index.parent / "features.html"
    _check_links(features, _parse(features.read_text(encoding="utf-8")))


def test_feature_browser_highlights_tokens(report):
    run, index = report
    html = (index.parent / "features.html").read_text(encoding="utf-8")
    results = load_results(run)
    for f in results.features:
        assert f'id="feat-gemma-3-270m-l12-{f.feature}"' in html
    spans = re.findall(r'<span class="tok hl( max)?" title="([0-9.]+)" '
                       r'style="background-color: rgba\(255, 140, 0, ([0-9.]+)\)">', html)
    assert len(spans) > 20
    alphas = [float(a) for _, _, a in spans]
    assert max(alphas) == 1.0 and min(alphas) > 0
    assert sum(1 for m, _, _ in spans if m) == 9  # one max token per example
    assert "Self-preservation / identity" in html


def test_rerun_gives_identical_bytes_and_replaces_the_report(tmp_path):
    run = make_results(tmp_path)
    index = write_report(run)
    first = {p.name: p.read_bytes() for p in index.parent.iterdir()}
    (index.parent / "stale.png").write_bytes(b"old")
    write_report(run)
    second = {p.name: p.read_bytes() for p in index.parent.iterdir()}
    assert first == second  # the stale file is gone; every byte is the same
    assert not [p for p in run.iterdir() if p.name.startswith(".report")]  # no temp dirs left


def test_missing_optional_sections_are_left_out(tmp_path):
    run = make_results(tmp_path, optional=False)
    index = write_report(run)
    html = index.read_text(encoding="utf-8")
    assert not (index.parent / "features.html").exists()
    for gone in ("features.html", 'id="sweeps"', 'id="sae"', 'id="roc"', "scores.jsonl",
                 'href="#sweeps"', 'href="#features"'):
        assert gone not in html
    refs = _parse(html)
    assert len(refs.ladder) == 6
    assert {Path(s).name for s in refs.imgs} == {"ladder.png", "calibration.png"}
    _check_links(index, refs)


def test_minimal_run_without_any_auroc(tmp_path):
    ci = {"value": 0.25, "lo": 0.1, "hi": 0.4}
    results = {
        "kind": "afscope_results", "format_version": 1, "title": "tiny", "created": "today",
        "datasets": [{"name": "organisms", "role": "ood", "n": 4, "n_pos": 4, "n_neg": 0}],
        "methods": [{"id": "m", "family": "activation", "features": "resid.mean",
                     "estimator": "diffmean", "n_features": 8, "n_nonzero": 8}],
        "evaluations": [{"method": "m", "dataset": "organisms", "role": "ood", "n": 4, "n_pos": 4,
                         "metrics": {"accuracy": ci, "detection_rate": ci, "mean_score": 0.3,
                                     "brier": 0.4, "ece": 0.1}}],
    }
    (tmp_path / "results.json").write_text(json.dumps(results))
    html = write_report(tmp_path).read_text(encoding="utf-8")
    refs = _parse(html)
    assert refs.ladder == ["m"] and refs.imgs == []
    assert "det. 25.0% [10.0, 40.0]" in html and "(1/4)" in html
    assert "No evaluation set has both classes" in html
    assert "No verdicts recorded" in html


def test_custom_out_links_back_to_the_run(tmp_path):
    run = make_results(tmp_path)
    index = write_report(run, tmp_path / "elsewhere" / "rep")
    assert index == tmp_path / "elsewhere" / "rep" / "index.html"
    refs = _parse(index.read_text(encoding="utf-8"))
    assert "../../run/results.json" in refs.hrefs
    _check_links(index, refs)


def test_out_that_would_delete_other_files_is_refused(tmp_path):
    run = make_results(tmp_path)
    with pytest.raises(ConfigError, match="run directory"):
        write_report(run, run)
    with pytest.raises(ConfigError, match="run directory"):
        write_report(run, tmp_path)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an afscope report"):
        write_report(run, other)
    assert (other / "keep.txt").read_text() == "mine"


def _edit(run: Path, fn) -> None:
    path = run / "results.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["evaluations"][3]["metrics"].pop("accuracy"), "evaluations.3.metrics.accuracy"),
    (lambda d: d["methods"][1].update(family="magic"), "methods.1.family"),
    (lambda d: d["evaluations"][0]["metrics"]["auroc"].update(value="high"),
     "evaluations.0.metrics.auroc.value"),
    (lambda d: d["evaluations"][2].update(method="nope"), "evaluations.2.method"),
    (lambda d: d["datasets"][0].update(colour="red"), "datasets.0.colour"),
    (lambda d: d.update(format_version=2), "format_version"),
    (lambda d: d.update(kind="something"), "kind"),
])
def test_malformed_results_name_the_file_and_field(tmp_path, edit, field):
    run = make_results(tmp_path)
    _edit(run, edit)
    with pytest.raises(ArtifactError) as err:
        write_report(run)
    assert "results.json" in str(err.value)
    assert field in str(err.value)
    assert not (run / "report").exists()


def test_malformed_scores_name_the_line(tmp_path):
    run = make_results(tmp_path)
    path = run / "scores.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[4])
    row["labels"] = row["labels"][:-1]
    lines[4] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ArtifactError, match=r"(?s)scores\.jsonl: line 5.*differ in length"):
        write_report(run)


def test_missing_or_invalid_json_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="results.json: not found"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("{nope")
    with pytest.raises(ArtifactError, match="results.json: not valid JSON"):
        write_report(tmp_path)


def test_cli_prints_the_index_path_and_exits_2_on_bad_results(tmp_path):
    run = make_results(tmp_path)
    result = CliRunner().invoke(report_command, [str(run)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(run / "report" / "index.html")
    (run / "results.json").write_text("[]")
    added = "report" not in main.commands  # the lead registers it in afscope.cli
    if added:
        main.add_command(report_command)
    try:
        result = CliRunner().invoke(main, ["report", str(run)])
    finally:
        if added:
            main.commands.pop("report")
    assert result.exit_code == 2
    assert "results.json: expected a JSON object" in result.stderr


def test_results_report_links_to_the_transfer_page(tmp_path):
    """A run with ``transfer.json`` gets ``transfer.html``, linked from the index like the
    behaviour and explainer pages; without it, neither link nor page."""
    from afscope.report.transfer import TRANSFER_FILE, TRANSFER_PAGE

    run = make_results(tmp_path)
    (run / TRANSFER_FILE).write_text(json.dumps({
        "kind": "afscope_transfer", "format_version": 1, "title": "tiny transfer", "fpr": 0.05,
        "n_boot": 10, "verdicts": [],
        "sources": [{"name": "a", "role": "train", "path": "a.jsonl", "n_fit": 8, "n_test": 4,
                     "n_pos_test": 2, "two_class": True, "counts": {"aligned": 6}, "dropped": 0}],
        "rows": [{"id": "all", "kind": "all", "sources": ["a"], "held_out": None}],
        "methods": [{"id": "baseline/tfidf", "family": "baseline"}],
        "cells": [{"method": "baseline/tfidf", "row": "all", "test": "a", "in_row": True,
                   "auroc": {"value": 0.9, "lo": 0.8, "hi": 1.0}, "detection_rate": None,
                   "hard_negative": {}}],
        "selection": {"criterion": "mean", "held_out": [], "scores": {}, "recommended": {},
                      "comparisons": []}}))
    index = write_report(run)
    html = index.read_text(encoding="utf-8")
    assert "AUROC ladder" in html  # index stays the detection report
    assert f'href="{TRANSFER_PAGE}" id="transfer-link"' in html
    assert '<a href="index.html">detection report</a>' in (
        index.parent / TRANSFER_PAGE).read_text(encoding="utf-8")
    (run / TRANSFER_FILE).unlink()
    index = write_report(run)
    assert TRANSFER_PAGE not in index.read_text(encoding="utf-8")
    assert not (index.parent / TRANSFER_PAGE).exists()
