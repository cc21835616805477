#!/usr/bin/env python3
"""PyTorch reference checkpoints and outputs for graft's MedicalNet (Med3D) port.

The model below is written from the published description of MedicalNet's
3D ResNet (Tencent/MedicalNet, models/resnet.py): same module names, so the
state_dict keys match the released .pth files.

Usage
-----
Model mode (writes checkpoints and reference outputs):

  med3d_reference.py --depth D --out-dir DIR [--in-channels C] [--classes K]
                     [--input-shape N D H W] [--seed S] [--with-head]
                     [--write-safetensors FILE]

  DIR/input.npy                 input, float32, shape (N, C, D, H, W)
  DIR/stem.npy                  relu(bn1(conv1(x))), before maxpool
  DIR/layer1.npy .. layer4.npy  outputs of layer1..layer4
  DIR/pooled.npy                mean of layer4 over D, H, W: (N, channels)
  DIR/seg.npy                   conv_seg(layer4)  (only with --with-head)
  DIR/zip.pth                   {'state_dict': {'module.'+k: v}}, zip format
  DIR/legacy.pth                same, pre-1.6 (non-zip) format
  DIR/bare.pth                  bare state_dict (no 'module.'), zip format
  DIR/with_optimizer.pth        {'epoch', 'state_dict', 'optimizer' (SGD with
                                momentum buffers), 'note', 'lr', 'flags'}
  DIR/keys.json                 [[key, shape, dtype], ...] in state_dict order
  FILE (--write-safetensors)    the bare state_dict in safetensors format
                                (--out-dir may then be omitted)

  Ends with one JSON line: {"depth": D, "params": P, "files": [...]}.

Malicious-checkpoint mode (files are written, never loaded):

  med3d_reference.py --evil FILE          zip-format torch.save whose pickle
                                          references os.system (posix.system)
  med3d_reference.py --evil-legacy FILE   same, legacy (non-zip) format

Safetensors reader (without the safetensors package):

  med3d_reference.py --safetensors-check FILE
  prints one JSON line per tensor, in data order:
  {"name": ["F32", [shape...], float64_sum]}
"""
import argparse
import copy
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

def conv3x3x3(in_planes, out_planes, stride=1, dilation=1):
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, dilation=dilation,
                     stride=stride, padding=dilation, bias=False)


class ShortcutA:
    """Parameter-free shortcut: strided identity, zero-padded channels."""

    def __init__(self, planes, stride):
        self.planes = planes
        self.stride = stride

    def __call__(self, x):
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        pad = self.planes - out.size(1)
        if pad > 0:
            zeros = torch.zeros(out.size(0), pad, out.size(2), out.size(3),
                                out.size(4), dtype=out.dtype, device=out.device)
            out = torch.cat([out, zeros], dim=1)
        return out


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3x3(inplanes, planes, stride=stride, dilation=dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample
        self.stride = stride
        self.dilation = dilation

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out = out + residual
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride,
                               dilation=dilation, padding=dilation, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.dilation = dilation

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out = out + residual
        return self.relu(out)


class Med3DResNet(nn.Module):
    def __init__(self, block, layers, shortcut_type='B', in_channels=1,
                 num_seg_classes=2, with_head=False):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv3d(in_channels, 64, kernel_size=7, stride=2,
                               padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], shortcut_type)
        self.layer2 = self._make_layer(block, 128, layers[1], shortcut_type,
                                       stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], shortcut_type,
                                       stride=1, dilation=2)
        self.layer4 = self._make_layer(block, 512, layers[3], shortcut_type,
                                       stride=1, dilation=4)
        self.with_head = with_head
        if with_head:
            self.conv_seg = nn.Sequential(
                nn.ConvTranspose3d(512 * block.expansion, 32, 2, stride=2),
                nn.BatchNorm3d(32),
                nn.ReLU(inplace=True),
                nn.Conv3d(32, 32, kernel_size=3, stride=(1, 1, 1),
                          padding=(1, 1, 1), bias=False),
                nn.BatchNorm3d(32),
                nn.ReLU(inplace=True),
                nn.Conv3d(32, num_seg_classes, kernel_size=1, stride=(1, 1, 1),
                          bias=False),
            )

    def _make_layer(self, block, planes, blocks, shortcut_type, stride=1,
                    dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            if shortcut_type == 'A':
                downsample = ShortcutA(planes * block.expansion, stride)
            else:
                downsample = nn.Sequential(
                    nn.Conv3d(self.inplanes, planes * block.expansion,
                              kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm3d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride=stride, dilation=dilation,
                        downsample=downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, dilation=dilation))
        return nn.Sequential(*layers)

    def forward(self, x):
        out = {}
        x = self.relu(self.bn1(self.conv1(x)))
        out['stem'] = x
        x = self.maxpool(x)
        x = self.layer1(x)
        out['layer1'] = x
        x = self.layer2(x)
        out['layer2'] = x
        x = self.layer3(x)
        out['layer3'] = x
        x = self.layer4(x)
        out['layer4'] = x
        if self.with_head:
            out['seg'] = self.conv_seg(x)
        return out


DEPTHS = {
    10: (BasicBlock, [1, 1, 1, 1], 'B'),
    18: (BasicBlock, [2, 2, 2, 2], 'A'),
    34: (BasicBlock, [3, 4, 6, 3], 'A'),
    50: (Bottleneck, [3, 4, 6, 3], 'B'),
    101: (Bottleneck, [3, 4, 23, 3], 'B'),
    152: (Bottleneck, [3, 8, 36, 3], 'B'),
    200: (Bottleneck, [3, 24, 36, 3], 'B'),
}


def build_model(depth, in_channels, classes, with_head):
    block, layers, shortcut = DEPTHS[depth]
    return Med3DResNet(block, layers, shortcut_type=shortcut,
                       in_channels=in_channels, num_seg_classes=classes,
                       with_head=with_head)


def randomise_batchnorm(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c) * 0.1)
                m.running_var.copy_(torch.rand(c) + 0.5)
                m.weight.copy_(1.0 + torch.randn(c) * 0.1)
                m.bias.copy_(torch.randn(c) * 0.1)


