#!/usr/bin/env bash
# Land-cover classification on chips cut from the real Landsat-8 scene and BigEarthNet patches in
# ../shared/data (bench/landcover_chips.cpp says how they are labelled and split), through the
# user's path: `graft train` with task: classification, then `graft predict` on the validation
# chips. Each run reports its validation accuracy (or multi-label F1) against the majority-class
# baseline the chip cutter prints. The backbones start from random weights: pretrained ones
# cannot be downloaded here, so these numbers measure the pipeline, not SSL4EO's features.
#
#   bash bench/run_landcover.sh [build-dir] [work-dir] [fine-tune epochs]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/machine.sh
build=${1:-build}
work=${2:-/tmp/graft-landcover}
epochs=${3:-6}
data=../shared/data/geotiff
if [ ! -d "$data/landsat8" ] || [ ! -d "$data/bigearthnet/BigEarthNet-S2-Example" ]; then
  echo "run_landcover: $data is absent; nothing to measure"; exit 0
fi
rm -rf "$work"
mkdir -p "$work"
"$build/bench/landcover_chips" "$data/landsat8" "$data/bigearthnet/BigEarthNet-S2-Example" "$work" 24 | tee "$work/chips.txt"

# Landsat-8 Collection 1 digital numbers become TOA reflectance with the scene's MTL numbers
# (REFLECTANCE_MULT 2e-5, ADD -0.1): the scale SSL4EO-L's 8-bit / 255 stands for.
landsat_contract='{"intensity": [{"kind": "scale_offset", "scale": 2e-05, "offset": -0.1}]}'
run() {  # name dataset backbone manifest extra-settings...
  local name=$1 dataset=$2 backbone=$3 manifest=$4
  shift 4
  local started=$SECONDS
  "$build/cli/graft" train --output "$work/$name" --set task=classification --set backbone="$backbone" \
    --set data.manifest="$work/$dataset/$manifest" --set data.fill_missing_bands=true \
    --set data.batch_size=16 --set train.optimizer=adamw --set train.schedule=cosine \
    --set train.head_lr_multiplier=10 --set data.workers=1 "$@" > "$work/$name.log"
  tail -1 "$work/$name.log"
  echo "$name: $((SECONDS - started)) s"
}
run l8-probe landsat8 geo-resnet18-l8 single_label.csv --set train.linear_probe=true --set train.epochs=100 \
  --set train.lr=0.01 --set "data.contract=$landsat_contract"
run l8-finetune landsat8 geo-resnet18-l8 single_label.csv --set train.epochs="$epochs" --set train.lr=0.001 \
  --set "data.contract=$landsat_contract"
run ben-probe bigearthnet geo-resnet18-s2 single_label.csv --set train.linear_probe=true --set train.epochs=100 \
  --set train.lr=0.01
run ben-finetune bigearthnet geo-resnet18-s2 single_label.csv --set train.epochs="$epochs" --set train.lr=0.001
run ben-multilabel bigearthnet geo-resnet18-s2 multi_label.csv --set multi_label=true --set train.epochs="$epochs" \
  --set train.lr=0.001

# The trained model folder classifies chips the way a user would run it, and agrees with the manifest.
(echo image; grep ',val$' "$work/landsat8/single_label.csv" | cut -d, -f1) > "$work/landsat8/val_chips.csv"
"$build/cli/graft" predict --model "$work/l8-finetune" "$work/landsat8/val_chips.csv" \
  --output "$work/l8_val_predictions.csv" > /dev/null
python3 - "$work" <<'PY'
import csv, sys
work = sys.argv[1]
truth = {f"{work}/landsat8/{r['image']}": r["classes"] for r in csv.DictReader(open(f"{work}/landsat8/single_label.csv"))}
rows = list(csv.DictReader(open(f"{work}/l8_val_predictions.csv")))
right = sum(truth[r["image"]] == r["predicted"] for r in rows)
print(f"l8-finetune through graft predict: {right}/{len(rows)} validation chips right ({right / len(rows):.3f})")
PY
