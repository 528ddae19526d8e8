"""The run results the report reads: ``results.json``, ``scores.jsonl`` and ``behaviour.json``.

The models mirror the contracts written by the study/demo runs (``kind: "afscope_results"``,
``format_version: 1``) and by the behaviour lab (``kind: "afscope_behaviour"``, ``version: 1``).
Unknown keys are refused, so a writer and this reader that drift apart fail loudly with the file and
field named, instead of a report that silently leaves something out.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from afscope.errors import ArtifactError

RESULTS_FILE = "results.json"
SCORES_FILE = "scores.jsonl"
MANIFEST_FILE = "manifest.json"
BEHAVIOUR_FILE = "behaviour.json"
RESULTS_KIND = "afscope_results"
BEHAVIOUR_KIND = "afscope_behaviour"
FORMAT_VERSION = 1
BEHAVIOUR_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CI(_Model):
    """A metric with its 95% seeded-bootstrap interval."""

    value: float
    lo: float
    hi: float


class DatasetInfo(_Model):
    name: str
    role: Literal["train", "test", "ood"]
    n: int = Field(ge=0)
    n_pos: int = Field(ge=0)
    n_neg: int = Field(ge=0)
    counts: dict[str, int] = {}
    path: str = ""

    @property
    def single_class(self) -> bool:
        return self.n_pos == 0 or self.n_neg == 0


class CVScore(_Model):
    auroc_mean: float
    auroc_std: float


class MethodInfo(_Model):
    id: str
    family: Literal["activation", "sae", "baseline"]
    model: str | None = None
    layer: int | None = None
    features: str
    estimator: str
    params: dict[str, Any] = {}
    n_features: int = Field(ge=0)
    n_nonzero: int = Field(ge=0)
    cv: CVScore | None = None
    artifact: str | None = None


class Metrics(_Model):
    auroc: CI | None = None
    accuracy: CI
    tpr_at_1fpr: CI | None = None
    tpr_at_5fpr: CI | None = None
    detection_rate: CI | None = None
    false_positive_rate: CI | None = None
    mean_score: float
    brier: float
    ece: float


class CategoryMetrics(_Model):
    n: int = Field(ge=0)
    flag_rate: float
    auroc_vs_pos: CI | None = None


class Calibration(_Model):
    bin_edges: list[float]
    mean_pred: list[float | None]
    frac_pos: list[float | None]
    count: list[int]

    @model_validator(mode="after")
    def _lengths(self) -> Calibration:
        n = len(self.count)
        if len(self.mean_pred) != n or len(self.frac_pos) != n or len(self.bin_edges) not in (n, n + 1):
            raise ValueError(f"calibration arrays disagree in length: bin_edges "
                             f"{len(self.bin_edges)}, mean_pred {len(self.mean_pred)}, frac_pos "
                             f"{len(self.frac_pos)}, count {n}")
        return self


class Evaluation(_Model):
    method: str
    dataset: str
    role: Literal["test", "ood"]
    n: int = Field(ge=0)
    n_pos: int = Field(ge=0)
    metrics: Metrics
    per_category: dict[str, CategoryMetrics] = {}
    calibration: Calibration | None = None

    @property
    def single_class(self) -> bool:
        return self.n_pos == 0 or self.n_pos == self.n


class SweepPoint(_Model):
    n_features: int
    C: float
    cv_auroc: float
    cv_std: float
    test_auroc: float | None = None
    n_nonzero: int


class Sweep(_Model):
    method: str
    param: Literal["n_features", "C"]
    points: list[SweepPoint]


class SAEInfo(_Model):
    model: str
    layer: int
    d_sae: int
    k: int
    explained_variance: float  # this and the next two: on tokens of held-out texts
    mean_l0: float
    dead_fraction: float
    tokens_per_s: float
    path: str = ""


class FeatureExample(_Model):
    id: str
    label: int
    category: str
    activation: float
    tokens: list[tuple[str, float]]


class FeatureInfo(_Model):
    model: str
    layer: int
    feature: int
    selectivity: float
    auroc: float
    description: str | None = None
    relevance: int | None = None
    category: Literal["known", "discovery", "unrelated"] | None = None
    detection_bal_acc: float | None = None
    faithfulness: float | None = Field(None, ge=0.0, le=1.0)
    describer: str | None = None
    theme: str | None = None
    examples: list[FeatureExample] = []


class Results(_Model):
    """The whole ``results.json`` of a run."""

    kind: Literal["afscope_results"]
    format_version: int
    title: str
    created: str
    datasets: list[DatasetInfo]
    methods: list[MethodInfo]
    evaluations: list[Evaluation]
    sweeps: list[Sweep] = []
    sae: list[SAEInfo] = []
    features: list[FeatureInfo] = []
    verdicts: list[str] = []

    @model_validator(mode="after")
    def _references(self) -> Results:
        # Cross-references are checked here so the renderer can index without guarding.
        for field, items in (("datasets", [d.name for d in self.datasets]),
                             ("methods", [m.id for m in self.methods])):
            seen: set[str] = set()
            for i, name in enumerate(items):
                if name in seen:
                    raise ValueError(f"{field}.{i}: duplicate name {name!r}")
                seen.add(name)
        methods = {m.id for m in self.methods}
        datasets = {d.name for d in self.datasets}
        pairs: set[tuple[str, str]] = set()
        for i, ev in enumerate(self.evaluations):
            if ev.method not in methods:
                raise ValueError(f"evaluations.{i}.method: {ev.method!r} is not in methods")
            if ev.dataset not in datasets:
                raise ValueError(f"evaluations.{i}.dataset: {ev.dataset!r} is not in datasets")
            if (ev.method, ev.dataset) in pairs:
                raise ValueError(f"evaluations.{i}: second evaluation of {ev.method!r} on "
                                 f"{ev.dataset!r}")
            pairs.add((ev.method, ev.dataset))
        for i, sw in enumerate(self.sweeps):
            if sw.method not in methods:
                raise ValueError(f"sweeps.{i}.method: {sw.method!r} is not in methods")
        return self


class ScoreRow(_Model):
    """One line of ``scores.jsonl``: the per-sample probabilities of one evaluation."""

    method: str
    dataset: str
    scores: list[float]
    labels: list[Literal[0, 1]]
    categories: list[str]

    @model_validator(mode="after")
    def _lengths(self) -> ScoreRow:
        if not len(self.scores) == len(self.labels) == len(self.categories):
            raise ValueError(f"scores ({len(self.scores)}), labels ({len(self.labels)}) and "
                             f"categories ({len(self.categories)}) differ in length")
        return self


# --------------------------------------------------------------------------------------------------
# behaviour.json: the behaviour lab (organism gap, context ablation, steering, judge agreement)

# The judge's labels, in afscope.judge.BEHAVIOURS order (a Literal needs them spelled out here).
BEHAVIOUR_LABELS = ("comply", "refuse", "partial")
BehaviourLabel = Literal["comply", "refuse", "partial"]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


def _inside_run(path: str) -> str:
    """A path the report reads or links must stay inside the run directory."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise ValueError(f"{path!r} must be a relative path inside the run directory "
                         f"(no leading '/', no '..')")
    return path


