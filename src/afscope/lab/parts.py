"""The three parts of the behaviour lab, each a chain of existing components in its own run dir.

* **steering** (``lab/steer``): the synthetic corpus -> a diffmean AF vector
  (:func:`afscope.steer.run_diffmean`, ``lab/steer/vector``) -> a sweep over layers x alphas on
  seeded requests, judged, summarized and plotted (:func:`afscope.steer.run_sweep`).
* **organism** (``lab/organism``): organism data (``data``) -> LoRA training (``train``) -> the
  base model and the organism answer every cue x held-out request (``elicit_base``, ``elicit``)
  -> compliance gaps with bootstrap CIs and their paired difference (:func:`afscope.organism.validate`).
* **context** (``lab/context``): seed 000's monitored/unmonitored ablation on the organism (or
  the base model when no organism was trained).

One loaded base model serves every part. It is never modified: training wraps a copy (peft
injects LoRA layers into the module it is given) and the organism is the saved adapter merged
into another copy, exactly what ``afscope organism elicit`` would load from disk.

Reruns resume: generations and labels live in the components' resumable stores, and the two
steps that are not row stores (the vector, the LoRA training) are reused when their run
directory is complete with the same config and inputs. Retraining would change the adapter's
bytes, and the elicitation store would then, rightly, refuse to mix old and new answers.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
from pathlib import Path
from typing import Any

from afscope.counterfactual import BuildResult, ContextConfig, build_context_dataset
from afscope.data import Dataset
from afscope.data.synth import generate_corpus
from afscope.fileio import sha256_file
from afscope.lab.config import LabConfig
from afscope.llm import LLMBackend
from afscope.models import LoadedModel
from afscope.organism import (
    ElicitConfig,
    OrganismDataConfig,
    OrganismTrainConfig,
    ValidateConfig,
    build_organism_data,
    elicit,
    load_organism,
    read_judged,
    train_organism,
    validate,
)
from afscope.organism.train import ADAPTER_WEIGHTS
from afscope.runs import MANIFEST
from afscope.steer import (
    DiffMeanConfig,
    SweepConfig,
    load_vector,
    run_diffmean,
    run_sweep,
)
from afscope.steer.vectors import VECTOR_FILE

log = logging.getLogger(__name__)

STEER_DIR, ORGANISM_DIR, CONTEXT_DIR = "steer", "organism", "context"
VECTOR_NAME = "af"


def completed_run(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest of ``run_dir`` when it finished (``status: complete``) with ``config``."""
    try:
        manifest = json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("status") != "complete":
        return None
    return manifest if manifest.get("config") == config else None


def manifest_outputs(run_dir: Path) -> dict[str, Any]:
    """The ``outputs`` of a finished run's manifest."""
    return json.loads((Path(run_dir) / MANIFEST).read_text(encoding="utf-8"))["outputs"]


# -- steering ------------------------------------------------------------------------------------

def run_steering_part(cfg: LabConfig, base: LoadedModel, part: Path) -> dict[str, Any]:
    """Vector + sweep on the base model; returns ``{"summary", "vector", "plots"}``."""
    # the corpus is a pure function of (n, seed): naming the file after them puts both into the
    # vector's config, so a reused vector always comes from the same records
    corpus = part / f"corpus_n{cfg.steer_corpus}_seed{cfg.seed}.jsonl"
    if not corpus.is_file():
        Dataset.from_records(generate_corpus(cfg.steer_corpus, cfg.seed),
                             name="synth").to_jsonl(corpus)
    vcfg = DiffMeanConfig(model=cfg.model, data_a=corpus, layers=cfg.steer_layers,
                          max_length=cfg.steer_max_length, out=part / "vector", dtype=cfg.dtype,
                          device=cfg.device, seed=cfg.seed)
    vfile = part / "vector" / VECTOR_FILE
    if completed_run(vcfg.out, vcfg.to_dict()) is None or not vfile.is_file():
        vfile = run_diffmean(vcfg, lm=base)
    else:
        log.info("steering: reusing the vector in %s", vfile)
    scfg = SweepConfig(model=cfg.model, vectors=[f"{VECTOR_NAME}={vfile}"],
                       layers=cfg.steer_layers, alphas=cfg.steer_alphas,
                       max_samples=cfg.steer_prompts, n_generations=1, cue=cfg.steer_cue,
                       max_tokens=cfg.max_tokens, gen_batch_size=cfg.gen_batch_size,
                       judge_method=cfg.judge, llm=cfg.llm, out=part, dtype=cfg.dtype,
                       device=cfg.device, n_boot=cfg.n_boot, seed=cfg.seed)
    summary = run_sweep(scfg, lm=base)
    outputs = manifest_outputs(part)
    return {"summary": summary, "vector": load_vector(vfile),
            "plots": [part / "plots" / name for name in outputs.get("plots", [])],
            "generated": outputs.get("generated", 0)}


