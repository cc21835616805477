#!/usr/bin/env python3
"""PyTorch reference checkpoint and outputs for graft's ViT (timm's VisionTransformer layout and
key names, as timm, TorchGeo and UNI checkpoints use them).

Written from the published architecture (Dosovitskiy et al. 2021) with timm's choices: pre-norm
blocks, LayerNorm eps 1e-6, exact GELU, qkv bias, class token, learned absolute positions, final
norm; timm's module names (patch_embed.proj, cls_token, pos_embed, blocks.N.norm1, .attn.qkv,
.attn.proj, .norm2, .mlp.fc1, .mlp.fc2, norm, head).

Options beyond the plain ViT-S/16, for UNI and UNI2-h's architecture: --layer-scale (ls1/ls2
.gamma), --registers R (reg_token after the class token), --no-embed-class (pos_embed on patches
only), --swiglu (timm's SwiGLUPacked: fc1 halves, SiLU(first) * second), --patch, --dim, --depth,
--heads, --mlp-ratio (hidden = int(dim * ratio)).

Usage: timm_vit_reference.py --in-chans C --out-dir DIR [--seed S] [options]
  DIR/model.pth                        torch.save(state_dict) with head.* (a classifier)
  DIR/input_224.npy, input_small.npy   float32 (2, C, 224, 224) and (2, C, 128, 96) (or the nearest
                                       multiples of the patch size)
  DIR/{tokens,cls}_{224,small}.npy     patch tokens as (2, dim, H/P, W/P), class token (2, dim);
                                       the small input uses pos_embed resampled bicubically with
                                       antialiasing, as timm's resample_abs_pos_embed does
Ends with one JSON line: {"params": P}.
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        return self.proj((attention.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden, swiglu):
        super().__init__()
        self.swiglu = swiglu
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden // 2 if swiglu else hidden, dim)

    def forward(self, x):
        h = self.fc1(x)
        if self.swiglu:
            gate, value = h.chunk(2, dim=-1)
            return self.fc2(F.silu(gate) * value)
        return self.fc2(F.gelu(h))


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(dim).uniform_(0.5, 1.5))

    def forward(self, x):
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, swiglu, layer_scale):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden, swiglu)
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch)


class VisionTransformer(nn.Module):
    def __init__(self, in_chans, dim=384, depth=12, heads=6, patch=16, mlp_ratio=4.0, layer_scale=False,
                 registers=0, no_embed_class=False, swiglu=False, image=224, classes=1000):
        super().__init__()
        self.patch = patch
        self.grid = image // patch
        self.registers = registers
        self.no_embed_class = no_embed_class
        self.patch_embed = PatchEmbed(in_chans, dim, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        if registers:
            self.reg_token = nn.Parameter(torch.randn(1, registers, dim) * 0.02)
        self.prefix = 0 if no_embed_class else 1 + registers
        self.pos_embed = nn.Parameter(torch.randn(1, self.prefix + self.grid * self.grid, dim) * 0.02)
        hidden = int(dim * mlp_ratio)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden, swiglu, layer_scale) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def tokens(self, x):
        rows, columns = x.shape[2] // self.patch, x.shape[3] // self.patch
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        prefix_pos, patch_pos = self.pos_embed[:, :self.prefix], self.pos_embed[:, self.prefix:]
        if (rows, columns) != (self.grid, self.grid):
            patch = patch_pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2).float()
            patch = F.interpolate(patch, size=(rows, columns), mode="bicubic", antialias=True, align_corners=False)
            patch_pos = patch.permute(0, 2, 3, 1).reshape(1, rows * columns, -1)
        prefix = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.registers:
            prefix.append(self.reg_token.expand(x.shape[0], -1, -1))
        prefix = torch.cat(prefix, 1)
        if self.no_embed_class:
            x = torch.cat([prefix, x + patch_pos], 1)
        else:
            x = torch.cat([prefix, x], 1) + torch.cat([prefix_pos, patch_pos], 1)
        return self.norm(self.blocks(x)), rows, columns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in-chans", type=int, required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--mlp-ratio", type=float, default=4.0)
    ap.add_argument("--layer-scale", action="store_true")
    ap.add_argument("--registers", type=int, default=0)
    ap.add_argument("--no-embed-class", action="store_true")
    ap.add_argument("--swiglu", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = VisionTransformer(args.in_chans, args.dim, args.depth, args.heads, args.patch, args.mlp_ratio,
                              args.layer_scale, args.registers, args.no_embed_class, args.swiglu).eval()
    # LayerNorm weights away from 1 and 0, so they are really applied.
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    os.makedirs(args.out_dir, exist_ok=True)
    small = (128 // args.patch * args.patch, 96 // args.patch * args.patch)
    for name, shape in [("224", (2, args.in_chans, 224, 224)), ("small", (2, args.in_chans) + small)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            tokens, rows, columns = model.tokens(x)
        np.save(os.path.join(args.out_dir, f"input_{name}.npy"), x.numpy())
        patches = tokens[:, 1 + args.registers:].transpose(1, 2).reshape(2, -1, rows, columns)
        np.save(os.path.join(args.out_dir, f"tokens_{name}.npy"), patches.numpy())
        np.save(os.path.join(args.out_dir, f"cls_{name}.npy"), tokens[:, 0].numpy())
    torch.save(model.state_dict(), os.path.join(args.out_dir, "model.pth"))
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
