#!/usr/bin/env python3
"""PyTorch reference checkpoint and outputs for graft's ViT (timm's VisionTransformer layout and
key names, as timm, TorchGeo and UNI checkpoints use them).

Written from the published architecture (Dosovitskiy et al. 2021) with timm's choices: pre-norm
blocks, LayerNorm eps 1e-6, exact GELU, qkv bias, class token, learned absolute positions, final
norm; timm's module names (patch_embed.proj, cls_token, pos_embed, blocks.N.norm1, .attn.qkv,
.attn.proj, .norm2, .mlp.fc1, .mlp.fc2, norm, head).

Usage: timm_vit_reference.py --in-chans C --out-dir DIR [--seed S]
  DIR/model.pth                        torch.save(state_dict) with head.* (a classifier)
  DIR/input_224.npy, input_small.npy   float32 (2, C, 224, 224) and (2, C, 128, 96)
  DIR/{tokens,cls}_{224,small}.npy     patch tokens as (2, 384, H/16, W/16), class token (2, 384);
                                       the small input uses pos_embed resampled bicubically
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
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, 16, 16)


class VisionTransformer(nn.Module):
    def __init__(self, in_chans, dim=384, depth=12, heads=6, image=224, classes=1000):
        super().__init__()
        self.grid = image // 16
        self.patch_embed = PatchEmbed(in_chans, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid * self.grid, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def tokens(self, x):
        rows, columns = x.shape[2] // 16, x.shape[3] // 16
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        positions = self.pos_embed
        if (rows, columns) != (self.grid, self.grid):
            patch = self.pos_embed[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
            patch = F.interpolate(patch, size=(rows, columns), mode="bicubic", align_corners=False)
            positions = torch.cat([self.pos_embed[:, :1], patch.permute(0, 2, 3, 1).reshape(1, rows * columns, -1)], 1)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + positions
        return self.norm(self.blocks(x)), rows, columns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--in-chans", type=int, required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = VisionTransformer(args.in_chans).eval()
    # LayerNorm weights away from 1 and 0, so they are really applied.
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    os.makedirs(args.out_dir, exist_ok=True)
    for name, shape in [("224", (2, args.in_chans, 224, 224)), ("small", (2, args.in_chans, 128, 96))]:
        x = torch.rand(*shape)
        with torch.no_grad():
            tokens, rows, columns = model.tokens(x)
        np.save(os.path.join(args.out_dir, f"input_{name}.npy"), x.numpy())
        patches = tokens[:, 1:].transpose(1, 2).reshape(2, -1, rows, columns)
        np.save(os.path.join(args.out_dir, f"tokens_{name}.npy"), patches.numpy())
        np.save(os.path.join(args.out_dir, f"cls_{name}.npy"), tokens[:, 0].numpy())
    torch.save(model.state_dict(), os.path.join(args.out_dir, "model.pth"))
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
