#!/usr/bin/env python3
"""PyTorch reference checkpoints and outputs for graft's 2D ResNet (timm's layout and key names,
as TorchGeo's SSL4EO weights use them).

The model below is written from the published architecture (He et al. 2016, the "v1.5" variant
with the stride on the bottleneck's 3x3 convolution) with timm's module names: conv1, bn1,
layer1..layer4 of blocks (conv1, bn1, conv2, bn2[, conv3, bn3], downsample.0/.1), fc.

Usage: timm_resnet_reference.py --depth D --in-chans C --out-dir DIR [--with-fc] [--seed S]
                                [--height H --width W]

  DIR/input.npy                float32 (2, C, H, W)
  DIR/stem.npy, layer1.npy .. layer4.npy   the backbone's feature maps
  DIR/pooled.npy               mean of layer4 over H, W: (2, channels)
  DIR/model.pth                torch.save(state_dict), zip format; with fc.* when --with-fc
Ends with one JSON line: {"depth": D, "in_chans": C, "params": P}.
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


DEPTHS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}


class ResNet(nn.Module):
    def __init__(self, depth, in_chans, num_classes=1000):
        super().__init__()
        block, counts = DEPTHS[depth]
        self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 64
        self.layer1 = self._layer(block, 64, counts[0], 1)
        self.layer2 = self._layer(block, 128, counts[1], 2)
        self.layer3 = self._layer(block, 256, counts[2], 2)
        self.layer4 = self._layer(block, 512, counts[3], 2)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _layer(self, block, planes, count, stride):
        layers = []
        for b in range(count):
            s = stride if b == 0 else 1
            downsample = None
            if b == 0 and (s != 1 or self.inplanes != planes * block.expansion):
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, s, bias=False),
                                           nn.BatchNorm2d(planes * block.expansion))
            layers.append(block(self.inplanes, planes, s, downsample))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def features(self, x):
        out = {}
        x = torch.relu(self.bn1(self.conv1(x)))
        out["stem"] = x
        x = self.maxpool(x)
        for name in ["layer1", "layer2", "layer3", "layer4"]:
            x = getattr(self, name)(x)
            out[name] = x
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, required=True, choices=sorted(DEPTHS))
    ap.add_argument("--in-chans", type=int, required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--with-fc", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=48)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = ResNet(args.depth, args.in_chans)
    # Batch norm statistics away from (0, 1), so running_mean/var are really used.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.rand(2, args.in_chans, args.height, args.width)
    with torch.no_grad():
        features = model.features(x)
    os.makedirs(args.out_dir, exist_ok=True)
    np.save(os.path.join(args.out_dir, "input.npy"), x.numpy())
    for name, value in features.items():
        np.save(os.path.join(args.out_dir, name + ".npy"), value.numpy())
    np.save(os.path.join(args.out_dir, "pooled.npy"), features["layer4"].mean(dim=(2, 3)).numpy())
    state = model.state_dict()
    if not args.with_fc:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(state, os.path.join(args.out_dir, "model.pth"))
    print(json.dumps({"depth": args.depth, "in_chans": args.in_chans,
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