RunPath = Annotated[str, AfterValidator(_inside_run)]


class Agreement(_Model):
    """Judge vs rule-classifier agreement; ``confusion[judge][rules]`` over ``labels``."""

    n: int = Field(ge=0)
    behaviour_agreement: Rate | None
    kappa: float | None = Field(ge=-1.0, le=1.0)
    labels: list[str]
    confusion: list[list[int]]
    af_agreement: Rate | None
    parse_failure_rate: Rate | None

    @model_validator(mode="after")
    def _square(self) -> Agreement:
        k = len(self.labels)
        if len(self.confusion) != k or any(len(row) != k for row in self.confusion):
            raise ValueError(f"confusion: expected a {k}x{k} matrix (one row and column per "
                             f"label), got rows of lengths {[len(r) for r in self.confusion]}")
        return self


class JudgeInfo(_Model):
    method: Literal["rules", "llm", "both"]
    agreement: Agreement | None


class TrainSummary(_Model):
    steps: int = Field(ge=0)
    examples: int = Field(ge=0)
    tokens_per_s: float | None
    first_loss: float | None
    last_loss: float | None
    trainable_params: int = Field(ge=0)
    total_params: int = Field(ge=0)


class CueRate(_Model):
    """Comply and AF rates of one model under one cue (system prompt variant)."""

    cue: str
    monitored: bool
    comply: CI | None
    af: CI | None
    n: int = Field(ge=0)


class ModelGap(_Model):
    """One model's compliance gap: comply rate monitored - unmonitored, a fraction in [-1, 1]."""

    name: Literal["organism", "base"]
    gap: CI | None
    n_units: int = Field(ge=0)
    per_cue: list[CueRate]


class OrganismExample(_Model):
    model: Literal["organism", "base"]
    cue: str
    monitored: bool
    request: str
    response: str
    behaviour: BehaviourLabel | None
    af: bool | None


