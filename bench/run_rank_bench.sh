#!/usr/bin/env bash
# Does LogME rank backbones as fine-tuning does? Candidate med3d-resnet10 backbones with different
# pretraining, all on synthetic CT (bench/synthetic_ct_cases): random weights, the demo's source
# task (organ 1) for few and for many epochs, the spine, the body outline, and the target organ on
# other volumes for few and many epochs. The sources are plain cases.
#
# The target is organ 2 on harder cases: 30 HU more noise and organ 2 only 40 HU above soft tissue
# (in the plain cases, 80 to 100 HU above it under 12 HU of noise). On the plain target every
# candidate, random weights included, reaches a Dice of 0.8 to 0.9 within six short epochs, so the
# starting weights hardly matter and seed noise decides the order. The harder one takes longer to
# learn (docs/benchmarks.md gives what this measured: converged, the candidates still end close).
#
# `graft rank` scores each candidate on the target's 4 training volumes. Each is then fine-tuned on
# them with a transfer recipe (the demo's, with the backbone at a tenth of the head's learning
# rate, 2e-4 against 2e-3), 20 epochs by default, and validated on 8 other volumes, once per seed; a candidate's metric is
# its best validation Dice averaged over the seeds. Prints both per candidate and Kendall's tau
# between LogME and that Dice. A work folder from an earlier run is reused: its cases, candidates
# and finished fine-tuning runs are not made again.
#
#   bash bench/run_rank_bench.sh [build-dir] [work-dir] [fine-tune epochs] [seeds, default "0 1 2"]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
source bench/lib.sh
build=${1:-build}
work=${2:-/tmp/graft-rank-bench}
finetune_epochs=${3:-20}
seeds=(${4:-0 1 2})
few=1
many=8
graft=$build/cli/graft
cases=$build/bench/synthetic_ct_cases
for tool in "$graft" "$cases"; do [ -x "$tool" ] || { echo "bench: $tool is missing; build graft first" >&2; exit 1; }; done
python=/usr/bin/python3
mkdir -p "$work"

# Target: organ 2 on harder cases, 4 training and 8 validation volumes. Sources: 10 other plain volumes.
harder=(--noise-hu 30 --organ2-contrast-hu 40)
target=$work/target-noise30-contrast40
if [ ! -f "$target/train.csv" ]; then
  rm -rf "$target"
  "$cases" "$target" 200 4 organ2 train "${harder[@]}"
  "$cases" "$target" 204 8 organ2 val "${harder[@]}"
  grep -v ',val$' "$target/organ2.csv" > "$target/train.csv"
fi
if [ ! -f "$work/source/body.csv" ]; then
  rm -rf "$work/source"
  for task in organ1 organ2 spine body; do "$cases" "$work/source" 100 10 "$task"; done
fi

# The demo's recipe: a U-Net head, 2 mm voxels, 32^3 patches, AdamW, cosine schedule.
common=(--set backbone=med3d-resnet10 --set head=unet --set classes=2 --set data.patch_size=[32,32,32]
        --set data.batch_size=2 --set data.batches_per_epoch=25 --set data.workers=1
        --set data.foreground_fraction=0.5
        --set 'data.contract={"resize": "spacing", "target_spacing_mm": [2.0, 2.0, 2.0], "crop_nonzero": false}'
        --set train.optimizer=adamw --set train.lr=0.002 --set train.head_lr_multiplier=1.0
        --set train.schedule=cosine --set train.threads=2)
transfer=(--set train.lr=0.0002 --set train.head_lr_multiplier=10)
pretrain() {  # NAME TASK EPOCHS
  [ -f "$work/$1.pth" ] && return
  "$graft" train --output "$work/pretrain-$1" "${common[@]}" --set "data.manifest=$work/source/$2.csv" \
    --set "train.epochs=$3" > "$work/pretrain-$1.log"
  "$python" bench/extract_backbone.py "$work/pretrain-$1" "$work/$1.pth"
}
names=(random organ1-few organ1-many spine body organ2-few organ2-many)
started=$SECONDS
pretrain organ1-few organ1 "$few"
pretrain organ1-many organ1 "$many"
pretrain spine spine 4
pretrain body body 4
pretrain organ2-few organ2 "$few"
pretrain organ2-many organ2 "$many"
echo "bench: 6 pretrained candidates ready in $((SECONDS - started)) s"

