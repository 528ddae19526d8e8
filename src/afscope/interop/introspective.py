"""introspective-interp interop: export folders its dataloaders read unchanged; import its datasets.

introspective-interp (TransluceAI, arXiv 2511.08579; read at commit b0203a4 of its public
history) trains explainers on three tasks, each with its own loader and layout:

===================  =========================  ================================================
its task             our data                   what we write (its config key -> our folder)
===================  =========================  ================================================
hint_attribution     counterfactual context     ``train.jsonl`` / ``test.jsonl`` (``hint_path``)
act_patch            counterfactual steering    ``train.parquet`` / ``test.parquet``
                                                (``intervention_path``)
features_explain     explain features folder    ``features/layer_<L>.pkl``,
                                                ``explanations/<split>_explanations.pkl``,
                                                ``explanations/<split>_layer_feature_idxs.json``
                                                (``explanation_dir``)
===================  =========================  ================================================

The first two are read with ``datasets.load_dataset(folder, split=...)``, which finds the split
files by name and ignores our ``export.json`` (what loads and what cannot, per task, with the
counts), ``introspective_config.yaml`` (the config keys to paste into its YAML) and
``manifest.json``. Its loaders skip explainer prompts over 500 tokens without a word; the export
counts them with the given tokenizer and reports them instead. The per-task contracts are in
:mod:`~afscope.interop.ii_hint`, :mod:`~afscope.interop.ii_act_patch` and
:mod:`~afscope.interop.ii_features`.

Pickle is written only for features_explain, whose loader reads nothing else, and only by this
explicit export. Import reads its released datasets into afscope task folders
(:mod:`afscope.explain.schema`); reading a pickle needs ``trust_pickle``.

>>> from afscope.interop import IIExportConfig, export_introspective     # doctest: +SKIP
>>> out, summary = export_introspective(IIExportConfig(source="runs/cf", out="runs/ii"))
>>> summary["cannot"]
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import pickle
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from afscope.errors import ArtifactError, ConfigError, DataError
from afscope.fileio import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from afscope.interop import ii_act_patch, ii_features, ii_hint
from afscope.interop.config import IIExportConfig, IIImportConfig
from afscope.runs import MANIFEST, start_run

logger = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
CONFIG_FILE = "introspective_config.yaml"
SPLITS: tuple[str, ...] = ("train", "test")
EXPORT_COMMAND = "export introspective-interp"
IMPORT_COMMAND = "import introspective-interp"
#: what each of our sources becomes (its task name).
TASK_OF: dict[str, str] = {"context": "hint_attribution", "steering": "act_patch",
                           "features": "features_explain"}
#: its task -> our explainer task.
OUR_TASK: dict[str, str] = {"hint_attribution": "context_ablation", "act_patch": "steering",
                            "features_explain": "features"}
#: every file or folder an export may write besides the manifest (cleared before a re-export).
_OUTPUTS = ("train.jsonl", "test.jsonl", "train.parquet", "test.parquet",
            ii_features.FEATURES_DIR, ii_features.EXPLANATIONS_DIR, EXPORT_FILE, CONFIG_FILE)
#: the seed's question-type weights (hint_attribution).
_HINT_WEIGHTS = {"generative_explanation": 1.0, "orig_match": 0.5, "change_match": 0.5}
_MAX_LISTED = 20


# ---- small shared pieces -------------------------------------------------------------------------

def load_tokenizer(name_or_path: str) -> Any:
    """A tokenizer by embedded name (prepared on first use), local folder or hub id."""
    from transformers import AutoTokenizer

    from afscope.models.embedded import EMBEDDED, prepare

    folder: str | Path = prepare(name_or_path) if name_or_path in EMBEDDED else name_or_path
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"could not load tokenizer {name_or_path!r} (--tokenizer): "
                            f"{str(e).splitlines()[0]}") from None


def prompt_tokens(tokenizer: Any, prompt: str | list[dict[str, str]]) -> int:
    """Token count of an explainer prompt as its iterators measure it: a message list goes
    through the tokenizer's chat template when it has one (else the contents are joined)."""
    if not isinstance(prompt, str):
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(prompt, tokenize=False)
        else:
            prompt = "\n".join(m.get("content", "") for m in prompt)
    return len(tokenizer.tokenize(prompt))


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return atomic_write_text(path, text)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No ``datasets`` progress bars inside (afscope shows its own stages)."""
    import datasets

    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was:
            datasets.enable_progress_bars()


def write_parquet(path: Path, rows: Sequence[dict[str, Any]], features: Any) -> Path:
    """Rows as a parquet file with explicit ``datasets.Features`` (kept in its metadata)."""
    from datasets import Dataset

    ds = Dataset.from_list(list(rows), features=features)
    with _quiet_datasets(), atomic_path(path) as tmp:
        ds.to_parquet(str(tmp))
    return path


def _read_parquet(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Rows of parquet files (through ``datasets``, its cache in a temporary folder)."""
    import tempfile

    from datasets import Dataset

    with tempfile.TemporaryDirectory(prefix="afscope-parquet-") as cache, _quiet_datasets():
        try:
            ds = Dataset.from_parquet([str(p) for p in paths], cache_dir=cache)
        except Exception as e:  # pyarrow raises its own error types
            raise DataError(f"{paths[0]}: not a readable parquet file: {e}") from None
        return ds.to_list()


