"""Configs of ``afscope explain data|train|eval`` (seed 000's explainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from afscope.config import BaseConfig
from afscope.judge.config import judge_llm_flag
from afscope.llm import LLMConfig
from afscope.organism.config import TrainScaleFields

DType = Literal["float32", "bfloat16", "float16"]
Mode = Literal["replace", "add"]
Condition = Literal["trained", "zero_shot", "few_shot", "majority", "nearest_neighbour",
                    "projector_readout", "no_vector", "shuffled_vector", "random_vector"]
CONDITIONS: tuple[str, ...] = ("trained", "zero_shot", "few_shot", "majority",
                               "nearest_neighbour", "projector_readout", "no_vector",
                               "shuffled_vector", "random_vector")
#: seed 000's question-type weights (generative 1.0, orig/change match 0.5 each).
SEED_WEIGHTS: dict[str, float] = {"context_ablation/generative_explanation": 1.0,
                                  "context_ablation/orig_match": 0.5,
                                  "context_ablation/change_match": 0.5}


class ExplainDataConfig(BaseConfig):
    """Config of ``afscope explain data``."""

    task: Literal["context_ablation", "steering", "features"] = Field(
        description="Which explainer task to build: context_ablation (text only), steering "
        "(steering vector + prompt) or features (SAE decoder vector -> description).")
    source: Path | None = Field(
        None, description="context_ablation/steering: a dataset folder of `afscope counterfactual "
        "context|steering` (train.json + test.json). features with --targets descriptions: an "
        "`afscope features` folder (descriptions.jsonl, optional themes.json), a JSON file mapping "
        "feature index -> description or list of descriptions, or with --assignments the seed's "
        "cluster_summaries.json ({cluster_id: description}). Not used with --targets activations.")
    targets: Literal["descriptions", "activations", "tokens"] = Field(
        "descriptions", description="features only: where a feature's target description comes "
        "from: 'descriptions' (--source), 'activations' (a template sentence built from the "
        "feature's top-activating rows of --cache: their majority category and AF share) or "
        "'tokens' (the tokens it fires on in --cache's per-token latents and the tokens its "
        "decoder direction promotes through the model's unembedding: 'Fires on: <<<tok>>>, ...').")
    question_types: list[Literal["fires_on", "promotes"]] = Field(
        ["fires_on", "promotes"], min_length=1, description="--targets tokens: which token "
        "questions each feature gets.")
    novel_fraction: float = Field(
        0.15, ge=0.0, lt=1.0, description="--targets tokens: share of the distinct fires_on "
        "target tokens held out of training: every feature naming one goes to the test split, "
        "so the test split has features whose tokens no training target names (the 'novel' "
        "subset, where copying a neighbour cannot score).")
    context_fraction: float = Field(
        0.3, gt=0.0, lt=1.0, description="--targets tokens: share of cache rows held out of the "
        "targets; they give each test feature the contexts its predictions' faithfulness is "
        "scored on.")
    cache: Path | None = Field(
        None, description="features with --targets activations (required there): an activation "
        "cache folder of `afscope extract --sae` holding the SAE's per-sample max latents.")
    top_k: int = Field(10, ge=1, description="--targets activations: how many top-activating rows "
                       "of the cache describe a feature.")
    min_active: int = Field(3, ge=1, description="--targets activations: features active "
                            "(> 0) on fewer cache rows are skipped as dead or rare.")
    assignments: Path | None = Field(
        None, description="features only: the seed's cluster_assignments.json ({feature_idx: "
        "cluster_id}); --source is then cluster_summaries.json.")
    sae: Path | None = Field(
        None, description="features only (required there): SAE folder (cfg.json + "
        "sae_weights.safetensors), or an `afscope sae train` run folder holding it in sae/, "
        "whose decoder rows W_dec[f] are the feature vectors.")
    out: Path = Field(Path("runs/explain-data"), description="Output folder: train.jsonl, "
                      "test.jsonl, vectors.safetensors, stats.json, manifest.json.")
    seed: int = Field(0, description="Seed of the feature split and of --max-features sampling.")
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="features only: share of features in the test split "
        "(behaviour tasks keep the counterfactual dataset's own train/test split).")
    max_features: int | None = Field(
        None, ge=1, description="features only: keep at most this many described features "
        "(a seeded random subset).")

    @model_validator(mode="after")
    def _check_task_fields(self) -> ExplainDataConfig:
        if self.task == "features":
            if self.sae is None:
                raise ValueError("task 'features' needs --sae (the SAE whose decoder rows are the "
                                 "feature vectors)")
            if self.targets in ("activations", "tokens"):
                if self.cache is None:
                    raise ValueError(f"--targets {self.targets} needs --cache (an activation "
                                     "cache with the SAE's latents, from `afscope extract --sae`"
                                     + (" --token-topk K" if self.targets == "tokens" else "")
                                     + ")")
                for name in ("source", "assignments"):
                    if getattr(self, name) is not None:
                        raise ValueError(f"{name!r} is not used with --targets {self.targets} "
                                         "(the targets come from --cache)")
            else:
                if self.source is None:
                    raise ValueError("task 'features' needs --source (feature descriptions), or "
                                     "--targets activations with --cache")
                if self.cache is not None:
                    raise ValueError("'cache' is only used with --targets activations|tokens")
        else:
            if self.source is None:
                raise ValueError(f"task {self.task!r} needs --source (a counterfactual dataset "
                                 "folder)")
            for name in ("assignments", "sae", "max_features", "cache"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name!r} is only used by task 'features', not "
                                     f"{self.task!r}")
            if self.targets != "descriptions":
                raise ValueError(f"'targets' is only used by task 'features', not {self.task!r}")
        return self

    @property
    def input_path(self) -> Path:
        """The folder or file the examples are built from: --source, else --cache."""
        path = self.source if self.source is not None else self.cache
        assert path is not None  # the validator requires one of them
        return Path(path)


class ExplainTrainConfig(TrainScaleFields):
    """LoRA-train an explainer on one or more task folders (multi-task with per-task weights)."""

    data: list[Path] = Field(description="Task folder(s) from `afscope explain data` (their "
                             "train.jsonl; several folders = multi-task training).", min_length=1)
    model: str = Field("smollm2-135m-instruct", description="Explainer model: embedded name, "
                       "local HF folder or hub id (the target itself = self-explanation).")
    base_adapter: Path | None = Field(None, description="A LoRA adapter folder (or `organism "
                                      "train` run) merged into --model before the explainer's "
                                      "own LoRA: with an organism as the target, the explainer "
                                      "is then the model it explains (self-explanation proper), "
                                      "not the organism's base.")
    out: Path = Field(Path("runs/explain-train"), description="Run directory: adapter/, "
                      "checkpoints/, explainer.json, train_log.json, manifest.json.")
    weights: dict[str, float] = Field(dict(SEED_WEIGHTS), description="Loss weight per "
                                      "'task/question_type' or 'task' (default 1.0).")
    mode: Mode = Field("replace", description="Continuous tokens: replace the placeholder "
                       "embeddings, or add norm-matched vectors after block inject_layer.")
    inject_layer: int = Field(1, ge=0, description="Block after which 'add' mode adds vectors.")
    projection: Literal["auto", "linear", "none", "lens"] = Field(
        "auto", description="Per-layer full-rank projection target -> explainer width: auto = "
        "only when the widths differ; linear = always (identity init when equal); lens = a fixed "
        "token lens fit on the cache's text (target residual -> explainer embedding of the same "
        "token; explain/lens.py), which LoRA then learns to read.")
    lens_cache: Path | None = Field(None, description="Activation cache with a per-token store "
                                    "whose text fits the token lens (default: the --cache of the "
                                    "first task folder built from one).")
    lens_tokens: int = Field(60_000, gt=0, description="Tokens the token lens is fit on.")
    lens_ridge: float = Field(0.01, gt=0, description="Ridge penalty of the token lens, relative "
                              "to the mean squared residual norm.")
    r: int = Field(16, gt=0, description="LoRA rank.")
    lora_alpha: int = Field(32, gt=0, description="LoRA alpha.")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | None = Field(None, description="Module names LoRA adapts "
                                             "(default: attention and MLP projections).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    epochs: float = Field(3.0, gt=0, description="Passes over the training data.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps (-1 = epochs).")
    batch_size: int = Field(4, gt=0, description=(
        "Examples per step over all processes (the global batch): N processes of torchrun / "
        "accelerate launch take batch_size/N each, so it must divide by N."))
    grad_accum: int = Field(1, gt=0, description="Gradient accumulation steps.")
    max_length: int = Field(1024, gt=0, description="Longest example in tokens; longer ones are "
                            "dropped and counted (never cut).")
    scheduler: Literal["linear", "cosine", "constant"] = Field("linear", description="LR schedule.")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="Share of training units "
                                "(scenarios/features) held out for evaluation during training.")
    max_train_units: int | None = Field(None, gt=0, description="Train on at most this many "
                                        "seeded units (features/scenarios) of each task, after "
                                        "the validation split: the smaller, nested training sets "
                                        "of a data-scaling curve.")
    balance_changed: bool = Field(False, description="Repeat each behaviour task's rarer "
                                  "kind of training example (changed or unchanged) until it "
                                  "matches the other (a 10-15%-changed set otherwise trains the "
                                  "answer 'no change', a 70%-changed one 'change').")
    eval_steps: int = Field(20, gt=0, description="Evaluate (and checkpoint) every N steps.")
    eval_size: int = Field(64, gt=0, description="Fixed validation subset size (same rows at "
                           "every evaluation).")
    best_metric: Literal["loss", "exact"] = Field("loss", description="Validation metric that "
                                                 "picks the checkpoint kept and drives early "
                                                 "stopping: 'loss' (answer tokens' mean loss) or "
                                                 "'exact' (share of answers whose every token is "
                                                 "the top logit, i.e. greedy decoding writes "
                                                 "them: for one-sentence behaviour answers, "
                                                 "where a run at chance on the deciding token "
                                                 "still has a low mean loss).")
    patience: int | None = Field(3, ge=1, description="Early stopping: evaluations without "
                                 "improvement of the validation metric (None = off).")
    save_total_limit: int = Field(2, ge=1, description="Checkpoints kept (the best is never "
                                  "deleted).")
    resume: bool = Field(False, description="Resume from the last checkpoint in OUT/checkpoints "
                         "(same data order).")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device (cpu forces use_cpu).")
    seed: int = Field(0, description="Seed of the split, LoRA init, projection and data order.")


class ExplainEvalConfig(BaseConfig):
    """Evaluate trained explainers against baselines and controls on held-out examples."""

    explainers: list[Path] = Field(description="Train run directories (several = self vs "
                                   "cross-model in one table).", min_length=1)
    data: list[Path] | None = Field(None, description="Task folder(s) whose test.jsonl is "
                                    "evaluated; default: the folders each explainer trained on.")
    out: Path = Field(Path("runs/explain-eval"), description="Run directory: predictions/, "
                      "metrics.json, manifest.json.")
    conditions: list[Condition] = Field(list(CONDITIONS), description="Rows of the table: the "
                                        "trained explainer, baselines and vector controls.")
    few_shot_k: int = Field(3, ge=1, description="In-context examples of the few-shot baseline.")
    max_examples: int | None = Field(None, ge=1, description="Evaluate only the first N test "
                                     "examples per task (quick runs).")
    max_tokens: int = Field(48, gt=0, description="New tokens per explanation.")
    batch_size: int = Field(8, gt=0, description="Prompts per generation batch.")
    judge: Literal["none", "llm"] = Field("none", description="LM-judge similarity of feature "
                                          "descriptions (1-5 -> 0-1, max over references).")
    llm: LLMConfig | None = Field(None, description="LLM judge settings (judge llm).")
    embed_similarity: bool = Field(True, description="Cosine similarity of description "
                                   "embeddings (offline MiniLM), beside the LM judge.")
    simulate: bool = Field(False, description="Score feature answers with an LLM simulator "
                           "(--llm; the local default otherwise): the correlation of the "
                           "activations it predicts from the answer alone with the real ones on "
                           "held-out contexts. Needs a capable backend to mean much.")
    n_boot: int = Field(1000, gt=0, description="Bootstrap resamples of every CI.")
    dtype: DType = Field("float32", description="Model dtype.")
    device: str = Field("cpu", description="torch device.")
    seed: int = Field(0, description="Seed of shuffles, random vectors, few-shot picks, CIs.")

    @field_validator("llm", mode="before")
    @classmethod
    def _parse_llm(cls, v: Any) -> Any:
        return judge_llm_flag(v)


class ExplainScalingConfig(ExplainTrainConfig):
    """A data-scaling curve: one explainer per training-set size (nested seeded subsets of the
    units of each task, the same steps each), every one scored on the same held-out examples,
    with the baselines beside it (paper-style scaling figure; ``OUT/scaling.json``)."""

    out: Path = Field(Path("runs/explain-scaling"), description="Run directory: n<size>/train, "
                      "n<size>/eval per size, scaling.json, manifest.json.")
    sizes: list[int] = Field(description="Training units (features/scenarios) per task, one "
                             "explainer each; a size above a task's units uses all of them.",
                             min_length=1)
    controls: list[Condition] = Field(["majority", "nearest_neighbour", "shuffled_vector"],
                                      description="Conditions scored beside 'trained': baselines "
                                      "at every size; vector controls (which generate) at the "
                                      "largest only.")
    eval_examples: int | None = Field(64, ge=1, description="Held-out examples per task scored "
                                      "at each size (None = all).")
    max_tokens: int = Field(24, gt=0, description="New tokens per explanation.")
    eval_batch_size: int = Field(16, gt=0, description="Prompts per generation batch.")
    n_boot: int = Field(500, gt=0, description="Bootstrap resamples of every CI.")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: list[int]) -> list[int]:
        if any(n <= 0 for n in v) or len(set(v)) != len(v):
            raise ValueError("sizes must be distinct positive integers")
        return sorted(v)
