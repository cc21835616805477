#!/usr/bin/env python3
"""Patches per second through a ViT's class-token embedding in python3-torch, the reference for
bench/run_embed_bench.sh: the same architecture graft runs (tests/tools/timm_vit_reference.py,
timm's layout), eval mode, no grad, float32, random patches.

Usage: python_vit_embed.py --arch s|l --batch B --size PX --steps N --threads T
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tools"))
from timm_vit_reference import VisionTransformer  # noqa: E402

ARCHS = {"s": dict(dim=384, depth=12, heads=6), "l": dict(dim=1024, depth=24, heads=16, layer_scale=True)}

ap = argparse.ArgumentParser()
ap.add_argument("--arch", choices=ARCHS, required=True)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--steps", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
model = VisionTransformer(3, **ARCHS[args.arch]).eval()
x = torch.rand(args.batch, 3, args.size, args.size)
with torch.no_grad():
    model.tokens(x)[0][:, 0]  # warm-up
    start = time.perf_counter()
    for _ in range(args.steps):
        model.tokens(x)[0][:, 0]
    seconds = time.perf_counter() - start
print(f"threads {torch.get_num_threads()}")
print(f"patches_per_second {args.steps * args.batch / seconds:.4f}")
