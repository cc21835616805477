#!/usr/bin/env python3
"""PyTorch half of the training-step benchmark: the same Med3D ResNet + MedicalNet head, the same
loss, optimizer, batch and patch as `graft bench train-step`, in Debian's python3-torch (the same
LibTorch build graft links). Prints `seconds_per_step X` as its last line.

usage: python_train_step.py --depth 10 --batch 2 --patch D H W --steps N --threads T
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tests', 'tools'))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from med3d_reference import build_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--depth', type=int, default=10)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--patch', type=int, nargs=3, default=[32, 64, 64])
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.depth, 1, 2, True)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(args.batch, 1, *args.patch)
    y = torch.randint(0, 2, (args.batch, *args.patch))

    def step():
        optimizer.zero_grad()
        logits = model(x)['seg']
        logits = F.interpolate(logits, size=args.patch, mode='trilinear', align_corners=False)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()

    step()  # warm-up, as graft's bench does
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print('threads', torch.get_num_threads())
    print('seconds_per_step %.6f' % (seconds / args.steps))


if __name__ == '__main__':
    main()