def write_pickle(path: Path, obj: Any) -> Path:
    """Pickle ``obj`` atomically: only for the files introspective-interp reads as pickles."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
    return path


def read_pickle(path: Path, trust: bool) -> Any:
    """Unpickle ``path``: refused (a ConfigError) unless the user passed ``--trust-pickle``."""
    if not trust:
        raise ConfigError(f"{path}: is a pickle file; unpickling runs code stored in the file. "
                          "afscope reads pickles only when you pass --trust-pickle (do so only for "
                          "files from a source you trust)")
    if not path.is_file():
        raise ArtifactError(f"{path}: not found")
    with open(path, "rb") as fh:
        try:
            return _TensorUnpickler(fh).load()
        except DataError as e:
            raise DataError(f"{path}: {e}") from None
        except Exception as e:  # a corrupt pickle can raise nearly anything
            raise DataError(f"{path}: could not unpickle: {type(e).__name__}: {e}") from None


def _storage_from_bytes(data: bytes) -> Any:
    """What ``torch.storage._load_from_bytes`` does, without running a pickle inside the bytes."""
    import io

    return torch.load(io.BytesIO(data), weights_only=True)


@functools.cache
def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only callables a pickle of introspective-interp's files may name: rebuilding tensors
    and numpy arrays, and ordered dicts. Everything else (``os.system``, ...) is refused."""
    import collections

    import numpy as np

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    multiarray = (getattr(np, "_core", None) or np.core).multiarray  # numpy 2 / numpy 1
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    return allowed


