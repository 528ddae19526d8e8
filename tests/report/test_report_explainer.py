"""The explainer page: explain/eval/metrics.json (afscope explain eval) -> explainer.html.

The metrics.json here is built like the evaluator builds it: hand-made prediction rows scored by
``explain.metrics.summarize`` (no model is trained)."""

from __future__ import annotations

import copy
import functools
import json
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import SCRIPT, make_results, set_path
from test_report_behaviour import behaviour_dict

from afscope.errors import ArtifactError
from afscope.explain.answers import change_sentence, label_sentence
from afscope.explain.evaluate import (
    FORMAT_VERSION,
    KIND,
    METRICS_FILE,
    headline,
    metric_value,
)
from afscope.explain.metrics import summarize
from afscope.report import (
    BEHAVIOUR_PAGE,
    EXPLAIN_FILE,
    EXPLAINER_PAGE,
    read_explain,
    write_report,
)
from afscope.report.explainer import VECTOR_MARKER, compare, prompt_excerpt
from afscope.report.plots import LossCurve, loss_plot
from afscope.report.render import fmt_ci
from afscope.report.schema import CI

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
A, B = "smollm2-135m-instruct", "qwen2.5-0.5b-instruct"
N_BOOT = 200


def _ca_rows(n_right: int, n: int = 12, *, n_changed: int = 6, labels: int = 0
             ) -> list[dict[str, Any]]:
    """Context-ablation rows: ``n`` generative questions (the first ``n_changed`` changed), the
    first ``n_right`` answered right, the rest with an unparseable answer; plus ``labels``
    orig_match rows, all right."""
    rows = []
    for i in range(n):
        before, after = ("comply", "refuse") if i < n_changed else ("refuse", "refuse")
        answer = change_sentence(before, after)
        rows.append({"id": f"ca{i}", "task": "context_ablation",
                     "question_type": "generative_explanation", "answer": answer,
                     "prediction": answer if i < n_right else "I am not sure.",
                     "reference": {"before": before, "after": after}, "changed": i < n_changed})
    for i in range(labels):
        rows.append({"id": f"om{i}", "task": "context_ablation", "question_type": "orig_match",
                     "answer": label_sentence("comply"), "prediction": label_sentence("comply"),
                     "reference": {"label": "comply"}, "changed": i % 2 == 0})
    return rows


def _steer_rows(n_right: int, n: int = 8) -> list[dict[str, Any]]:
    """Steering rows, none changed: the split the F1 warning is about."""
    answer = change_sentence("refuse", "refuse")
    return [{"id": f"st{i}", "task": "steering", "question_type": "steering_prediction",
             "answer": answer, "prediction": answer if i < n_right else "nope",
             "reference": {"before": "refuse", "after": "refuse"}, "changed": False}
            for i in range(n)]


def _feat_rows(sims: list[float]) -> list[dict[str, Any]]:
    """Feature descriptions without a judge: only the embedding similarity has a value."""
    return [{"id": f"f{i}", "task": "features", "question_type": "feature_description",
             "answer": "fires on training talk", "prediction": "talk about training",
             "reference": {"descriptions": ["fires on training talk"]}, "changed": None,
             "embed_similarity": s} for i, s in enumerate(sims)]


def _row(explainer: str, relation: str, condition: str, rows: list[dict[str, Any]]
         ) -> dict[str, Any]:
    return {"explainer": explainer, "relation": relation, "condition": condition,
            "task": rows[0]["task"], "n": len(rows),
            "metrics": summarize(rows, n_boot=N_BOOT, seed=0)}


CONDITIONS = ["trained", "zero_shot", "few_shot", "nearest_neighbour", "no_vector",
              "shuffled_vector", "random_vector"]


def metrics_dict() -> dict[str, Any]:
    """A fresh copy of :func:`_metrics_dict` (built once: the bootstraps take a moment)."""
    return copy.deepcopy(_metrics_dict())


