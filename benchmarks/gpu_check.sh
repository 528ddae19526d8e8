#!/usr/bin/env bash
# afscope GPU check: one short script for a machine with a CUDA GPU (issue 13 §4).
#
# What it does (under 8 minutes in all on one H100-class GPU; every step has its own timeout and
# a failing step is reported, not fatal):
#   1. nvidia-smi, and the torch / CUDA versions the chosen python sees;
#   2. pytest -m gpu (tests/gpu: extraction on cuda == CPU within tolerance, steering hooks,
#      injected vectors and SAE encoding on the model's device and dtype, device=shard);
#   3. benchmarks on cuda, bf16: bench_extract.py (afscope extract vs the plain per-sample loop),
#      a greedy generation timing (plain and steered), bench_explain.py (explainer LoRA training
#      vs the seed-style loop, and its evaluation); numbers printed, also in $OUT_DIR/*.log.
#
# What it assumes (the machine has NO network access):
#   * the repository is copied to the current directory (run it from the repo root:
#     `bash benchmarks/gpu_check.sh`);
#   * a python with a CUDA build of torch and afscope's dependencies (transformers, peft,
#     safetensors, pydantic, click, rich, pyyaml, numpy, scipy, scikit-learn, pytest) is on the
#     machine. It is looked for in this order: $AFSCOPE_PYTHON, ./.venv/bin/python, python3.
#     afscope itself needs no install: src/ goes on PYTHONPATH. If the dependencies are missing
#     and pip can reach an index or a wheelhouse (PIP_INDEX_URL / PIP_FIND_LINKS), the script
#     makes ./.gpu-venv (python -m venv --system-site-packages, so the system's CUDA torch is
#     kept) and installs afscope into it; without either it stops with a clear message;
#   * no model weights are needed: the benchmarks run a random-weight model with the shape of
#     SmolLM2-135M (30 layers, d=576) that the script builds in a temp dir, on a synthetic corpus
#     that `afscope data synth` writes. Inputs copied to the machine stay under 64 MiB.
#
# Environment knobs: AFSCOPE_PYTHON, OUT_DIR (default: a temp dir), DEVICE (default cuda).
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
OUT_DIR=${OUT_DIR:-$(mktemp -d -t afscope-gpu-check-XXXX)}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$ROOT/src:$ROOT/tests:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
START=$(date +%s)
declare -a SUMMARY=()

step() {  # step NAME TIMEOUT CMD... : run, log, keep going
  local name=$1 limit=$2
  shift 2
  echo
  echo "=== $name (timeout ${limit}s) ==="
  local t0=$(date +%s)
  timeout "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  local dt=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then SUMMARY+=("ok      $name (${dt}s)");
  elif [ "$rc" -eq 124 ]; then SUMMARY+=("TIMEOUT $name (${dt}s)");
  else SUMMARY+=("FAILED  $name (rc $rc, ${dt}s): see $OUT_DIR/$name.log"); fi
}

has_cuda_torch() {
  "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null
}

# --- 1. the machine ------------------------------------------------------------------------
echo "=== nvidia-smi ==="
nvidia-smi || echo "(nvidia-smi not found)"

PY=""
for cand in "${AFSCOPE_PYTHON:-}" "$ROOT/.venv/bin/python" "$(command -v python3 || true)"; do
  if [ -n "$cand" ] && [ -x "$cand" ] && has_cuda_torch "$cand"; then PY=$cand; break; fi
done
if [ -z "$PY" ]; then
  echo "error: no python with a CUDA build of torch found (tried \$AFSCOPE_PYTHON, .venv, python3)."
  echo "       Install one (pip install torch from the CUDA index) or set AFSCOPE_PYTHON."
  exit 2
fi
DEPS="import transformers, peft, safetensors, pydantic, click, rich, yaml, numpy, scipy, sklearn, pytest"
if ! "$PY" -c "$DEPS" 2>/dev/null; then
  echo "afscope's dependencies are missing for $PY; trying ./.gpu-venv (needs an index or wheelhouse)"
  if [ ! -x .gpu-venv/bin/python ]; then "$PY" -m venv --system-site-packages .gpu-venv; fi
  if timeout 240 .gpu-venv/bin/pip install -q -e ".[dev]" && .gpu-venv/bin/python -c "$DEPS"; then
    PY="$ROOT/.gpu-venv/bin/python"
  else
    echo "error: cannot install afscope's dependencies here (no network?): give a python that"
    echo "       has them through AFSCOPE_PYTHON, or set PIP_FIND_LINKS to a wheelhouse."
    exit 2
  fi