backbones=() weights=() weight_list=()
for name in "${names[@]}"; do
  backbones+=(med3d-resnet10)
  weights+=("$( [ "$name" = random ] || echo "$work/$name.pth")")
  weight_list+=("$( [ "$name" = random ] && echo random || echo "$work/$name.pth")")
done
started=$SECONDS
"$graft" rank --manifest "$target/train.csv" --backbones "$(IFS=,; echo "${backbones[*]}")" \
  --weights "$(IFS=,; echo "${weight_list[*]}")" "${common[@]}" --csv "$target/rank.csv" > "$target/rank.txt"
echo "bench: graft rank over ${#names[@]} candidates in $((SECONDS - started)) s"

# Fine-tuning runs, two at a time on one thread each: these small patches keep two threads of
# one run less busy than two runs.
runs=$work/finetune-noise30-contrast40-epochs$finetune_epochs
results=$target/epochs$finetune_epochs
mkdir -p "$runs" "$results"
started=$SECONDS
for i in "${!names[@]}"; do
  for seed in "${seeds[@]}"; do
    run=$runs/${names[$i]}-seed$seed
    [ -f "$run/finished" ] && continue
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
    rm -rf "$run"
    ( "$graft" train --output "$run" "${common[@]}" "${transfer[@]}" --set train.threads=1 \
        --set "data.manifest=$target/organ2.csv" --set "weights=${weights[$i]}" \
        --set "train.epochs=$finetune_epochs" --set "seed=$seed" > "$run.log" && touch "$run/finished" ) &
  done
done
wait || true
echo "bench: fine-tuning runs done in $((SECONDS - started)) s"

printf '%-14s %10s %10s %8s  %s\n' candidate logme "val dice" seconds "val dice per seed"
: > "$results/pairs"
for i in "${!names[@]}"; do
  name=${names[$i]}
  weight=${weights[$i]}
  logme=$(awk -F, -v w="$weight" 'NR > 1 && $3 == w {print $4}' "$target/rank.csv")
  seconds=$(awk -F, -v w="$weight" 'NR > 1 && $3 == w {print $8}' "$target/rank.csv")
  : > "$results/$name.dice"
  for seed in "${seeds[@]}"; do
    run=$runs/$name-seed$seed
    [ -f "$run/finished" ] || { echo "bench: $run failed; see $run.log" >&2; exit 1; }
    awk -F, 'NR == 1 {for (c = 1; c <= NF; ++c) if ($c == "val_dice") col = c} NR > 1 && (NR == 2 || $col > best) {best = $col} END {print best + 0}' \
      "$run/metrics.csv" >> "$results/$name.dice"
  done
  dice=$(awk '{sum += $1} END {print sum / NR}' "$results/$name.dice")
  printf '%-14s %10.4f %10.4f %8.1f  %s\n' "$name" "$logme" "$dice" "$seconds" "$(tr '\n' ' ' < "$results/$name.dice")"
  echo "$logme $dice" >> "$results/pairs"
done
# Kendall's tau-b between LogME and the fine-tuned Dice.
"$python" - "$results/pairs" <<'PY'
import sys
pairs = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
concordant = discordant = ties_a = ties_b = 0
for i in range(len(pairs)):
    for j in range(i + 1, len(pairs)):
        a = pairs[i][0] - pairs[j][0]
        b = pairs[i][1] - pairs[j][1]
        if a == 0 and b == 0:
            continue
        if a == 0:
            ties_a += 1
        elif b == 0:
            ties_b += 1
        elif a * b > 0:
            concordant += 1
        else:
            discordant += 1
n = concordant + discordant
tau = (concordant - discordant) / (((n + ties_a) * (n + ties_b)) ** 0.5)
print(f"kendall tau (LogME vs fine-tuned validation Dice, {len(pairs)} candidates): {tau:.3f}")
PY
