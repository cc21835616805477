#!/usr/bin/env python3
"""pydicom's decoded pixels of single-frame DICOM files, summarised in graft's voxel order, for
cross-checking graft's decoders (colour by plane, RLE, byte order) against an independent one.

Usage: pydicom_pixels.py FILE [FILE...]

Prints one JSON object per line: path, channels, sums (one per channel) and checksum_weighted
over the values in graft's order (channel, row, column; column fastest), weights
(index % 1009) + 1 as in nibabel_reference.py. Files pydicom cannot decode give
{"path": ..., "error": ...}.
"""
import sys

import numpy as np
import pydicom

from json_lines import report_each

CHECKSUM_MOD = 1009


def describe(path):
    dataset = pydicom.dcmread(path)
    pixels = np.asarray(dataset.pixel_array, dtype=np.float64)
    if int(getattr(dataset, "SamplesPerPixel", 1)) == 1:
        pixels = pixels[np.newaxis]
    else:
        pixels = np.moveaxis(pixels, -1, 0)  # rows x columns x samples -> samples x rows x columns
    flat = pixels.ravel(order="C")
    weights = (np.arange(flat.size) % CHECKSUM_MOD + 1).astype(np.float64)
    return {
        "path": path,
        "channels": int(pixels.shape[0]),
        "sums": [float(channel.sum()) for channel in pixels],
        "checksum_weighted": float((flat * weights).sum()),
    }


if __name__ == "__main__":
    report_each(describe, sys.argv[1:])
