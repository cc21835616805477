#!/usr/bin/env python3
"""Pillow's view of plain 2D images (PNG, JPEG, TIFF), for graft's reader tests.

Usage: pil_reference.py FILE...
       pil_reference.py --make FOLDER   writes rgb.png, grey16.png, rgba.png, palette.png, rgb.jpg
                                        and rgb.tif, each 7 x 5 pixels with a known pattern
One JSON line per file: {"path", "mode", "width", "height", "channels", "pixels"}, pixels as a
list of rows (top row first) of per-pixel lists of channel values, as numpy.asarray gives them.
"""
import json
import os
import sys

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 7, 5


def make(folder):
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([x * 30 + 5, y * 50 + 3, (x * 7 + y * 11) % 256], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(os.path.join(folder, "rgb.png"))
    Image.fromarray(rgb, "RGB").save(os.path.join(folder, "rgb.tif"))
    Image.fromarray(rgb, "RGB").save(os.path.join(folder, "rgb.jpg"), quality=95)
    grey16 = (x * 9000 + y * 700).astype(np.uint16)
    Image.fromarray(grey16).save(os.path.join(folder, "grey16.png"))
    alpha = (x * 40).astype(np.uint8)[..., None]
    Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA").save(os.path.join(folder, "rgba.png"))
    palette = Image.fromarray(((x + 2 * y) % 4).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (252 * 3))
    palette.save(os.path.join(folder, "palette.png"))


def describe(path):
    image = Image.open(path)
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return {"path": path, "mode": image.mode, "width": image.width, "height": image.height,
            "channels": int(pixels.shape[2]), "pixels": pixels.astype(np.int64).tolist()}


if __name__ == "__main__":
    if sys.argv[1] == "--make":
        make(sys.argv[2])
    else:
        for path in sys.argv[1:]:
            print(json.dumps(describe(path)))
