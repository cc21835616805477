"""nnU-Net v2's prediction of one image, in python3-torch, for graft's nnU-Net benchmark.

nnU-Net itself cannot be installed here (no PyPI), so this follows its published code step by
step: nnunetv2/preprocessing (DefaultPreprocessor: transpose, crop to nonzero, CTNormalization,
resample_data_or_seg_to_shape with skimage's resize, order 3, mode edge, no anti-aliasing),
nnunetv2/inference/predict_from_raw_data.py (pad to the patch, steps at tile_step_size 0.5, the
Gaussian importance map with sigma = patch / 8 and value scaling 10, logits accumulated in half
precision on the results device) and nnunetv2/inference/export_prediction.py (logits resampled
to the cropped shape with order 1, softmax, argmax, put back into the uncropped volume). The
network is tests/tools/nnunet_reference.py's PlainConvUNet, loaded from the folder's checkpoint.

  nnunet_predict_reference.py FOLDER IMAGE.nii.gz OUT.nii.gz [--threads N]
"""
import argparse
import json
import os
import sys

import nibabel
import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage.transform import resize

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
import nnunet_reference  # noqa: E402


def compute_new_shape(shape, spacing, new_spacing):
    return [int(round(i / j * k)) for i, j, k in zip(spacing, new_spacing, shape)]


def resample(data, new_shape, order):
    # Not anisotropic (max / min spacing <= 3) in this benchmark: every axis at `order`.
    return np.stack([resize(c.astype(float), new_shape, order, mode="edge", anti_aliasing=False) for c in data])


def steps_for_sliding_window(image_size, tile_size, tile_step_size):
    target = [i * tile_step_size for i in tile_size]
    num_steps = [int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, target, tile_size)]
    steps = []
    for dim in range(len(tile_size)):
        largest = image_size[dim] - tile_size[dim]
        actual = largest / (num_steps[dim] - 1) if num_steps[dim] > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num_steps[dim])])
    return steps


def gaussian_map(tile_size, sigma_scale=1.0 / 8, value_scaling_factor=10):
    tmp = np.zeros(tile_size)
    tmp[tuple(i // 2 for i in tile_size)] = 1
    g = torch.from_numpy(gaussian_filter(tmp, [i * sigma_scale for i in tile_size], 0, mode="constant", cval=0))
    g /= torch.max(g) / value_scaling_factor
    g = g.half()
    zero = g == 0
    g[zero] = torch.min(g[~zero])
    return g


def pad_to(data, patch):
    shape = data.shape[1:]
    pad = [max(0, p - s) for s, p in zip(shape, patch)]
    before = [p // 2 for p in pad]
    widths = [(0, 0)] + [(b, p - b) for b, p in zip(before, pad)]
    return np.pad(data, widths, mode="constant"), tuple(slice(b, b + s) for b, s in zip(before, shape))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("image")
    parser.add_argument("output")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.folder, "plans.json")) as f:
        plans = json.load(f)
    with open(os.path.join(args.folder, "dataset.json")) as f:
        dataset = json.load(f)
    configuration = plans["configurations"]["3d_fullres"]
    kwargs = configuration["architecture"]["arch_kwargs"]
    classes = len(dataset["labels"])
    network = nnunet_reference.build("plain", 3, 1, classes, kwargs)
    checkpoint = torch.load(os.path.join(args.folder, "fold_0", "checkpoint_final.pth"), map_location="cpu")
    network.load_state_dict(checkpoint["network_weights"])
    network.eval()

    image = nibabel.load(args.image)
    data = np.asarray(image.dataobj).astype(np.float32).transpose(2, 1, 0)[None]  # SimpleITK's (c, z, y, x)
    spacing = [float(z) for z in image.header.get_zooms()[:3]][::-1]
    original_shape = data.shape[1:]
    nonzero = np.any(data != 0, axis=0)
    where = np.argwhere(nonzero)
    low, high = where.min(0), where.max(0) + 1
    box = tuple(slice(a, b) for a, b in zip(low, high))
    data = data[(slice(None),) + box]
    p = plans["foreground_intensity_properties_per_channel"]["0"]
    data[0] = np.clip(data[0], p["percentile_00_5"], p["percentile_99_5"])
    data[0] = (data[0] - p["mean"]) / max(p["std"], 1e-8)
    cropped_shape = data.shape[1:]
    new_shape = compute_new_shape(cropped_shape, spacing, configuration["spacing"])
    data = resample(data, new_shape, 3).astype(np.float32)

    patch = configuration["patch_size"]
    padded, unpad = pad_to(data, patch)
    x = torch.from_numpy(padded)
    logits = torch.zeros((classes,) + tuple(x.shape[1:]), dtype=torch.half)
    counts = torch.zeros(tuple(x.shape[1:]), dtype=torch.half)
    gaussian = gaussian_map(patch)
    steps = steps_for_sliding_window(x.shape[1:], patch, 0.5)
    with torch.no_grad():
        for sz in steps[0]:
            for sy in steps[1]:
                for sx in steps[2]:
                    window = (slice(sz, sz + patch[0]), slice(sy, sy + patch[1]), slice(sx, sx + patch[2]))
                    prediction = network(x[(slice(None),) + window][None])[0]
                    logits[(slice(None),) + window] += (prediction * gaussian).half()
                    counts[window] += gaussian
    logits = (logits / counts)[(slice(None),) + unpad].float().numpy()

    logits = resample(logits, cropped_shape, 1)
    probabilities = torch.softmax(torch.from_numpy(logits), 0)
    segmentation = np.zeros(original_shape, dtype=np.uint8)
    segmentation[box] = probabilities.argmax(0).numpy().astype(np.uint8)
    nibabel.save(nibabel.Nifti1Image(segmentation.transpose(2, 1, 0), image.affine), args.output)
    print("windows", len(steps[0]) * len(steps[1]) * len(steps[2]), "resampled", new_shape)


if __name__ == "__main__":
    main()