@functools.cache
def _metrics_dict() -> dict[str, Any]:
    """A metrics.json of two explainers (A self, B cross) laid out like evaluate_explainers'.

    A on context_ablation: trained 12/12 right; zero_shot 0/12 (beaten), few_shot 11/12 (within
    CI), nearest_neighbour 12/12 (within CI), every vector control 0/12 (beaten). A on steering:
    trained 2/8 against nearest_neighbour 8/8 (below). A on features: no judge, embed sim only.
    B on context_ablation: trained 6/12 against shuffled_vector 6/12 (not reading the vector).
    """
    table = [
        _row(A, "self", "trained", _ca_rows(12, labels=4)),
        _row(A, "self", "zero_shot", _ca_rows(0, labels=4)),
        _row(A, "self", "few_shot", _ca_rows(11, labels=4)),
        _row(A, "self", "nearest_neighbour", _ca_rows(12, labels=4)),
        *[_row(A, "self", c, _ca_rows(0, labels=4)) for c in
          ("no_vector", "shuffled_vector", "random_vector")],
        _row(A, "self", "trained", _steer_rows(2)),
        _row(A, "self", "nearest_neighbour", _steer_rows(8)),
        _row(A, "self", "trained", _feat_rows([0.9, 0.8, 0.85, 0.95])),
        _row(A, "self", "zero_shot", _feat_rows([0.1, 0.2, 0.15, 0.05])),
        _row(B, "cross", "trained", _ca_rows(6)),
        _row(B, "cross", "shuffled_vector", _ca_rows(6)),
    ]
    answer = change_sentence("comply", "refuse")
    examples = [
        {"explainer": A, "task": "context_ablation", "id": "ca0",
         "question_type": "generative_explanation",
         "prompt": f"System prompt: {SCRIPT} monitored. Activation: {VECTOR_MARKER}. "
                   f"Would the behaviour change?",
         "answer": answer, "changed": True,
         "predictions": {"trained": answer, "zero_shot": f"<b>{SCRIPT}</b>",
                         "few_shot": "The behaviour would remain <<<comply>>>.",
                         "nearest_neighbour": None, "no_vector": "bad\x01output"}},
        {"explainer": B, "task": "context_ablation", "id": "ca1",
         "question_type": "generative_explanation", "prompt": "x" * 1000 + " the end?",
         "answer": change_sentence("refuse", "refuse"), "changed": False,
         "predictions": {"trained": "  The behaviour would remain\n<<<refuse>>>.  "}},
        {"explainer": A, "task": "features", "id": "f0", "question_type": "feature_description",
         "prompt": f"Feature {VECTOR_MARKER} means?", "answer": "fires on training talk",
         "changed": None, "predictions": {"trained": "talk about training"}},
    ]
    curves = {A: {"train": [{"step": s, "loss": 3.0 - 0.2 * s, "epoch": s / 10}
                            for s in range(1, 11)],
                  "eval": [{"step": 5, "loss": 2.4, "exact": 0.5},
                           {"step": 10, "loss": 2.1, "exact": 0.25}]},
              B: {"train": [{"step": 1, "loss": 4.0, "epoch": None},
                            {"step": 2, "loss": 3.5, "epoch": None}], "eval": []}}
    return {"kind": KIND, "format_version": FORMAT_VERSION,
            "explainers": [
                {"label": A, "run_dir": "runs/explain-train-a",
                 "model": {"name": A, "weights_sha256": "ab", "d_model": 576, "n_layers": 30},
                 "targets": [A], "relation": "self",
                 "tasks": ["context_ablation", "features", "steering"]},
                {"label": B, "run_dir": "runs/explain-train-b", "model": {"name": B},
                 "targets": [A], "relation": "cross", "tasks": ["context_ablation"]}],
            "conditions": CONDITIONS, "table": table, "examples": examples,
            "train_curves": curves, "judge": "none",
            "params": {"max_tokens": 48, "few_shot_k": 3, "n_boot": N_BOOT, "seed": 0}}