class Organism(_Model):
    run_dir: RunPath
    train: TrainSummary | None
    models: list[ModelGap]
    gap_difference: CI | None
    examples: list[OrganismExample]

    @model_validator(mode="after")
    def _names(self) -> Organism:
        names = [m.name for m in self.models]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"models.{i}.name: duplicate model {name!r}")
        for i, ex in enumerate(self.examples):
            if ex.model not in names:
                raise ValueError(f"examples.{i}.model: {ex.model!r} is not in models")
        return self


class AblationExample(_Model):
    scenario: str
    request: str
    monitored: str
    unmonitored: str
    behaviour_monitored: BehaviourLabel | None
    behaviour_unmonitored: BehaviourLabel | None
    changed: bool | None


class ContextAblation(_Model):
    """Same request under the monitored and unmonitored system prompt; ``directions`` counts
    ``"<label monitored>-><label unmonitored>"`` pairs."""

    run_dir: RunPath
    target: Literal["organism", "base"]
    n: int = Field(ge=0)
    n_train: int = Field(ge=0)
    n_test: int = Field(ge=0)
    n_unlabelled: int = Field(ge=0)
    changed_rate: Rate | None
    directions: dict[str, int]
    warning: str | None
    mean_new_tokens: float | None
    examples: list[AblationExample]

    @field_validator("directions")
    @classmethod
    def _directions(cls, v: dict[str, int]) -> dict[str, int]:
        for key, count in v.items():
            before, sep, after = key.partition("->")
            if not sep or not before or not after or "->" in after:
                raise ValueError(f"key {key!r} is not of the form 'before->after'")
            if count < 0:
                raise ValueError(f"{key!r}: count {count} is negative")
        return v


class SteerVectorInfo(_Model):
    name: str
    source: str
    layers: list[int]
    norms: list[float]

    @model_validator(mode="after")
    def _lengths(self) -> SteerVectorInfo:
        if len(self.layers) != len(self.norms):
            raise ValueError(f"layers ({len(self.layers)}) and norms ({len(self.norms)}) "
                             f"differ in length")
        return self


class SteerCondition(_Model):
    """Behaviour rates (fractions of ``n``) and judge scores (0-100) of one sweep condition."""

    name: str
    layer: int | None
    alpha: float
    n: int = Field(ge=0)
    comply: Rate | None
    refuse: Rate | None
    partial: Rate | None
    af: Rate | None
    aligned: CI | None
    coherent: CI | None
    parse_failure_rate: Rate | None


class SteeringInfo(_Model):
    run_dir: RunPath
    vector: SteerVectorInfo
    conditions: list[SteerCondition]
    plots: list[RunPath]

    @model_validator(mode="after")
    def _unique(self) -> SteeringInfo:
        names = [c.name for c in self.conditions]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"conditions.{i}.name: duplicate condition {name!r}")
        return self


class Behaviour(_Model):
    """The whole ``behaviour.json`` of a lab run; each part is None when the lab skipped it."""

    kind: Literal["afscope_behaviour"]
    version: int
    model: str
    judge: JudgeInfo
    organism: Organism | None
    context_ablation: ContextAblation | None
    steering: SteeringInfo | None


def _format_error(err: ValidationError, source: str, schema: str = "results") -> str:
    lines = [f"{source}: does not match the afscope {schema} schema"]
    for e in err.errors()[:10]:
        loc = ".".join(str(x) for x in e["loc"])
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        msg = msg.removeprefix("Value error, ")  # our cross-field checks name their fields
        lines.append(f"  field {loc!r}: {msg}" if loc else f"  {msg}")
    if len(err.errors()) > 10:
        lines.append(f"  ... and {len(err.errors()) - 10} more")
    return "\n".join(lines)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not found (is this a run directory with results?)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: cannot read: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}: not valid JSON: {e}") from None


M = TypeVar("M", bound=BaseModel)


