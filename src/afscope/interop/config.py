"""Configs of ``afscope export|import introspective-interp``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from afscope.config import BaseConfig

#: introspective-interp's task names (its dataloaders' registry keys).
IITask = Literal["hint_attribution", "act_patch", "features_explain"]


class IIExportConfig(BaseConfig):
    """Config of ``afscope export introspective-interp RUN_OR_TASK_DIR --out DIR``."""

    source: Path | None = Field(
        None, description="What to export (also positional): a run folder of `afscope "
        "counterfactual context` (-> hint_attribution) or `afscope counterfactual steering` "
        "(-> act_patch), or a features task folder of `afscope explain data --task features` "
        "(-> features_explain).")
    out: Path = Field(Path("runs/export-introspective-interp"), description="Output folder: the "
                      "files introspective-interp reads, export.json (what loads, what cannot), "
                      "introspective_config.yaml (the config keys that point at them) and "
                      "manifest.json.")
    tokenizer: str | None = Field(
        None, description="Tokenizer (embedded name, HF folder or hub id) for the input_tokens of "
        "act_patch and for counting prompt tokens against the loaders' 500-token limit. Unset = "
        "the records' target model (context, steering); the features export counts only when "
        "this is set. Their limit counts the explainer's tokens: pass its tokenizer for exact "
        "counts.")
    cue_placement: Literal["user", "system"] = Field(
        "user", description="Context ablation: where the monitoring cue goes in the exported "
        "prompts. 'user' (default): system_prompt is empty and each condition's system prompt "
        "leads its user prompt, so the stock change_match question shows the unmonitored cue. "
        "'system': seed 000's layout (system_prompt = the monitored cue); the stock change_match "
        "question then shows the monitored cue, as its loader reads only system_prompt.")
    prompt_token_limit: int = Field(500, ge=1, description="Report prompts longer than this many "
                                    "tokens (introspective-interp's loaders skip them silently).")


class IIImportConfig(BaseConfig):
    """Config of ``afscope import introspective-interp SRC --out DIR``."""

    source: Path | None = Field(
        None, description="A released dataset (also positional): a folder of train/test files "
        "(.jsonl, .json or .parquet, also data/<split>-*.parquet as on the HF hub) of "
        "hint_attribution or act_patch, or an explanation_dir of features_explain (features/"
        "layer_<L>.pkl + explanations/<split>_explanations.pkl; needs --trust-pickle).")
    out: Path = Field(Path("runs/import-introspective-interp"), description="Output task folder: "
                      "train.jsonl, test.jsonl, vectors.safetensors, stats.json, manifest.json.")
    task: Literal["auto", "hint_attribution", "act_patch", "features_explain"] = Field(
        "auto", description="Which of its tasks SRC holds; auto = detected from the files.")
    trust_pickle: bool = Field(False, description="Allow reading pickle files (features_explain "
                               "ships its vectors and labels as pickles). Unpickling runs code "
                               "from the file: pass only for files from a source you trust.")
    max_examples: int | None = Field(None, ge=1, description="Import at most this many rows per "
                                     "split (file order).")
    layers: list[int] | None = Field(None, description="features_explain: import only these "
                                     "layers (comma list). Unset = every layer in the split "
                                     "files.")
    tokenizer: str | None = Field(
        None, description="act_patch: the tokenizer whose tokens input_tokens holds, to turn them "
        "back into text. Unset = byte-level BPE decoding (Llama 3, Qwen), with SentencePiece's "
        "word marker read as a space.")