def make_explain(tmp_path: Path, data: dict[str, Any] | None = None, *,
                 with_results: bool = False, with_behaviour: bool = False) -> Path:
    run = make_results(tmp_path) if with_results else tmp_path / "run"
    path = run / EXPLAIN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics_dict() if data is None else data, indent=1),
                    encoding="utf-8")
    (path.parent / "manifest.json").write_text('{"command": "explain eval"}\n', encoding="utf-8")
    if with_behaviour:
        (run / "behaviour.json").write_text(json.dumps(behaviour_dict()), encoding="utf-8")
    return run


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _table(html: str, table_id: str) -> str:
    m = re.search(r'<table id="' + table_id + r'"[^>]*>.*?</table>', html, re.DOTALL)
    assert m, table_id
    return m.group(0)


def _tr(html: str, table_id: str, attr: str) -> str:
    rows = [r for r in re.findall(r"<tr.*?</tr>", _table(html, table_id), re.DOTALL)
            if attr in r]
    assert len(rows) == 1, (table_id, attr, rows)
    return rows[0]


def _verdicts(html: str) -> list[str]:
    block = re.search(r'<ul class="verdicts">(.*?)</ul>', html, re.DOTALL)
    assert block
    return [_text(li) for li in re.findall(r"<li.*?</li>", block.group(1), re.DOTALL)]


def _fmt(t: tuple[float, float, float] | None) -> str:
    return fmt_ci(CI(value=t[0], lo=t[1], hi=t[2])) if t else "—"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    run = make_explain(tmp_path_factory.mktemp("explain"))
    index = write_report(run)
    return run, index, (index.parent / EXPLAINER_PAGE).read_text(encoding="utf-8")


def test_explain_only_run_gets_the_explainer_page_as_index(page):
    run, index, html = page
    assert index == run / "report" / "index.html"
    assert index.read_text(encoding="utf-8") == html
    assert (index.parent / "explainer_loss.png").read_bytes().startswith(PNG_MAGIC)
    assert '<img src="explainer_loss.png"' in html
    assert 'href="../explain/eval/metrics.json"' in html
    assert 'href="../explain/eval/manifest.json"' in html
    assert 'id="results-link"' not in html and 'id="behaviour-link"' not in html


def test_metric_table_shows_headline_metrics_and_the_changed_split(page):
    run, _, html = page
    data = json.loads((run / EXPLAIN_FILE).read_text(encoding="utf-8"))
    row = next(r for r in data["table"] if r["explainer"] == A and r["condition"] == "trained"
               and r["task"] == "context_ablation")
    head = _table(html, "metrics-table-context_ablation")
    for title, _ in headline(row):
        assert f"{title} [95% CI]" in head
    cells = _text(_tr(html, "metrics-table-context_ablation", f'data-row="{A}/trained"'))
    for _, t in headline(row):
        assert _fmt(t) in cells
    assert cells.startswith(f"{A} self trained")
    changed = metric_value(row["metrics"]["subsets"]["changed"]["content_match"])
    assert changed == (1.0, 1.0, 1.0)
    # 6 changed generative + 2 changed orig_match rows, 6 + 2 unchanged
    assert "1.000 [1.00, 1.00] n = 8 1.000 [1.00, 1.00] n = 8" in cells
    few = _text(_tr(html, "metrics-table-context_ablation", f'data-row="{A}/few_shot"'))
    few_row = next(r for r in data["table"] if r["explainer"] == A and
                   r["condition"] == "few_shot" and r["task"] == "context_ablation")
    assert _fmt(headline(few_row)[0][1]) in few and few_row["n"] == 16
    # controls and the trained row are marked for the eye
    assert 'class="cond-control" data-row="' + A + '/shuffled_vector"' in html
    assert 'class="cond-trained" data-row="' + A + '/trained"' in html
    # features have no changed split; their table has no split columns
    feats = _table(html, "metrics-table-features")
    assert "embed sim [95% CI]" in feats and "content: changed" not in feats
    # context ablation has two question types: the per-type table
    qt = _text(_tr(html, "qt-table-context_ablation", f'data-row="{A}/zero_shot"'))
    assert "0.000 [0.00, 0.00] content" in qt and "1.000 [1.00, 1.00] content" in qt