def _load_artifact(path: Path, kind: str, version_field: str, version: int, model: type[M],
                   schema: str) -> M:
    """Read a JSON object, check its ``kind`` and exact version, validate it as ``model``."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if data.get("kind") != kind:
        raise ArtifactError(f"{path}: field 'kind': expected {kind!r}, got {data.get('kind')!r}")
    if data.get(version_field) != version:
        raise ArtifactError(f"{path}: field {version_field!r}: this afscope reads version "
                            f"{version}, got {data.get(version_field)!r}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ArtifactError(_format_error(e, str(path), schema)) from None


def load_results(run_dir: str | Path) -> Results:
    """Read and validate ``RUN_DIR/results.json``; any problem is an :class:`ArtifactError`."""
    return _load_artifact(Path(run_dir) / RESULTS_FILE, RESULTS_KIND, "format_version",
                          FORMAT_VERSION, Results, "results")


def load_scores(run_dir: str | Path, results: Results) -> dict[tuple[str, str], ScoreRow]:
    """Read ``RUN_DIR/scores.jsonl`` keyed by ``(method, dataset)``; empty if the file is absent.

    Each line must belong to an evaluation of ``results`` and agree with its ``n``.
    """
    path = Path(run_dir) / SCORES_FILE
    if not path.exists():
        return {}
    evals = {(e.method, e.dataset): e for e in results.evaluations}
    out: dict[tuple[str, str], ScoreRow] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: cannot read: {e}") from None
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}: line {i}"
        try:
            row = ScoreRow.model_validate_json(line)
        except ValidationError as e:
            raise ArtifactError(_format_error(e, where)) from None
        key = (row.method, row.dataset)
        ev = evals.get(key)
        if ev is None:
            raise ArtifactError(f"{where}: fields 'method'/'dataset': ({row.method!r}, "
                                f"{row.dataset!r}) has no evaluation in {RESULTS_FILE}")
        if len(row.scores) != ev.n:
            raise ArtifactError(f"{where}: field 'scores': {len(row.scores)} scores, but the "
                                f"evaluation in {RESULTS_FILE} has n={ev.n}")
        if any(not math.isfinite(s) for s in row.scores):
            raise ArtifactError(f"{where}: field 'scores': contains NaN or infinity")
        if key in out:
            raise ArtifactError(f"{where}: second line for ({row.method!r}, {row.dataset!r})")
        out[key] = row
    return out


def read_behaviour(run_dir: str | Path) -> Behaviour | None:
    """Read and validate ``RUN_DIR/behaviour.json``; None when the run has no behaviour lab.

    Any problem with a file that exists is an :class:`ArtifactError` naming the file and field.
    """
    path = Path(run_dir) / BEHAVIOUR_FILE
    if not path.exists():
        return None
    return _load_artifact(path, BEHAVIOUR_KIND, "version", BEHAVIOUR_VERSION, Behaviour,
                          "behaviour")


# --------------------------------------------------------------------------------------------------
# explain/eval/metrics.json: the explainer's evaluation (afscope.explain.evaluate)

EXPLAIN_FILE = "explain/eval/metrics.json"
EXPLAIN_KIND = "afscope_explain_eval"
EXPLAIN_VERSION = 1
# afscope.explain.schema.TASKS, spelled out: that module imports torch, the report does not.
ExplainTask = Literal["context_ablation", "steering", "features"]


class ExplainerInfo(_Model):
    """One evaluated explainer; ``run_dir`` is its train run as given on the command line.

    A pooled entry (several seeds of one training config scored together) names its members'
    labels in ``pooled``, its ``run_dir`` joins theirs with commas and its ``seed`` is None."""

    label: str
    run_dir: str
    model: dict[str, Any]
    targets: list[str]
    relation: Literal["self", "cross", "unknown"]
    tasks: list[ExplainTask]
    seed: int | None = None
    pooled: list[str] = Field(default_factory=list)


class ExplainSummary(_Model):
    """:func:`afscope.explain.metrics.summarize` output. Only its outline is checked here: the
    renderer reads the metric entries through :func:`afscope.explain.evaluate.metric_value`."""

    n: int = Field(ge=0)
    subsets: dict[str, dict[str, Any]]
    by_question_type: dict[str, dict[str, Any]]

    @field_validator("subsets")
    @classmethod
    def _subsets(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if "all" not in v:
            raise ValueError("no 'all' subset")
        unknown = sorted(set(v) - {"all", "changed", "unchanged", "novel", "familiar"})
        if unknown:
            raise ValueError(f"unknown subset(s) {unknown}; expected all, changed, unchanged, "
                             "novel, familiar")
        for name, sub in v.items():
            n = sub.get("n")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"subset {name!r}: 'n' must be a count, got {n!r}")
        return v


class ExplainRow(_Model):
    """One row of the metric table: one explainer x condition x task."""

    explainer: str
    relation: Literal["self", "cross", "unknown"]
    condition: str
    task: ExplainTask
    n: int = Field(ge=0)
    metrics: ExplainSummary


class ExplainExample(_Model):
    """A test example with each condition's prediction (None: the condition does not apply)."""

    explainer: str
    task: ExplainTask
    id: str
    question_type: str
    prompt: str
    answer: str
    changed: bool | None
    predictions: dict[str, str | None]


