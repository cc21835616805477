#!/usr/bin/env bash
# Memory-efficient fine-tuning of a big ViT as `graft bench train-step` runs it: full fine-tuning,
# full fine-tuning with activation checkpointing, LoRA, LoRA with activation checkpointing, and a
# ladder side network (8 times narrower), each a whole process with AdamW on random data at the
# backbone's Contract size (224 px for UNI), interleaved round by round. Prints each one's median
# seconds per step, peak RSS and trained parameters, and its ratios to full fine-tuning. LoRA
# equals the adapted model to 1e-5 once merged and checkpointing gives the plain backward's
# gradients (the tests check both); the question here is what each costs and saves.
#
#   bash bench/run_adapter_bench.sh [build-dir] [rounds] [backbone] [batch] [lora-rank] [runs]
#
# runs: a subset of "full full+checkpointing lora lora+checkpointing side" (full is always run,
# as the ratios' reference).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
source bench/lib.sh
build=${1:-build}
rounds=${2:-3}
backbone=${3:-uni-vit-l16}
batch=${4:-4}
rank=${5:-8}
graft=$build/cli/graft
[ -x "$graft" ] || { echo "bench: $graft is missing; build graft first" >&2; exit 1; }
work=$(mktemp -d /tmp/graft-adapter-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
declare -A settings=(
  [full]="--adapter none"
  [full+checkpointing]="--adapter none --activation-checkpointing"
  [lora]="--adapter lora --lora-rank $rank"
  [lora+checkpointing]="--adapter lora --lora-rank $rank --activation-checkpointing"
  [side]="--adapter side"
)
order=(full)
for name in ${6:-full+checkpointing lora lora+checkpointing side}; do
  [ -n "${settings[$name]:-}" ] || { echo "bench: unknown run '$name'" >&2; exit 1; }
  [ "$name" = full ] || order+=("$name")
done

echo "bench: $backbone, batch $batch, AdamW, LoRA rank $rank on qkv and proj, 1 timed step per run, $rounds rounds"
for ((round = 0; round < rounds; round++)); do
  for name in "${order[@]}"; do
    # shellcheck disable=SC2086
    "$graft" bench train-step --backbone "$backbone" --batch "$batch" --steps 1 --optimizer adamw \
      ${settings[$name]} > "$work/out"
    awk '/^seconds_per_step/ {print $2}' "$work/out" >> "$work/$name.seconds"
    awk '/^peak_rss_mb/ {print $2}' "$work/out" >> "$work/$name.rss"
    awk '/^trained_parameters/ {print $2}' "$work/out" > "$work/$name.trained"
    awk '/^input_xyz/ {print "input " $2 " x " $3}' "$work/out" > "$work/input"
  done
done
cat "$work/input"
printf '%-20s %14s %12s %14s %12s %10s\n' run "seconds/step" "peak RSS MB" "trained" "time ratio" "RSS ratio"
for name in "${order[@]}"; do
  printf '%-20s %14s %12s %14s %12s %10s\n' "$name" "$(median < "$work/$name.seconds")" \
    "$(median < "$work/$name.rss")" "$(cat "$work/$name.trained")" \
    "$(median_ratio "$work/$name.seconds" "$work/full.seconds")x" "$(median_ratio "$work/$name.rss" "$work/full.rss")x"
done