# --------------------------------------------------------------------------
# safetensors (no external package)
# --------------------------------------------------------------------------

_ST_FROM_TORCH = {
    torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16',
    torch.bfloat16: 'BF16', torch.int64: 'I64', torch.int32: 'I32',
    torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8',
    torch.bool: 'BOOL',
}

_ST_TO_NUMPY = {
    'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4',
    'I16': '<i2', 'I8': 'i1', 'U8': 'u1', 'BOOL': '?', 'U16': '<u2',
    'U32': '<u4', 'U64': '<u8',
}

_ST_ITEMSIZE = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4,
                'I16': 2, 'I8': 1, 'U8': 1, 'BOOL': 1, 'U16': 2, 'U32': 4,
                'U64': 8}


def _tensor_le_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        arr = t.view(torch.int16).numpy().astype('<i2', copy=False)
    else:
        arr = t.numpy()
        arr = arr.astype(arr.dtype.newbyteorder('<'), copy=False)
    return np.ascontiguousarray(arr).tobytes()


def write_safetensors(state, path):
    header = {'__metadata__': {'format': 'pt'}}
    chunks = []
    offset = 0
    for k, v in state.items():
        data = _tensor_le_bytes(v)
        header[k] = {'dtype': _ST_FROM_TORCH[v.dtype], 'shape': list(v.shape),
                     'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    hdr = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hdr += b' ' * ((8 - len(hdr) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hdr)))
        f.write(hdr)
        for c in chunks:
            f.write(c)


def read_safetensors_summary(path):
    with open(path, 'rb') as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError('file too short for a safetensors header')
    (n,) = struct.unpack('<Q', raw[:8])
    if 8 + n > len(raw):
        raise ValueError('header length %d exceeds file size' % n)
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    data = raw[8 + n:]
    entries = [(k, v) for k, v in header.items() if k != '__metadata__']
    entries.sort(key=lambda kv: tuple(kv[1]['data_offsets']))
    out = []
    for name, info in entries:
        dtype = info['dtype']
        shape = [int(s) for s in info['shape']]
        begin, end = (int(o) for o in info['data_offsets'])
        numel = 1
        for s in shape:
            numel *= s
        if dtype not in _ST_ITEMSIZE:
            raise ValueError('%s: unsupported dtype %s' % (name, dtype))
        if not (0 <= begin <= end <= len(data)) or \
                end - begin != numel * _ST_ITEMSIZE[dtype]:
            raise ValueError('%s: bad data_offsets %r' % (name, [begin, end]))
        buf = data[begin:end]
        if dtype == 'BF16':
            u = np.frombuffer(buf, dtype='<u2').astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=_ST_TO_NUMPY[dtype])
        total = float(np.sum(arr.astype(np.float64), dtype=np.float64))
        out.append((name, [dtype, shape, total]))
    return out


# --------------------------------------------------------------------------
# Malicious checkpoints
# --------------------------------------------------------------------------

