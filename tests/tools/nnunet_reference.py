"""An nnU-Net v2 model folder written with python3-torch, for graft's importer tests.

The networks are written here from the published architecture, independently of graft: the
module names follow dynamic_network_architectures (PlainConvUNet, ResidualEncoderUNet), so
state_dict() gives the keys a real nnU-Net checkpoint holds, including each conv and norm a
second time under `all_modules` and the encoder again under `decoder.encoder`.

  nnunet_reference.py FOLDER plain|residual [--dims 2|3] [--spacing Z,Y,X | --spacing-from CT.nii.gz]
                      [--scheme CTNormalization|ZScoreNormalization|RescaleTo01Normalization|...]
                      [--size small|fullres] [--folds N] [--use-mask]
      writes FOLDER/{plans.json, dataset.json, fold_0/checkpoint_final.pth} as nnU-Net's trainer
      saves them (every key; storages marked cuda:0; NumPy scalars in the logs), plus
      FOLDER/input.npy (N, C, spatial...) and FOLDER/logits.npy (the network's output in eval mode)
  nnunet_reference.py normalize FOLDER IMAGE.nii.gz GRAFT_OUTPUT.nii
      nnU-Net's DefaultPreprocessor for an image already at the plans' spacing (transpose, crop to
      the hole-filled nonzero box, the channel's normalisation scheme), written here in NumPy from
      nnU-Net's published code in float64; prints the largest absolute difference from graft's
      preprocessed output
  nnunet_reference.py FILE foreign
      writes a checkpoint whose init_args hold an object of another class (argparse.Namespace)
"""
import argparse
import io
import json
import os
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn


class ConvDropoutNormReLU(nn.Module):
    def __init__(self, dims, cin, cout, kernel, stride, bias, norm, dropout_p, nonlin):
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        instance_norm = nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d
        dropout = nn.Dropout3d if dims == 3 else nn.Dropout2d
        self.conv = conv(cin, cout, kernel, stride, padding=[(k - 1) // 2 for k in kernel], bias=bias)
        ops = [self.conv]
        if dropout_p:
            self.dropout = dropout(p=dropout_p)
            ops.append(self.dropout)
        if norm:
            self.norm = instance_norm(cout, eps=1e-5, affine=True)
            ops.append(self.norm)
        if nonlin:
            self.nonlin = nn.LeakyReLU(negative_slope=0.01, inplace=True)
            ops.append(self.nonlin)
        self.all_modules = nn.Sequential(*ops)

    def forward(self, x):
        return self.all_modules(x)


class StackedConvBlocks(nn.Module):
    def __init__(self, count, dims, cin, cout, kernel, first_stride, bias):
        super().__init__()
        self.convs = nn.Sequential(
            ConvDropoutNormReLU(dims, cin, cout, kernel, first_stride, bias, True, 0, True),
            *[ConvDropoutNormReLU(dims, cout, cout, kernel, [1] * dims, bias, True, 0, True) for _ in range(count - 1)])

    def forward(self, x):
        return self.convs(x)


class PlainConvEncoder(nn.Module):
    def __init__(self, dims, cin, features, kernels, strides, convs, bias):
        super().__init__()
        stages = []
        for s, width in enumerate(features):
            stages.append(nn.Sequential(StackedConvBlocks(convs[s], dims, cin, width, kernels[s], strides[s], bias)))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.output_channels, self.strides, self.kernel_sizes, self.dims, self.bias = features, strides, kernels, dims, bias

    def forward(self, x):
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class BasicBlockD(nn.Module):
    def __init__(self, dims, cin, cout, kernel, stride, bias):
        super().__init__()
        self.conv1 = ConvDropoutNormReLU(dims, cin, cout, kernel, stride, bias, True, 0, True)
        self.conv2 = ConvDropoutNormReLU(dims, cout, cout, kernel, [1] * dims, bias, True, 0, False)
        self.nonlin2 = nn.LeakyReLU(negative_slope=0.01, inplace=True)
        strided = any(s != 1 for s in stride)
        if strided or cin != cout:
            ops = []
            if strided:
                pool = nn.AvgPool3d if dims == 3 else nn.AvgPool2d
                ops.append(pool(stride, stride))
            if cin != cout:
                ops.append(ConvDropoutNormReLU(dims, cin, cout, [1] * dims, [1] * dims, False, True, 0, False))
            self.skip = nn.Sequential(*ops)
        else:
            self.skip = nn.Identity()

    def forward(self, x):
        return self.nonlin2(self.conv2(self.conv1(x)) + self.skip(x))


class StackedResidualBlocks(nn.Module):
    def __init__(self, count, dims, cin, cout, kernel, first_stride, bias):
        super().__init__()
        self.blocks = nn.Sequential(
            BasicBlockD(dims, cin, cout, kernel, first_stride, bias),
            *[BasicBlockD(dims, cout, cout, kernel, [1] * dims, bias) for _ in range(count - 1)])

    def forward(self, x):
        return self.blocks(x)


class ResidualEncoder(nn.Module):
    def __init__(self, dims, cin, features, kernels, strides, blocks, bias):
        super().__init__()
        self.stem = StackedConvBlocks(1, dims, cin, features[0], kernels[0], [1] * dims, bias)
        cin = features[0]
        stages = []
        for s, width in enumerate(features):
            stages.append(StackedResidualBlocks(blocks[s], dims, cin, width, kernels[s], strides[s], bias))
            cin = width
        self.stages = nn.Sequential(*stages)
        self.output_channels, self.strides, self.kernel_sizes, self.dims, self.bias = features, strides, kernels, dims, bias

    def forward(self, x):
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    def __init__(self, encoder, classes, convs):
        super().__init__()
        self.encoder = encoder
        dims, features = encoder.dims, encoder.output_channels
        transposed = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        stages, transpconvs, seg_layers = [], [], []
        for s in range(1, len(features)):
            below, skip = features[-s], features[-(s + 1)]
            stride = encoder.strides[-s]
            transpconvs.append(transposed(below, skip, stride, stride, bias=encoder.bias))
            stages.append(StackedConvBlocks(convs[s - 1], dims, 2 * skip, skip, encoder.kernel_sizes[-(s + 1)],
                                            [1] * dims, encoder.bias))
            seg_layers.append(conv(skip, classes, 1, 1, 0, bias=True))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(transpconvs)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips):
        below = skips[-1]
        for s in range(len(self.stages)):
            x = self.transpconvs[s](below)
            x = torch.cat((x, skips[-(s + 2)]), 1)
            below = self.stages[s](x)
        return self.seg_layers[-1](below)


class UNet(nn.Module):
    def __init__(self, encoder, classes, decoder_convs):
        super().__init__()
        self.encoder = encoder
        self.decoder = UNetDecoder(encoder, classes, decoder_convs)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def architecture(kind, dims, size="small"):
    if size == "fullres":
        # nnU-Net's 3d_fullres for CT at its default patch: 6 stages, 32 to 320 features, 128^3.
        kwargs = {
            "n_stages": 6, "features_per_stage": [32, 64, 128, 256, 320, 320],
            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * 6,
            "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
            ("n_conv_per_stage" if kind == "plain" else "n_blocks_per_stage"):
                [2] * 6 if kind == "plain" else [1, 3, 4, 6, 6, 6],
            "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        }
        name = "PlainConvUNet" if kind == "plain" else "ResidualEncoderUNet"
        return {"network_class_name": f"dynamic_network_architectures.architectures.unet.{name}",
                "arch_kwargs": kwargs, "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}, \
            [128, 128, 128]
    # A small 3d_fullres-like network: 4 stages, anisotropic first kernels as nnU-Net plans them.
    if dims == 3:
        kernels = [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
        strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
        patch = [16, 32, 32]
    else:
        kernels = [[3, 3]] * 4
        strides = [[1, 1], [2, 2], [2, 2], [2, 2]]
        patch = [32, 32]
    dim_name = "3d" if dims == 3 else "2d"
    kwargs = {
        "n_stages": 4, "features_per_stage": [8, 16, 32, 32], "conv_op": f"torch.nn.modules.conv.Conv{dim_name}",
        "kernel_sizes": kernels, "strides": strides,
        ("n_conv_per_stage" if kind == "plain" else "n_blocks_per_stage"): [2, 2, 2, 2] if kind == "plain" else [1, 2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dim_name}", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
    }
    name = "PlainConvUNet" if kind == "plain" else "ResidualEncoderUNet"
    return {"network_class_name": f"dynamic_network_architectures.architectures.unet.{name}", "arch_kwargs": kwargs,
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}, patch


def build(kind, dims, channels, classes, kwargs):
    args = (dims, channels, kwargs["features_per_stage"], kwargs["kernel_sizes"], kwargs["strides"])
    if kind == "plain":
        encoder = PlainConvEncoder(*args, kwargs["n_conv_per_stage"], kwargs["conv_bias"])
    else:
        encoder = ResidualEncoder(*args, kwargs["n_blocks_per_stage"], kwargs["conv_bias"])
    return UNet(encoder, classes, kwargs["n_conv_per_stage_decoder"])


def save_as_if_on_gpu(checkpoint, path):
    """torch.save, then every storage's location rewritten to cuda:0 as a GPU-trained file has it."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                rewritten = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
                assert rewritten != data, "no storage location found to rewrite"
                data = rewritten
            target.writestr(info.filename, data)
    loaded = torch.load(path, map_location="cpu")
    assert set(loaded["network_weights"]) == set(checkpoint["network_weights"])


def make_network(kind, dims, channels, classes, kwargs):
    network = build(kind, dims, channels, classes, kwargs)
    with torch.no_grad():
        # Norm weights and biases away from 1 and 0, so a mix-up of scale and shift shows.
        for name, parameter in network.named_parameters():
            if ".norm." in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    return network.eval()


def write_folder(folder, kind, dims, spacing=None, scheme="CTNormalization", size="small", folds=1, use_mask=False):
    torch.manual_seed(20240611)
    np.random.seed(20240611)
    arch, patch = architecture(kind, dims, size)
    channels, classes = 1, 3
    networks = [make_network(kind, dims, channels, classes, arch["arch_kwargs"]) for _ in range(folds)]
    network = networks[0]
    configuration = "3d_fullres" if dims == 3 else "2d"
    plans = {
        "dataset_name": "Dataset999_Reference", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [2.5, 0.8, 0.8], "original_median_shape_after_transp": [60, 256, 256],
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {configuration: {
            "data_identifier": f"nnUNetPlans_{configuration}", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": patch, "median_image_size_in_voxels": [60, 256, 256][-dims:],
            "spacing": (spacing or [2.5, 0.8, 0.8])[-dims:], "normalization_schemes": [scheme],
            "use_mask_for_norm": [use_mask], "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
            "architecture": arch, "batch_dice": True}},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 3071.0, "mean": 96.5, "median": 87.0, "min": -1024.0, "percentile_00_5": -958.0,
            "percentile_99_5": 1150.0, "std": 137.25}},
    }
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
               "numTraining": 10, "file_ending": ".nii.gz"}
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.99, nesterov=True)
    checkpoint = {
        "network_weights": network.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.5), np.float64(0.75)], "ema_fg_dice": [0.5, 0.525],
                    "train_losses": [np.float32(-0.25), np.float32(-0.5)], "lrs": [0.01, 0.00999],
                    "epoch_start_timestamps": [1.7e9, 1.7e9 + 60], "epoch_end_timestamps": [1.7e9 + 59, 1.7e9 + 119],
                    "dice_per_class_or_region": [[np.float64(0.5), np.float64(0.5)]] * 2, "val_losses": [0.1, 0.05]},
        "_best_ema": np.float64(0.525),
        "current_epoch": np.int64(1000),
        "init_args": {"plans": plans, "configuration": configuration, "fold": 0, "dataset_json": dataset,
                      "unpack_dataset": True, "device": torch.device("cuda", 0)},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": tuple(range(dims)),
    }
    for fold, fold_network in enumerate(networks):
        checkpoint["network_weights"] = fold_network.state_dict()
        checkpoint["init_args"]["fold"] = fold
        os.makedirs(os.path.join(folder, f"fold_{fold}"), exist_ok=True)
        save_as_if_on_gpu(checkpoint, os.path.join(folder, f"fold_{fold}", "checkpoint_final.pth"))
    with open(os.path.join(folder, "plans.json"), "w") as f:
        json.dump(plans, f, indent=2)
    with open(os.path.join(folder, "dataset.json"), "w") as f:
        json.dump(dataset, f, indent=2)
    if size != "small":
        return  # a full-size network's reference logits would take minutes on a CPU
    shape = [2, channels] + patch  # nnU-Net networks take sizes divisible by their strides
    x = torch.randn(*shape)
    with torch.no_grad():
        # nnU-Net's ensemble: the folds' logits averaged.
        logits = sum(fold_network(x) for fold_network in networks) / len(networks)
    np.save(os.path.join(folder, "input.npy"), x.numpy())
    np.save(os.path.join(folder, "logits.npy"), logits.numpy())


def write_foreign(path):
    network = nn.Conv3d(1, 1, 1)
    torch.save({"network_weights": network.state_dict(), "init_args": {"options": argparse.Namespace(fold=0)},
                "trainer_name": "nnUNetTrainer"}, path)


def nnunet_normalize(folder, image_path, graft_path):
    import nibabel
    from scipy import ndimage
    with open(os.path.join(folder, "plans.json")) as f:
        plans = json.load(f)
    configuration = plans["configurations"]["3d_fullres"]
    image = nibabel.load(image_path)
    # SimpleITK's array order: (z, y, x) of the stored voxels, as nnU-Net reads a file.
    data = np.asarray(image.dataobj).astype(np.float64).transpose(2, 1, 0)[None]
    zooms = [float(z) for z in image.header.get_zooms()[:3]][::-1]
    assert np.allclose(zooms, configuration["spacing"]), "this check needs the image at the plans' spacing"
    data = data.transpose([0] + [a + 1 for a in plans["transpose_forward"]])
    nonzero = ndimage.binary_fill_holes(np.any(data != 0, axis=0))
    where = np.argwhere(nonzero)
    low, high = where.min(0), where.max(0) + 1
    data = data[:, low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    mask = nonzero[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    for c, scheme in enumerate(configuration["normalization_schemes"]):
        x = data[c]
        if scheme == "CTNormalization":
            p = plans["foreground_intensity_properties_per_channel"][str(c)]
            x = np.clip(x, p["percentile_00_5"], p["percentile_99_5"])
            x = (x - p["mean"]) / max(p["std"], 1e-8)
        elif scheme == "ZScoreNormalization":
            if configuration["use_mask_for_norm"][c]:
                mean, std = x[mask].mean(), x[mask].std()
                x = np.where(mask, (x - mean) / max(std, 1e-8), 0)
            else:
                x = (x - x.mean()) / max(x.std(), 1e-8)
        elif scheme == "RescaleTo01Normalization":
            x = x - x.min()
            x = x / max(x.max(), 1e-8)
        elif scheme == "RGBTo0_1Normalization":
            x = x / 255.0
        data[c] = x
    ours = np.asarray(nibabel.load(graft_path).dataobj).astype(np.float64)
    ours = ours.reshape(ours.shape[:3] + (-1,)).transpose(3, 2, 1, 0)
    assert ours.shape == data.shape, f"graft's output is {ours.shape}, nnU-Net's {data.shape}"
    print("nnunet_range", data.min(), data.max())
    print("max_abs_difference", float(np.abs(ours - data).max()))


if __name__ == "__main__":
    if sys.argv[1] == "normalize":
        nnunet_normalize(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[2] == "foreign":
        write_foreign(sys.argv[1])
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("folder")
        parser.add_argument("kind", choices=["plain", "residual"])
        parser.add_argument("--dims", type=int, default=3)
        parser.add_argument("--spacing")
        parser.add_argument("--spacing-from")
        parser.add_argument("--scheme", default="CTNormalization")
        parser.add_argument("--size", choices=["small", "fullres"], default="small")
        parser.add_argument("--folds", type=int, default=1)
        parser.add_argument("--use-mask", action="store_true", help="use_mask_for_norm: true")
        args = parser.parse_args()
        spacing = [float(v) for v in args.spacing.split(",")] if args.spacing else None
        if args.spacing_from:
            import nibabel
            spacing = [float(z) for z in nibabel.load(args.spacing_from).header.get_zooms()[:3]][::-1]
        write_folder(args.folder, args.kind, args.dims, spacing, args.scheme, args.size, args.folds, args.use_mask)