class _TensorUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :func:`_allowed_globals`: even a file the user
    trusts gets no way to run code beyond rebuilding tensors, arrays and plain containers."""

    def find_class(self, module: str, name: str) -> Any:
        fn = _allowed_globals().get((module, name))
        if fn is None:
            raise DataError(f"the pickle names {module}.{name}, which afscope does not load "
                            "(only tensors, numpy arrays and plain containers)")
        return fn


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=100)


def _over_limit(counts: dict[str, list[tuple[str, int]]], limit: int, tokenizer_name: str | None,
                what: str) -> dict[str, Any]:
    """The prompt-length report of an export: per split, how many prompts exceed ``limit``."""
    out: dict[str, Any] = {"limit": limit, "tokenizer": tokenizer_name, "counted": what}
    for split, items in counts.items():
        over = [(k, n) for k, n in items if n > limit]
        out[split] = {"n_prompts": len(items), "n_over": len(over),
                      "max_tokens": max((n for _, n in items), default=0),
                      "over": [k for k, _ in over[:_MAX_LISTED]]}
    return out


# ---- detection -----------------------------------------------------------------------------------

def _manifest_command(folder: Path) -> tuple[str | None, dict[str, Any]]:
    path = folder / MANIFEST
    if not path.is_file():
        return None, {}
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None, {}
    return m.get("command"), m


def source_kind(folder: Path) -> str:
    """``context``, ``steering`` or ``features``: what an export source folder holds."""
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not found (a counterfactual run folder or an explain "
                            "features task folder)")
    command, manifest = _manifest_command(folder)
    if (folder / "train.json").is_file() and (folder / "test.json").is_file():
        if command in ("counterfactual context", "counterfactual steering"):
            return command.split()[1]
        from afscope.explain.data import read_counterfactual

        recs = read_counterfactual(folder)
        first = next(iter([*recs["train"], *recs["test"]]), {})
        if "hint_prompt_full" in first:
            return "context"
        if "vector_sha256" in first:
            return "steering"
        raise DataError(f"{folder}: train.json/test.json hold neither context-ablation records "
                        "(hint_prompt_full) nor steering records (vector_sha256)")
    if (folder / "train.jsonl").is_file() and (folder / "test.jsonl").is_file():
        task = None
        stats = folder / "stats.json"
        if stats.is_file():
            try:
                task = json.loads(stats.read_text(encoding="utf-8")).get("task")
            except ValueError:
                task = None
        if task == "features":
            return "features"
        src = (manifest.get("config") or {}).get("source")
        hint = f" (this one was built from {src})" if src else ""
        raise ArtifactError(f"{folder}: an explain task folder of task {task!r}: only features "
                            "task folders are exported; context-ablation and steering task "
                            "folders keep no full prompts or answers, so export the "
                            f"`afscope counterfactual context|steering` run folder instead{hint}")
    raise ArtifactError(f"{folder}: not a counterfactual run folder (train.json + test.json) nor "
                        "an explain features task folder (train.jsonl + test.jsonl + "
                        "vectors.safetensors)")


def _prepare_out(out: Path, source: Path) -> None:
    """Refuse an --out that is the source or someone else's folder; clear an earlier export."""
    if out.resolve() == source.resolve():
        raise ConfigError(f"--out {out} is the source folder; choose another --out")
    if out.exists() and any(out.iterdir()):
        command, _ = _manifest_command(out)
        if command != EXPORT_COMMAND:
            raise ConfigError(f"--out {out} exists and is not an earlier `afscope {EXPORT_COMMAND}`"
                              " folder; choose a new or empty folder")
        for name in _OUTPUTS:  # a stale file of another task would be read as data
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()


def _records_tokenizer(cfg: IIExportConfig, records: dict[str, list[dict[str, Any]]]
                       ) -> tuple[Any, str]:
    models = sorted({str(r["model"]) for rs in records.values() for r in rs if r.get("model")})
    name = cfg.tokenizer or (models[0] if models else None)
    if name is None:
        raise ConfigError("the records name no model: pass --tokenizer (the target's tokenizer)")
    if cfg.tokenizer is None and len(models) > 1:
        logger.warning("records of several models %s: using the tokenizer of %s", models, name)
    return load_tokenizer(name), name


# ---- export, per task ----------------------------------------------------------------------------

