#!/usr/bin/env bash
# A real 2D classification run: PneumoniaMNIST (../shared/data/classification/pneumoniamnist.npz,
# MedMNIST's train/val/test splits, 28 x 28 grey chest X-rays, normal vs pneumonia) through
# `graft train` with a ViT-S/16, as a linear probe on frozen features, fully fine-tuned, with LoRA
# adapters (rank 8 on qkv and proj, the backbone frozen) and with a ladder side network (8 times
# narrower, the backbone frozen and out of the backward pass), each reporting accuracy and AUC on
# the test split (scored once, by the epoch validation chose). Every run starts from the same
# initial weights: seed 0's.
# The grey channel is replicated to RGB and ImageNet-normalised as the contract says; chips are
# resized to 112 px instead of 224 to fit a 2-core CPU (49 patch tokens instead of 196). The ViT starts from random weights: pretrained ones cannot be downloaded here.
#
#   bash bench/run_pneumonia.sh [build-dir] [work-dir] [fine-tune epochs] [runs, default "probe finetune lora side"]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
build=${1:-build}
work=${2:-/tmp/graft-pneumonia}
epochs=${3:-3}
data=../shared/data/classification/pneumoniamnist.npz
if [ ! -f "$data" ]; then echo "run_pneumonia: $data is absent; nothing to measure"; exit 0; fi
runs=" ${4:-probe finetune lora side} "
rm -rf "$work"
mkdir -p "$work"
names='["normal","pneumonia"]'
common=(--set task=classification --set backbone=vit-s16 --set "data.manifest=$(realpath "$data")"
        --set "class_names=$names" --set 'data.contract={"target_size_xyz": [112, 112, 1]}'
        --set data.batch_size=32 --set train.optimizer=adamw --set train.schedule=cosine)
run() {
  local name=$1
  shift
  [[ "$runs" == *" $name "* ]] || return 0
  local started=$SECONDS
  /usr/bin/time -f "%M" -o "$work/$name.rss" "$build/cli/graft" train --output "$work/$name" "${common[@]}" "$@" \
    > "$work/$name.log"
  tail -2 "$work/$name.log"
  echo "$name: $((SECONDS - started)) s, peak RSS $(($(cat "$work/$name.rss") / 1024)) MB"
}
run probe --set train.linear_probe=true --set train.epochs=100 --set train.lr=0.003
run finetune --set train.epochs="$epochs" --set train.lr=0.0001 --set train.head_lr_multiplier=10
run lora --set train.epochs="$epochs" --set train.adapter=lora --set train.lr=0.001 --set train.head_lr_multiplier=1
run side --set train.epochs="$epochs" --set train.adapter=side --set train.lr=0.001 --set train.head_lr_multiplier=1