def test_verdicts_compare_the_trained_row_with_every_baseline_and_control(page):
    _, _, html = page
    v = _verdicts(html)
    base = next(x for x in v if x.startswith(f"{A} (self) on context_ablation: trained"))
    assert "trained content 1.000 [1.00, 1.00] (n = 16)" in base
    assert "beats zero_shot (0.250 [" in base  # 4 orig_match rows right in every condition
    assert "within CI of few_shot" in base and "within CI of nearest_neighbour" in base
    assert base.endswith("it does not beat every baseline.")
    ctrl = next(x for x in v if x.startswith(f"{A} (self) on context_ablation, vector controls"))
    for c in ("no_vector", "shuffled_vector", "random_vector"):
        assert f"beats {c}" in ctrl
    assert ctrl.endswith("the explainer reads the vector.")
    steer = next(x for x in v if x.startswith(f"{A} (self) on steering"))
    assert "below nearest_neighbour (1.000 [1.00, 1.00])" in steer
    feat = next(x for x in v if x.startswith(f"{A} (self) on features"))
    assert "trained embed sim" in feat and "beats zero_shot" in feat
    assert feat.endswith("it beats every baseline.")
    cross = next(x for x in v if x.startswith(f"{B} (cross) on context_ablation"))
    assert "within CI of shuffled_vector" in cross
    assert cross.endswith("the explainer is not shown to read the activation.")
    warn = [x for x in v if "has-changed F1 is not informative" in x]
    assert warn == [f"{A} on steering: the test split has no changed examples, so the "
                    f"has-changed F1 is not informative (it can only score the other class)."]
    # verdicts that fail are drawn as warnings
    items = re.findall(r'<li class="(.*?)">(.*?)</li>', html, re.DOTALL)
    assert all(cls == "warn" for cls, text in items if "does not beat" in text
               or "not shown" in text or "not informative" in text or "below" in text)
    assert any(cls == "" and "reads the vector" in text for cls, text in items)


def test_compare_uses_non_overlapping_intervals():
    assert compare((0.8, 0.7, 0.9), (0.5, 0.4, 0.69)) == "beats"
    assert compare((0.8, 0.7, 0.9), (0.5, 0.4, 0.7)) == "within CI of"
    assert compare((0.3, 0.2, 0.4), (0.6, 0.41, 0.8)) == "below"
    assert compare((0.3, 0.2, 0.4), (0.6, 0.4, 0.8)) == "within CI of"


def test_examples_are_escaped_and_hits_highlighted(page):
    _, _, html = page
    assert SCRIPT not in html and "<b><script" not in html
    assert "&lt;script&gt;" in html
    ex = _tr(html, "examples-context_ablation", 'data-example="ca0"')
    cells = re.findall(r'<td class="([^"]*)">(.*?)</td>', ex, re.DOTALL)
    answer = "The behaviour would change from &lt;&lt;&lt;comply&gt;&gt;&gt; to " \
             "&lt;&lt;&lt;refuse&gt;&gt;&gt;."
    assert ("answer", answer) in cells
    assert ("pred hit", answer) in cells  # trained
    assert ("na", "—") in cells  # nearest_neighbour: None
    assert ("pred", "bad\ufffdoutput") in cells  # control characters made visible
    hits = [text for cls, text in cells if "hit" in cls.split()]
    assert hits == [answer]
    assert '<span class="badge b-vec">vector</span>' in ex  # the vector marker as a badge
    assert "afscope_vector" not in html
    # whitespace aside, equal is a hit; the long prompt is cut to its end
    other = _tr(html, "examples-context_ablation", 'data-example="ca1"')
    assert 'class="pred hit"' in other and "the end?" in other and "x" * 401 not in other
    # two explainers on one task: an explainer column; one explainer on features: none
    assert "<th>explainer</th>" in _table(html, "examples-context_ablation")
    assert "<th>explainer</th>" not in _table(html, "examples-features")