def _export_context(cfg: IIExportConfig, src: Path, out: Path) -> dict[str, Any]:
    from afscope.explain.data import read_counterfactual

    records = read_counterfactual(src)
    unmonitored = ii_hint.source_unmonitored_system(src)
    rows = {split: [ii_hint.export_row(r, cfg.cue_placement, str(src / f"{split}.json"),
                                       unmonitored) for r in records[split]]
            for split in SPLITS}
    tokenizer, tok_name = _records_tokenizer(cfg, records)
    tmpl = ii_hint.templates(cfg.cue_placement)
    counts = {split: [(f"{r['id']}:{qt}", ii_hint.count_prompt(tokenizer, tmpl[qt], r, qt))
                      for r in rs for qt in ii_hint.QUESTION_TYPES] for split, rs in rows.items()}
    files = [write_jsonl(out / f"{split}.jsonl", rows[split]) for split in SPLITS]
    loads, cannot = ii_hint.notes(cfg.cue_placement)
    flags = [r["changed_pred_bc_hint"] for rs in rows.values() for r in rs]
    config = {"train": {
        "dataset": ["hint"], "hint_path": str(out.resolve()),
        "tasks": {"hint_attribution": {
            "self_consistency": False, "evaluation_type": "mixed",
            "question_types": {qt: {"evaluation_type": "exact_match",
                                    "weight": _HINT_WEIGHTS[qt],
                                    "prompts": [{"messages": tmpl[qt]}]}
                               for qt in ii_hint.QUESTION_TYPES}}}}}
    return {"files": files, "n_rows": {s: len(rows[s]) for s in SPLITS},
            "n_changed": sum(flags), "cue_placement": cfg.cue_placement,
            "prompt_limit": _over_limit(counts, cfg.prompt_token_limit, tok_name,
                                        "the explainer prompt + answer of each question type "
                                        "(introspective_config.yaml's templates)"),
            "loads": loads, "cannot": cannot, "config": config}


def _export_steering(cfg: IIExportConfig, src: Path, out: Path) -> dict[str, Any]:
    from afscope.explain.data import read_counterfactual

    records = read_counterfactual(src)
    tokenizer, tok_name = _records_tokenizer(cfg, records)
    rows: dict[str, list[dict[str, Any]]] = {}
    counts: Counter[str] = Counter()
    for split in SPLITS:
        rows[split], c = ii_act_patch.export_rows(records[split], str(src / f"{split}.json"), src,
                                                  tokenizer)
        counts.update(c)
    if not any(rows.values()):
        raise DataError(f"{src}: no record to export (alpha 0 records have no intervention)")
    feats = ii_act_patch.features()
    files = [write_parquet(out / f"{split}.parquet", rows[split], feats) for split in SPLITS]
    lengths = {split: [(r["id"], ii_act_patch.count_prompt(tokenizer, r)) for r in rs]
               for split, rs in rows.items()}
    loads, cannot = ii_act_patch.notes(counts)
    layers = sorted({x for rs in rows.values() for r in rs for x in r["layer"]})
    config = {"train": {
        "dataset": ["steering"], "intervention_path": str(out.resolve()), "layers": layers,
        "tasks": {"act_patch": {
            "self_consistency": False,
            "question_types": {"generative_explanation": {
                "evaluation_type": "exact_match", "weight": 1.0,
                "prompts": [ii_act_patch.TEMPLATE]}}}}}}
    return {"files": files, "n_rows": {s: len(rows[s]) for s in SPLITS},
            "n_changed": sum(r["is_different"] for rs in rows.values() for r in rs),
            "counts": dict(sorted(counts.items())),
            "prompt_limit": _over_limit(lengths, cfg.prompt_token_limit, tok_name,
                                        "the explainer prompt (introspective_config.yaml's "
                                        "template) + answer, 3 continuous-token markers included"),
            "loads": loads, "cannot": cannot, "config": config}