class _Pwned:
    """Pickles as a call to os.system; never unpickled by this script."""

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def write_evil(path, legacy):
    obj = {'state_dict': {'module.conv1.weight': torch.zeros(2, 1, 1, 1, 1)},
           'payload': _Pwned()}
    if legacy:
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(obj, path)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def _save_npy(path, t):
    np.save(path, np.ascontiguousarray(t.detach().cpu().numpy(),
                                       dtype=np.float32))


def _json_num(v):
    return v if math.isfinite(v) else None


def run_model(args):
    torch.manual_seed(args.seed)
    model = build_model(args.depth, args.in_channels, args.classes,
                        args.with_head)
    randomise_batchnorm(model)
    model.eval()
    n, d, h, w = args.input_shape
    x = torch.randn(n, args.in_channels, d, h, w, dtype=torch.float32)

    files = []
    state = model.state_dict()
    params = sum(p.numel() for p in model.parameters())

    if args.out_dir:
        out = args.out_dir
        os.makedirs(out, exist_ok=True)

        def p(name):
            path = os.path.join(out, name)
            files.append(path)
            return path

        _save_npy(p('input.npy'), x)
        with torch.no_grad():
            res = model(x)
        for name in ('stem', 'layer1', 'layer2', 'layer3', 'layer4'):
            _save_npy(p(name + '.npy'), res[name])
        _save_npy(p('pooled.npy'), res['layer4'].mean(dim=(2, 3, 4)))
        if args.with_head:
            _save_npy(p('seg.npy'), res['seg'])

        prefixed = {'module.' + k: v for k, v in state.items()}
        torch.save({'state_dict': prefixed}, p('zip.pth'))
        torch.save({'state_dict': prefixed}, p('legacy.pth'),
                   _use_new_zipfile_serialization=False)
        torch.save(state, p('bare.pth'))

        # Optimizer state from a copy, so the saved weights stay untouched.
        twin = copy.deepcopy(model)
        opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
        gen = torch.Generator().manual_seed(args.seed + 1)
        for q in twin.parameters():
            q.grad = torch.randn(q.shape, generator=gen) * 0.01
        opt.step()
        torch.save({'epoch': 3, 'state_dict': prefixed,
                    'optimizer': opt.state_dict(), 'note': 'hello',
                    'lr': 0.001, 'flags': (True, None)},
                   p('with_optimizer.pth'))

        keys = [[k, list(v.shape), str(v.dtype).replace('torch.', '')]
                for k, v in state.items()]
        with open(p('keys.json'), 'w') as f:
            json.dump(keys, f)

    if args.write_safetensors:
        d_ = os.path.dirname(args.write_safetensors)
        if d_:
            os.makedirs(d_, exist_ok=True)
        write_safetensors(state, args.write_safetensors)
        files.append(args.write_safetensors)

    print(json.dumps({'depth': args.depth, 'params': params, 'files': files}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--depth', type=int, choices=sorted(DEPTHS))
    ap.add_argument('--out-dir')
    ap.add_argument('--in-channels', type=int, default=1)
    ap.add_argument('--classes', type=int, default=2)
    ap.add_argument('--input-shape', type=int, nargs=4, default=[1, 16, 32, 32],
                    metavar=('N', 'D', 'H', 'W'))
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--with-head', action='store_true')
    ap.add_argument('--write-safetensors', metavar='FILE')
    ap.add_argument('--safetensors-check', metavar='FILE')
    ap.add_argument('--evil', metavar='FILE')
    ap.add_argument('--evil-legacy', metavar='FILE')
    args = ap.parse_args(argv)

    did = False
    if args.evil:
        write_evil(args.evil, legacy=False)
        did = True
    if args.evil_legacy:
        write_evil(args.evil_legacy, legacy=True)
        did = True
    if args.evil or args.evil_legacy:
        print(json.dumps({'evil': [f for f in (args.evil, args.evil_legacy)
                                   if f]}))
    if args.safetensors_check:
        for name, info in read_safetensors_summary(args.safetensors_check):
            info[2] = _json_num(info[2])
            print(json.dumps({name: info}))
        did = True
    if args.out_dir or args.write_safetensors:
        if args.depth is None:
            ap.error('--depth is required with --out-dir / --write-safetensors')
        run_model(args)
        did = True
    if not did:
        ap.error('nothing to do: give --out-dir, --write-safetensors, '
                 '--safetensors-check, --evil or --evil-legacy')
    return 0


if __name__ == '__main__':
    sys.exit(main())