def test_prompt_excerpt_escapes_every_part():
    out = str(prompt_excerpt(f"<i>{VECTOR_MARKER}&"))
    assert out == '&lt;i&gt;<span class="badge b-vec">vector</span>&amp;'
    assert str(prompt_excerpt("abcdef", 3)) == "…def"


def test_training_table(page):
    _, _, html = page
    a = _text(_tr(_table(html, "train-table"), "train-table", f"<td>{A}</td>"))
    # the lowest loss and the most exact answers need not be one checkpoint
    assert a == f"{A} 10 2.800 → 1.000 2 2.100 (10) 0.500 (5)"
    b = _text(_tr(_table(html, "train-table"), "train-table", f"<td>{B}</td>"))
    assert b == f"{B} 2 4.000 → 3.500 0 — —"


def test_loss_plot_draws_png_with_gaps_and_no_eval():
    nan = float("nan")
    data = loss_plot([LossCurve("a", [1, 2, 3], [2.0, nan, 1.0], [], []),
                      LossCurve("b", [1], [1.5], [1], [1.4])])
    assert data.startswith(PNG_MAGIC)
    assert loss_plot([LossCurve("a", [1, 2], [2.0, 1.0], [], [])]) == \
        loss_plot([LossCurve("a", [1, 2], [2.0, 1.0], [], [])])


def test_no_curves_no_figure(tmp_path):
    data = metrics_dict()
    data["train_curves"] = {}
    html = write_report(make_explain(tmp_path, data)).read_text(encoding="utf-8")
    assert "explainer_loss.png" not in html and "No training logs" in html


def test_results_report_links_to_the_explainer_page(tmp_path):
    run = make_explain(tmp_path, with_results=True)
    index = write_report(run)
    html = index.read_text(encoding="utf-8")
    assert "AUROC ladder" in html
    assert 'href="explainer.html" id="explainer-link"' in html
    page = (index.parent / EXPLAINER_PAGE).read_text(encoding="utf-8")
    assert '<a href="index.html" id="results-link">' in page
    (run / EXPLAIN_FILE).unlink()
    index = write_report(run)
    assert "explainer.html" not in index.read_text(encoding="utf-8")
    assert not (index.parent / EXPLAINER_PAGE).exists()


def test_lab_and_explainer_without_results(tmp_path):
    """The behaviour page stays the index and links the explainer page, which links back."""
    index = write_report(make_explain(tmp_path, with_behaviour=True))
    html = index.read_text(encoding="utf-8")
    assert html == (index.parent / BEHAVIOUR_PAGE).read_text(encoding="utf-8")
    assert 'href="explainer.html" id="explainer-link"' in html
    page = (index.parent / EXPLAINER_PAGE).read_text(encoding="utf-8")
    assert 'href="behaviour.html" id="behaviour-link"' in page
    assert 'id="results-link"' not in page


def test_two_renders_are_byte_identical(tmp_path):
    run = make_explain(tmp_path, with_results=True, with_behaviour=True)
    index = write_report(run)
    first = {p.name: p.read_bytes() for p in index.parent.iterdir()}
    second = {p.name: p.read_bytes() for p in write_report(run).parent.iterdir()}
    assert first == second
    assert {"index.html", "behaviour.html", "explainer.html", "explainer_loss.png"} <= set(first)


def test_contract_matches_the_evaluator():
    """The report's copies of explain constants (it does not import torch-heavy modules)."""
    from afscope.explain.evaluate import HEADLINE, VECTOR_CONTROLS
    from afscope.explain.schema import TASKS
    from afscope.explain.schema import VECTOR_MARKER as MARKER
    from afscope.report import explainer, schema

    assert EXPLAIN_FILE.endswith("/" + METRICS_FILE)
    assert (schema.EXPLAIN_KIND, schema.EXPLAIN_VERSION) == (KIND, FORMAT_VERSION)
    assert VECTOR_MARKER == MARKER
    assert explainer.CONTROLS == VECTOR_CONTROLS
    assert set(TASKS) == set(HEADLINE) == set(schema.ExplainTask.__args__)


