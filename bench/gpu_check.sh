#!/usr/bin/env bash
# bash bench/gpu_check.sh [OUT]
# On a machine with one NVIDIA GPU: the GPU paths no CPU machine can run, each on the tiny world, then the
# rehearsal of the paper experiment, in under 10 minutes; prints a table of what passed. Run by hand.
#
#   bf16 + NCCL      SFT with one Ray Train worker on the GPU: NCCL process group, DeepSpeed bf16
#   vllm engines     synth_math with engine: vllm on the GPU (CUDA build), one engine actor holding 1 GPU
#   eval hf bf16     H6 subset, backend hf on cuda (bf16 weights), two models in one actor (load, free, load)
#   eval vllm        H6 subset, backend vllm on the GPU
#   contamination    the Table 9 test on a GPU actor, bf16
#   rehearsal        $REHEARSAL: the paper experiment's rehearsal profile (set REHEARSAL to override)
#
# Needs network for the first set-up (CUDA torch and the vllm wheel); later runs reuse .venv.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-runs/gpu_check}
# The rehearsal: the paper pipeline at its rehearsal profile's sizes (experiments/solar_10_7b/rehearsal.yaml).
REHEARSAL=${REHEARSAL:-".venv/bin/solar-ray pipeline experiments/solar_10_7b/pipeline.yaml --rehearse --output $OUT/rehearsal"}
BUDGET_S=${BUDGET_S:-600}

command -v nvidia-smi >/dev/null 2>&1 || { echo "error: no nvidia-smi: this check needs an NVIDIA GPU" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
source scripts/setup.sh                                   # GPU machine: CUDA torch from the project's range
.venv/bin/uv pip install -q --python .venv/bin/python -e ".[vllm]"
unset RAY_ADDRESS
rm -rf "$OUT" && mkdir -p "$OUT"
SR=.venv/bin/solar-ray
WORLD=$OUT/world
START=$(date +%s)
declare -a ROWS

check() {  # check NAME COMMAND...: run, time, record pass/fail (log in $OUT/NAME.log)
  local name=$1; shift
  local t0=$(date +%s) left=$(( BUDGET_S - ($(date +%s) - START) ))
  if [ "$left" -le 0 ]; then ROWS+=("$name|skipped (over the ${BUDGET_S} s budget)|0"); return; fi
  if timeout "$left" "$@" >"$OUT/$name.log" 2>&1; then result=passed; else result="FAILED (rc $?, $OUT/$name.log)"; fi
  ROWS+=("$name|$result|$(( $(date +%s) - t0 ))")
}

check world $SR tiny "$WORLD"
check data_sft $SR run experiments/tiny/data_sft_v1.yaml output="$OUT/data_sft" \
  sources.alpaca_gpt4.path="$WORLD/data/alpaca_gpt4" decontaminate.benchmarks_dir="$WORLD/data/benchmarks"
check bf16_nccl $SR run experiments/tiny/sft.yaml model="$WORLD/base" dataset="$OUT/data_sft" \
  output="$OUT/sft" scaling.use_gpu=true scaling.num_workers=1 scaling.backend=nccl deepspeed.bf16=true \
  optim.max_steps=5 run.name=gpu-check-sft run.storage_path="$OUT/ray"
check vllm_engines $SR run experiments/tiny/synth_math.yaml model="$WORLD/base" seed_data="$WORLD/data/math" \
  output="$OUT/synth" engine=vllm engine_options.device=cuda engine_options.gpu_memory_utilization=0.3 \
  actors=1 max_seed_rows=16 decontamination.benchmarks_dir="$WORLD/data/benchmarks" \
  decontamination.math_test="$WORLD/data/math/test.jsonl"
check eval_hf_bf16 $SR run experiments/tiny/eval_h6.yaml models="{a: $WORLD/base, b: $WORLD/base}" \
  data_dir="$WORLD/data/benchmarks" output="$OUT/eval_hf" device=cuda workers=1 limit=10
check eval_vllm $SR run experiments/tiny/eval_h6.yaml models="{a: $WORLD/base}" \
  data_dir="$WORLD/data/benchmarks" output="$OUT/eval_vllm" backend=vllm workers=1 limit=10 \
  gpu_memory_utilization=0.3
check contamination $SR run experiments/tiny/contamination.yaml model="$WORLD/base" reference="$WORLD/base" \
  data_dir="$WORLD/data/benchmarks" output="$OUT/contamination" device=cuda workers=1
# shellcheck disable=SC2086  # REHEARSAL is a command line
check rehearsal $REHEARSAL

echo
printf '%-16s %-60s %s\n' check result seconds
failed=0
for row in "${ROWS[@]}"; do
  IFS='|' read -r name result secs <<<"$row"
  printf '%-16s %-60s %s\n' "$name" "$result" "$secs"
  [ "$result" = passed ] || failed=1
done
echo "total $(( $(date +%s) - START )) s (budget ${BUDGET_S} s)"
exit $failed
