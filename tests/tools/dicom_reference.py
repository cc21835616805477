#!/usr/bin/env python3
"""Reference values for single DICOM files, computed with nibabel's DICOM wrappers (which read
through pydicom), for cross-checking graft's DICOM reader.

Usage: dicom_reference.py FILE [FILE...]

Prints one JSON object per line, in graft's conventions: index x is the column, y the row, z the
slice (mosaic tile); the affine maps (x, y, z) to patient LPS millimetres.
  path, size [x, y, z], affine_lps (4x4), sum, checksum_weighted (x-fastest order, as
  nibabel_reference.py), rescaled (bool).
Files nibabel cannot read give {"path": ..., "error": ...}.
"""
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")  # nibabel warns that its DICOM readers are experimental
import nibabel.nicom.dicomwrappers as wrappers  # noqa: E402
from json_lines import report_each  # noqa: E402

CHECKSUM_MOD = 1009


def describe(path):
    wrapper = wrappers.wrapper_from_file(path)
    data = np.asarray(wrapper.get_data(), dtype=np.float64)
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    # nibabel indexes (row, column, slice); graft indexes (column, row, slice).
    data = data.transpose(1, 0, 2)
    affine = np.asarray(wrapper.affine, dtype=np.float64).copy()
    affine[:, [0, 1]] = affine[:, [1, 0]]
    flat = data.ravel(order="F")
    weights = (np.arange(flat.size) % CHECKSUM_MOD + 1).astype(np.float64)
    return {
        "path": path,
        "size": list(data.shape),
        "affine_lps": (affine + 0.0).tolist(),
        "sum": float(flat.sum()),
        "checksum_weighted": float((flat * weights).sum()),
    }


if __name__ == "__main__":
    report_each(describe, sys.argv[1:])