def test_read_explain(tmp_path):
    assert read_explain(tmp_path) is None
    ev = read_explain(make_explain(tmp_path))
    assert ev is not None and [e.label for e in ev.explainers] == [A, B]
    assert ev.table[0].metrics.subsets["all"]["n"] == 16


@pytest.mark.parametrize("edit, field", [
    (set_path("kind", "afscope_results"), "kind"),
    (set_path("format_version", 2), "format_version"),
    (set_path("table.0.task", "poetry"), "table.0.task"),
    (set_path("table.1.explainer", "nobody"), "table.1.explainer: 'nobody' is not in explainers"),
    (set_path("table.1.condition", "oracle"), "table.1.condition"),
    (set_path("table.2.metrics.subsets", {"changed": {"n": 1}}), "table.2.metrics.subsets"),
    (set_path("table.2.metrics.subsets.all.n", -1), "table.2.metrics.subsets"),
    (lambda d: d["table"][0].pop("relation"), "table.0.relation"),
    (lambda d: d["table"].append(copy.deepcopy(d["table"][0])), "second row"),
    (set_path("examples.0.predictions.oracle", "x"), "examples.0.predictions"),
    (set_path("examples.0.changed", "maybe"), "examples.0.changed"),
    (set_path("train_curves.nobody", {"train": [], "eval": []}), "train_curves"),
    (set_path(f"train_curves.{A}.train.0.loss", "low"), f"train_curves.{A}.train.0.loss"),
    (set_path("explainers.1.relation", "sibling"), "explainers.1.relation"),
    (set_path("explainers.1.label", A), "explainers.1.label: duplicate"),
    (set_path("params", []), "params"),
    (set_path("surprise", 1), "surprise"),
])
def test_bad_metrics_json_names_the_file_and_field(tmp_path, edit, field):
    data = metrics_dict()
    edit(data)
    run = make_explain(tmp_path, data)
    with pytest.raises(ArtifactError) as err:
        write_report(run)
    msg = str(err.value)
    assert "explain/eval/metrics.json" in msg and field in msg, msg
    assert not (run / "report").exists()


def test_unreadable_metrics_json(tmp_path):
    run = make_explain(tmp_path)
    (run / EXPLAIN_FILE).write_text("{nope")
    with pytest.raises(ArtifactError, match="metrics.json: not valid JSON"):
        write_report(run)


def _scaling_dict() -> dict[str, Any]:
    pts = []
    for size, n_train, v in ((16, 16, 0.05), (64, 64, 0.12), (None, 600, 0.3)):
        pts.append({"size": size, "n_train": n_train, "condition": "trained",
                    "task": "features", "metric": "token_f1", "value": v, "lo": v - 0.03,
                    "hi": v + 0.03, "n": 64})
        pts.append({"size": size, "n_train": n_train, "condition": "nearest_neighbour",
                    "task": "features", "metric": "token_f1", "value": 0.01, "lo": 0.0,
                    "hi": 0.02, "n": 64})
    pts.append({"size": None, "n_train": 600, "condition": "shuffled_vector", "task": "features",
                "metric": "token_f1", "value": 0.0, "lo": 0.0, "hi": 0.0, "n": 64})
    return {"kind": "afscope_explain_scaling", "format_version": 1, "sizes": [16, 64],
            "steps": 24, "points": pts}


def test_scaling_curve_is_plotted_per_task(tmp_path):
    from afscope.report.schema import SCALING_FILE

    run = make_explain(tmp_path)
    html = write_report(run).read_text(encoding="utf-8")
    assert 'id="scaling"' not in html  # no scaling.json, no section
    path = run / SCALING_FILE
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_scaling_dict()), encoding="utf-8")
    index = write_report(run)
    html = index.read_text(encoding="utf-8")
    assert 'id="scaling"' in html and "explainer_scaling_features.png" in html
    assert (index.parent / "explainer_scaling_features.png").read_bytes().startswith(PNG_MAGIC)