def _export_features(cfg: IIExportConfig, src: Path, out: Path) -> dict[str, Any]:
    from afscope.explain.schema import VECTORS_FILE, read_examples, read_vectors

    splits = {split: read_examples(src / f"{split}.jsonl") for split in SPLITS}
    for split, exs in splits.items():
        bad = [e.id for e in exs if e.task != "features"]
        if bad:
            raise DataError(f"{src / f'{split}.jsonl'}: example {bad[0]!r} is not a features "
                            "example")
    vectors, _ = read_vectors(src / VECTORS_FILE)
    width_hint = None
    stats_path = src / "stats.json"
    if stats_path.is_file():
        try:
            width_hint = (json.loads(stats_path.read_text(encoding="utf-8")).get("sae") or {}
                          ).get("d_sae")
        except ValueError:
            width_hint = None
    mats, pairs = ii_features.build_export(splits, vectors, str(src),
                                           width_hint if isinstance(width_hint, int) else None)
    if not mats:
        raise DataError(f"{src}: no feature example to export")
    files = [write_pickle(out / ii_features.layer_file(layer), m) for layer, m in mats.items()]
    for split in SPLITS:
        files.append(write_pickle(out / ii_features.SPLIT_EXPLANATIONS.format(split=split),
                                  pairs[split]))
        keys = [[layer, f] for (layer, f), _ in pairs[split]]
        files.append(atomic_write_text(out / ii_features.SPLIT_KEYS.format(split=split),
                                       json.dumps(keys) + "\n"))
    limit: dict[str, Any]
    if cfg.tokenizer is not None:
        tokenizer = load_tokenizer(cfg.tokenizer)
        lengths = {split: [(f"L{layer}:f{f}",
                            ii_features.count_prompt(tokenizer, layer, label))
                           for (layer, f), label in ps] for split, ps in pairs.items()}
        limit = _over_limit(lengths, cfg.prompt_token_limit, cfg.tokenizer,
                            "the explainer prompt (introspective_config.yaml's template) + "
                            "description, 3 continuous-token markers included")
    else:
        limit = {"limit": cfg.prompt_token_limit, "tokenizer": None,
                 "counted": "not counted: pass --tokenizer (the explainer's) to count"}
    loads, cannot = ii_features.notes()
    layers = sorted(mats)
    config = {"train": {
        "dataset": ["sae_explanations"], "explanation_dir": str(out.resolve()),
        "sae_save_path": ii_features.FEATURES_DIR,
        "split_explanations_data": ii_features.SPLIT_EXPLANATIONS,
        "split_keys": ii_features.SPLIT_KEYS, "layers": layers,
        "tasks": {"features_explain": {"question_types": {"generative_explanation": {
            "evaluation_type": "semantic_similarity", "weight": 1.0,
            "prompts": [ii_features.TEMPLATE]}}}}},
        "test": {"tasks": {"features_explain": {"evaluation_type": "semantic_similarity"}}}}
    return {"files": files, "n_rows": {s: len(pairs[s]) for s in SPLITS},
            "layers": {str(layer): {"shape": list(m.shape)} for layer, m in mats.items()},
            "prompt_limit": limit, "loads": loads, "cannot": cannot, "config": config}


_EXPORTERS = {"context": _export_context, "steering": _export_steering,
              "features": _export_features}


def export_introspective(cfg: IIExportConfig) -> tuple[Path, dict[str, Any]]:
    """Export ``cfg.source`` into ``cfg.out`` for introspective-interp; returns ``(out, summary)``.

    The summary (also ``export.json``) names its task, the files, the row counts per split, the
    prompts over its 500-token limit, what loads in its loader (``loads``) and what cannot be
    represented and why (``cannot``), and the config keys to use (``config``, also
    ``introspective_config.yaml``).
    """
    if cfg.source is None:
        raise ConfigError("export introspective-interp: give the RUN_OR_TASK_DIR (positional or "
                          "--source)")
    src, out = Path(cfg.source), Path(cfg.out)
    kind = source_kind(src)
    _prepare_out(out, src)
    with start_run(EXPORT_COMMAND, cfg.to_dict(), out) as run:
        run.add_dataset("source", {"path": str(src), "kind": kind})
        with run.timer("export"):
            summary = _EXPORTERS[kind](cfg, src, out)
        files = summary.pop("files")
        summary = {"task": TASK_OF[kind], "source": str(src), "source_kind": kind,
                   "files": sorted(str(p.relative_to(out)) for p in files), **summary}
        atomic_write_text(out / CONFIG_FILE,
                          "# paste these keys into an introspective-interp config "
                          f"({summary['task']}); see {EXPORT_FILE} for what loads\n"
                          + _yaml(summary["config"]))
        atomic_write_json(out / EXPORT_FILE, summary)
        for split in SPLITS:
            lim = summary["prompt_limit"].get(split)
            if lim and lim["n_over"]:
                logger.warning("%s: %d of %d %s prompts are over %d tokens: introspective-interp "
                               "skips them silently (listed in %s)", summary["task"],
                               lim["n_over"], lim["n_prompts"], split, cfg.prompt_token_limit,
                               EXPORT_FILE)
        for name in (*summary["files"], EXPORT_FILE, CONFIG_FILE):
            run.add_output(name, {"sha256": sha256_file(out / name)})
        run.add_output("task", summary["task"])
        run.add_output("n_rows", summary["n_rows"])
    return out, summary