fi
"$PY" - <<'EOF'
import sys, torch, transformers
print(f"python {sys.version.split()[0]}  torch {torch.__version__} (CUDA {torch.version.cuda})  "
      f"transformers {transformers.__version__}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}")
EOF

# --- 2. tests marked gpu -------------------------------------------------------------------
step pytest_gpu 240 "$PY" -m pytest -m gpu tests/gpu -q -p no:cacheprovider -o addopts="-ra"

# --- 3. benchmarks on cuda -----------------------------------------------------------------
MODEL="$OUT_DIR/smollm2-shaped-random"
DATA="$OUT_DIR/synth.jsonl"
step make_inputs 120 "$PY" - "$MODEL" "$DATA" <<'EOF'
"""A random-weight model of SmolLM2-135M's shape (tiny BPE tokenizer, vocab ~300) + a corpus."""
import sys, subprocess
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from tiny_models import build_tokenizer

model_dir, data = sys.argv[1], sys.argv[2]
tok = build_tokenizer()
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=576, intermediate_size=1536,
                  num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                  max_position_embeddings=8192, pad_token_id=1, bos_token_id=2, eos_token_id=4,
                  tie_word_embeddings=True)
LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(model_dir)
tok.save_pretrained(model_dir)
subprocess.run([sys.executable, "-m", "afscope", "-q", "data", "synth", "--n", "256",
                "--seed", "0", "--out", data], check=False)
print("model", model_dir, "data", data)
EOF
# fallback: the click entry point called in-process
if [ ! -s "$DATA" ]; then
  "$PY" -c "import sys; from afscope.cli import main; sys.argv=['afscope','-q','data','synth','--n','256','--seed','0','--out','$DATA']; main()" || true
fi

step bench_extract 150 "$PY" benchmarks/bench_extract.py --model "$MODEL" --data "$DATA" \
  --n 256 --naive-n 32 --layer 20 --batch-tokens 16384 --max-length 512 --device "$DEVICE" \
  --dtype bfloat16

step bench_generate 90 "$PY" - "$MODEL" "$DEVICE" <<'EOF'
"""Greedy generation on cuda: tokens/s plain and steered (afscope.generate, bf16)."""
import sys, time
import torch
from afscope.generate.engine import GenerationParams, generate
from afscope.generate.steering import Steering
from afscope.models import load_model

lm = load_model(sys.argv[1], device=sys.argv[2], dtype="auto")
prompts = [f"Request {i}: please explain the monitored free tier." for i in range(32)]
params = GenerationParams(max_tokens=64, temperature=0.0)
steer = Steering({15: torch.randn(lm.info.d_model)}, alpha=4.0, positions="both")
generate(lm.model, lm.tokenizer, prompts[:4], GenerationParams(max_tokens=4), batch_size=4)
for name, s in (("plain", None), ("steered L15", [steer] * len(prompts))):
    torch.cuda.synchronize(); t = time.perf_counter()
    out = generate(lm.model, lm.tokenizer, prompts, params, batch_size=32, steering=s)
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    n = sum(len(lm.tokenizer(o.text)["input_ids"]) for o in out)
    print(f"generate {name}: {len(prompts)} prompts x <= 64 new tokens, {dt:.2f} s, "
          f"~{n / dt:.0f} tokens/s ({lm.info.device}, {lm.info.dtype})")
EOF

step bench_explain 200 "$PY" benchmarks/bench_explain.py --model "$MODEL" --steps 4 \
  --batch-size 4 --records 24 --eval-n 8 --new-tokens 16 --device "$DEVICE"

# --- summary -------------------------------------------------------------------------------
echo
echo "=== summary ($(( $(date +%s) - START ))s in all; logs in $OUT_DIR) ==="
for line in "${SUMMARY[@]}"; do echo "  $line"; done
case "${SUMMARY[*]}" in *FAILED*|*TIMEOUT*) exit 1 ;; *) exit 0 ;; esac