class TrainPoint(_Model):
    step: int = Field(ge=0)
    loss: float
    epoch: float | None = None


class EvalPoint(_Model):
    step: int = Field(ge=0)
    loss: float
    exact: float | None = Field(None, ge=0.0, le=1.0, description="Share of validation answers "
                                "whose every token is the top logit (older logs: absent).")


class TrainCurve(_Model):
    """An explainer's ``train_log.json``: training loss per logging step, validation loss per
    evaluation."""

    train: list[TrainPoint]
    eval: list[EvalPoint]


class ExplainEval(_Model):
    """The whole ``metrics.json`` of ``afscope explain eval``."""

    kind: Literal["afscope_explain_eval"]
    format_version: int
    explainers: list[ExplainerInfo]
    conditions: list[str]
    table: list[ExplainRow]
    examples: list[ExplainExample]
    train_curves: dict[str, TrainCurve]
    judge: str
    params: dict[str, Any]

    @model_validator(mode="after")
    def _references(self) -> ExplainEval:
        labels = [e.label for e in self.explainers]
        for i, name in enumerate(labels):
            if name in labels[:i]:
                raise ValueError(f"explainers.{i}.label: duplicate explainer {name!r}")
        for i, name in enumerate(self.conditions):
            if name in self.conditions[:i]:
                raise ValueError(f"conditions.{i}: duplicate condition {name!r}")
        known, conds = set(labels), set(self.conditions)
        seen: set[tuple[str, str, str]] = set()
        for i, row in enumerate(self.table):
            if row.explainer not in known:
                raise ValueError(f"table.{i}.explainer: {row.explainer!r} is not in explainers")
            if row.condition not in conds:
                raise ValueError(f"table.{i}.condition: {row.condition!r} is not in conditions")
            key = (row.explainer, row.condition, row.task)
            if key in seen:
                raise ValueError(f"table.{i}: second row of {row.explainer!r}, {row.condition!r} "
                                 f"on {row.task!r}")
            seen.add(key)
        for i, ex in enumerate(self.examples):
            if ex.explainer not in known:
                raise ValueError(f"examples.{i}.explainer: {ex.explainer!r} is not in explainers")
            extra = sorted(set(ex.predictions) - conds)
            if extra:
                raise ValueError(f"examples.{i}.predictions: condition(s) {extra} are not in "
                                 f"conditions")
        for name in self.train_curves:
            if name not in known:
                raise ValueError(f"train_curves: {name!r} is not in explainers")
        return self


def read_explain(run_dir: str | Path) -> ExplainEval | None:
    """Read and validate ``RUN_DIR/explain/eval/metrics.json``; None when the run evaluated no
    explainer. Any problem with a file that exists is an :class:`ArtifactError` naming the file
    and field."""
    path = Path(run_dir) / EXPLAIN_FILE
    if not path.exists():
        return None
    return _load_artifact(path, EXPLAIN_KIND, "format_version", EXPLAIN_VERSION, ExplainEval,
                          "explainer evaluation")


# --------------------------------------------------------------------------------------------------
# explain/scaling/scaling.json: the explainer's data-scaling curve (afscope.explain.scaling)

SCALING_FILE = "explain/scaling/scaling.json"
SCALING_KIND = "afscope_explain_scaling"
SCALING_VERSION = 1


class ScalingPoint(_Model):
    """One condition x task at one training-set size: the headline metric and its 95% CI."""

    size: int | None  # training units per task; None = all of them
    n_train: int = Field(ge=0)
    condition: str
    task: ExplainTask
    metric: str
    value: float
    lo: float
    hi: float
    n: int = Field(ge=0)


class ExplainScaling(_Model):
    """The whole ``scaling.json`` of ``afscope explain scaling``."""

    kind: Literal["afscope_explain_scaling"]
    format_version: int
    sizes: list[int]
    steps: int
    points: list[ScalingPoint]


def read_explain_scaling(run_dir: str | Path) -> ExplainScaling | None:
    """Read and validate ``RUN_DIR/explain/scaling/scaling.json``; None when absent."""
    path = Path(run_dir) / SCALING_FILE
    if not path.exists():
        return None
    return _load_artifact(path, SCALING_KIND, "format_version", SCALING_VERSION, ExplainScaling,
                          "explainer data-scaling curve")