# ---- import --------------------------------------------------------------------------------------

def _split_files(folder: Path, split: str) -> list[Path]:
    for pattern in (f"{split}.jsonl", f"{split}.json", f"{split}.parquet",
                    f"data/{split}-*.parquet", f"{split}-*.parquet", f"data/{split}.parquet",
                    f"data/{split}-*.jsonl", f"data/{split}.jsonl"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    return []


def read_rows(folder: Path, split: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of one split of a released dataset folder (JSON lines, JSON array, parquet, or a
    ``datasets`` ``save_to_disk`` folder); never a pickle."""
    if (folder / "dataset_dict.json").is_file():
        from datasets import load_from_disk

        dd = load_from_disk(str(folder))
        if split not in dd:
            raise ArtifactError(f"{folder}: no {split!r} split (has {sorted(dd)})")
        ds = dd[split]
        return ds.select(range(min(limit, len(ds)))).to_list() if limit else ds.to_list()
    files = _split_files(folder, split)
    if not files:
        raise ArtifactError(f"{folder}: no {split} file ({split}.jsonl, {split}.json, "
                            f"{split}.parquet or data/{split}-*.parquet)")
    rows: list[dict[str, Any]] = []
    for path in files:
        if path.suffix == ".parquet":
            rows += _read_parquet([path])
        elif path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except ValueError as e:
                            raise DataError(f"{path}:{n}: not valid JSON: {e}") from None
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise DataError(f"{path}: not valid JSON: {e}") from None
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON array of rows")
            rows += data
        if limit is not None and len(rows) >= limit:
            break
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise DataError(f"{folder}: {split} row {i}: expected an object")
    return rows[:limit] if limit is not None else rows


def import_task(folder: Path) -> str:
    """Which of its tasks a released dataset folder holds."""
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not found (a released introspective-interp dataset "
                            "folder)")
    if (folder / ii_features.FEATURES_DIR).is_dir() and \
            (folder / ii_features.EXPLANATIONS_DIR).is_dir():
        return "features_explain"
    first = next(iter(read_rows(folder, "train", limit=1)), {})
    if "hint_prompt_full" in first:
        return "hint_attribution"
    if "patch_position" in first:
        return "act_patch"
    raise DataError(f"{folder}: cannot tell its task from the train rows (no hint_prompt_full, "
                    "no patch_position); pass --task")


def _import_features(cfg: IIImportConfig, src: Path
                     ) -> tuple[dict[str, list[Any]], dict[str, torch.Tensor], Counter[str]]:
    pairs = {}
    for split in SPLITS:
        path = src / ii_features.SPLIT_EXPLANATIONS.format(split=split)
        data = read_pickle(path, cfg.trust_pickle)
        ps = ii_features.parse_pairs(data, str(path))
        if cfg.layers is not None:
            ps = [p for p in ps if p[0] in set(cfg.layers)]
        pairs[split] = ps[:cfg.max_examples] if cfg.max_examples else ps
    layers = sorted({p[0] for ps in pairs.values() for p in ps})
    if not layers:
        raise DataError(f"{src}: no feature to import" + (f" in layers {cfg.layers}"
                                                         if cfg.layers else ""))
    splits: dict[str, list[Any]] = {s: [] for s in SPLITS}
    vectors: dict[str, torch.Tensor] = {}
    skipped: Counter[str] = Counter()
    for layer in layers:  # one layer matrix in memory at a time
        path = src / ii_features.layer_file(layer)
        m = read_pickle(path, cfg.trust_pickle)
        if not hasattr(m, "shape") or len(m.shape) != 2:
            raise DataError(f"{path}: expected a (d_model, n_features) matrix, got "
                            f"{type(m).__name__}")
        for split in SPLITS:
            exs, vecs, sk = ii_features.import_examples(
                [p for p in pairs[split] if p[0] == layer], {layer: m}, split, str(path))
            splits[split] += exs
            vectors.update(vecs)
            skipped.update(sk)
        del m
    return splits, vectors, skipped


def import_introspective(cfg: IIImportConfig) -> tuple[Path, dict[str, Any]]:
    """Import a released introspective-interp dataset into an afscope task folder.

    hint_attribution -> ``context_ablation`` (three examples per row), act_patch -> ``steering``
    (one example per row, its intervention vector as the vector token), features_explain ->
    ``features`` (one example per (layer, feature)). Their split is kept. Returns
    ``(out, stats)``.
    """
    from afscope.explain.data import summarize, write_task_folder
    from afscope.explain.schema import check_vectors

    if cfg.source is None:
        raise ConfigError("import introspective-interp: give the dataset folder SRC (positional "
                          "or --source)")
    src, out = Path(cfg.source), Path(cfg.out)
    if out.resolve() == src.resolve():
        raise ConfigError(f"--out {out} is the source folder; choose another --out")
    task = cfg.task if cfg.task != "auto" else import_task(src)
    if task == "features_explain" and not cfg.trust_pickle:
        read_pickle(src / ii_features.SPLIT_EXPLANATIONS.format(split="train"), False)
    with start_run(IMPORT_COMMAND, cfg.to_dict(), out) as run:
        run.add_dataset("source", {"path": str(src), "task": task})
        splits: dict[str, list[Any]] = {}
        vectors: dict[str, torch.Tensor] = {}
        skipped: Counter[str] = Counter()
        with run.timer("import"):
            if task == "features_explain":
                splits, vectors, skipped = _import_features(cfg, src)
            else:
                tokenizer = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
                for split in SPLITS:
                    rows = read_rows(src, split, cfg.max_examples)
                    where = f"{src} ({split})"
                    if task == "hint_attribution":
                        exs, sk = ii_hint.import_examples(rows, split, where)
                    else:
                        exs, vecs, sk = ii_act_patch.import_examples(rows, split, where,
                                                                     tokenizer)
                        vectors.update(vecs)
                    splits[split] = exs
                    skipped.update(sk)
        train, test = splits["train"], splits["test"]
        ours = OUR_TASK[task]
        check_vectors([*train, *test], vectors, str(src))
        stats = summarize(ours, train, test, vectors)
        both = {e.unit for e in train} & {e.unit for e in test}
        if both:
            w = (f"{len(both)} unit(s) (same input) are in both of its splits; afscope's "
                 "evaluation assumes disjoint units")
            logger.warning("import (%s): %s", task, w)
            stats["warnings"].append(w)
        notes = {"hint_attribution": "answers are its answer strings (e.g. MMLU letters), not "
                                     "comply/refuse/partial: `afscope explain train` reads them; "
                                     "`afscope explain eval` scores exact match only (its "
                                     "behaviour parser reads behaviour labels)",
                 "act_patch": "answers are its next-token change sentences: `afscope explain "
                              "train` reads them; `afscope explain eval` scores exact match only",
                 "features_explain": "descriptions are scored like afscope's (judge and "
                                     "embedding similarity)"}
        stats.update({"source": {"path": str(src), "task": task}, "note": notes[task],
                      "n_skipped": sum(skipped.values()), "skipped": dict(skipped)})
        write_task_folder(run, out, ours, train, test, vectors, stats)
    return out, stats