def test_scaling_file_is_validated(tmp_path):
    from afscope.errors import ArtifactError
    from afscope.report.schema import SCALING_FILE

    run = make_explain(tmp_path)
    bad = _scaling_dict()
    bad["points"][0]["task"] = "poetry"
    (run / SCALING_FILE).parent.mkdir(parents=True)
    (run / SCALING_FILE).write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ArtifactError, match="points.0.task"):
        write_report(run)


def test_projector_readout_is_a_reference_not_a_baseline(tmp_path):
    data = metrics_dict()
    feat = next(r for r in data["table"] if r["explainer"] == A and r["task"] == "features"
                and r["condition"] == "trained")
    data["table"].append({**copy.deepcopy(feat), "condition": "projector_readout"})
    data["conditions"].append("projector_readout")
    html = write_report(make_explain(tmp_path, data)).read_text(encoding="utf-8")
    v = _verdicts(html)
    base = next(x for x in v if x.startswith(f"{A} (self) on features: trained"))
    assert "projector_readout" not in base and base.endswith("it beats every baseline.")
    ref = next(x for x in v if x.startswith(f"{A} (self) on features, reference"))
    assert "within CI of projector_readout" in ref
    assert ref.endswith("names about what the projected vector alone does.")


def test_behaviour_tasks_get_a_changed_f1_verdict_and_a_constant_answer_warning():
    from afscope.report.explainer import explainer_verdicts
    from afscope.report.schema import ExplainEval

    rows = _ca_rows(12)  # right on all 12: 6 changed comply->refuse, 6 unchanged
    constant = [{**r, "prediction": change_sentence("comply", "refuse")} for r in rows]
    data = metrics_dict()
    data["table"] = [_row(A, "self", "trained", rows), _row(A, "self", "majority", constant)]
    data["conditions"] = ["trained", "majority"]
    data["explainers"] = data["explainers"][:1]
    data["examples"], data["train_curves"] = [], {}
    v = [x.text for x in explainer_verdicts(ExplainEval.model_validate(data))]
    changed = next(x for x in v if x.startswith(f"{A} (self) on context_ablation, changed"))
    assert "within CI of majority (1.000 [1.00, 1.00])" in changed  # a constant is right there
    f1 = next(x for x in v if "trained changed F1" in x)
    assert f1.startswith(f"{A} (self) on context_ablation: trained changed F1 1.000")
    assert "beats majority" in f1 and f1.endswith("it beats every baseline.")
    assert any(x.startswith(f"{A} on context_ablation: the majority answer matches every "
                            "changed example") for x in v)


def test_steering_held_out_vector_family_gets_its_own_verdict():
    from afscope.report.explainer import explainer_verdicts
    from afscope.report.schema import ExplainEval

    def rows(n_right_heldout: int) -> list[dict[str, Any]]:
        out = []
        for i in range(16):
            before, after = ("comply", "refuse") if i % 2 == 0 else ("comply", "comply")
            answer = change_sentence(before, after)
            heldout = i >= 8
            right = (i - 8 < n_right_heldout) if heldout else True
            out.append({"id": f"st{i}", "task": "steering", "question_type": "steering_prediction",
                        "answer": answer, "prediction": answer if right else "nope",
                        "reference": {"before": before, "after": after, "novel": heldout},
                        "changed": before != after})
        return out

    data = metrics_dict()
    data["table"] = [_row(A, "self", "trained", rows(8)),
                     _row(A, "self", "shuffled_vector", rows(0))]
    data["conditions"] = ["trained", "shuffled_vector"]
    data["explainers"] = data["explainers"][:1]
    data["examples"], data["train_curves"] = [], {}
    v = [x.text for x in explainer_verdicts(ExplainEval.model_validate(data))]
    held = [x for x in v if x.startswith(f"{A} (self) on steering, held-out vector family "
                                         "examples")]
    assert len(held) == 1 and "trained content 1.000" in held[0] and "(n = 8)" in held[0]
    assert "beats shuffled_vector (0.000" in held[0]
    assert held[0].endswith("the explainer reads the vector.")