# -- organism ------------------------------------------------------------------------------------

def _copy(lm: LoadedModel) -> LoadedModel:
    return LoadedModel(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer, info=lm.info)


def train_or_reuse(tcfg: OrganismTrainConfig, base: LoadedModel) -> dict[str, Any]:
    """Train the LoRA organism on a copy of ``base``, or reuse a finished identical run."""
    done = completed_run(tcfg.out, tcfg.to_dict())
    adapter = Path(tcfg.out) / "adapter" / ADAPTER_WEIGHTS
    if (done is not None and adapter.is_file()
            and done.get("datasets", {}).get("data", {}).get("sha256") == sha256_file(tcfg.data)):
        log.info("organism: reusing the adapter trained in %s", tcfg.out)
        return done["outputs"]
    _, summary = train_organism(tcfg, lm=_copy(base))
    gc.collect()  # the training copy (LoRA layers injected) is garbage now
    return summary


def organism_model(base: LoadedModel, adapter: Path) -> LoadedModel:
    """The adapter merged into a copy of ``base`` (its own model identity: see
    :func:`afscope.organism.load_organism`)."""
    return load_organism(_copy(base), adapter)


def run_organism_part(cfg: LabConfig, base: LoadedModel, part: Path,
                      backend: LLMBackend | None) -> tuple[dict[str, Any], LoadedModel]:
    """Data, training, elicitation of base and organism, validation; returns the results and
    the merged organism (for the context ablation)."""
    data, _ = build_organism_data(OrganismDataConfig(
        n=cfg.organism_examples, seed=cfg.seed, recipe=cfg.organism_recipe,
        test_fraction=cfg.organism_test_fraction, out=part / "data"))
    tcfg = OrganismTrainConfig(model=cfg.model, data=data, out=part / "train",
                               r=cfg.organism_r, lora_alpha=2 * cfg.organism_r,
                               lr=cfg.organism_lr, max_steps=cfg.organism_steps,
                               batch_size=cfg.organism_batch_size,
                               scheduler=cfg.organism_scheduler,
                               max_length=cfg.organism_max_length, dtype=cfg.dtype,
                               device=cfg.device, seed=cfg.seed)
    train = train_or_reuse(tcfg, base)
    common = {"model": cfg.model, "data": data, "n_requests": cfg.organism_requests,
              "max_tokens": cfg.organism_max_tokens, "gen_batch_size": cfg.gen_batch_size,
              "judge_method": cfg.judge, "llm": cfg.llm, "dtype": cfg.dtype,
              "device": cfg.device, "seed": cfg.seed}
    base_run = elicit(ElicitConfig(base_only=True, out=part / "elicit_base", **common),
                      lm=base, backend=backend)
    organism = organism_model(base, tcfg.out)
    org_run = elicit(ElicitConfig(adapter=tcfg.out, out=part / "elicit", **common),
                     lm=organism, backend=backend)
    validation = validate(ValidateConfig(organism=part / "elicit", base=part / "elicit_base",
                                         out=part, n_boot=cfg.n_boot, seed=cfg.seed))
    return {"train": train, "validation": validation,
            "rows": {"organism": read_judged(part / "elicit"),
                     "base": read_judged(part / "elicit_base")},
            "generated": base_run["generated"]["done"] + org_run["generated"]["done"]}, organism


# -- context ablation ----------------------------------------------------------------------------

def run_context_part(cfg: LabConfig, target: LoadedModel, part: Path,
                     backend: LLMBackend | None) -> BuildResult:
    """Seed 000's context ablation of ``target`` on ``context_scenarios`` synthetic requests,
    split stratified by whether each scenario changed (the designed organism changes in some
    domains only, and 8 test scenarios drawn blind to that can be nearly all of one kind)."""
    ccfg = ContextConfig(out=part, n=cfg.context_scenarios, seed=cfg.seed, model=cfg.model,
                         dtype=cfg.dtype, device=cfg.device, max_tokens=cfg.max_tokens,
                         batch_size=cfg.gen_batch_size, judge=cfg.judge, llm=cfg.llm,
                         stratify_changed=True)
    return build_context_dataset(ccfg, lm=target, backend=backend)
