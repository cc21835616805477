#!/usr/bin/env python3
"""Reference values computed with nibabel, for cross-checking graft's NIfTI reader.

Usage: nibabel_reference.py FILE [FILE...]

Prints one JSON object per line (JSON lines) to stdout, one per input file:
  path, shape, affine_ras, affine_lps, dtype, sum, sum_abs, min, max,
  first_values (first 16 values in Fortran/x-fastest order),
  checksum_weighted (sum of value * ((fortran_linear_index % 1009) + 1)).
NaN / Inf are written as null. Files nibabel cannot load give
{"path": ..., "error": ...}.
"""
import json
import math
import sys

import numpy as np
import nibabel as nib

CHECKSUM_MOD = 1009
N_FIRST = 16


def _num(v):
    """Python float, or None for NaN/Inf (JSON has no NaN)."""
    f = float(v)
    return f if math.isfinite(f) else None


def _matrix(m):
    return [[_num(x) for x in row] for row in np.asarray(m, dtype=np.float64)]


def _weights(n):
    """((i % 1009) + 1) for i in range(n), as float64."""
    base = np.arange(1, CHECKSUM_MOD + 1, dtype=np.float64)
    reps = -(-n // CHECKSUM_MOD)
    return np.tile(base, reps)[:n] if n else np.zeros(0, dtype=np.float64)


def describe(path):
    img = nib.load(path)
    if not hasattr(img, 'affine'):
        # CIFTI-2 files are NIfTI-2 underneath; compare against that view of them.
        img = nib.Nifti2Image.from_filename(path)
    data = np.asanyarray(img.dataobj)
    affine = np.asarray(img.affine, dtype=np.float64)
    lps = affine.copy()
    lps[0:2, :] *= -1.0
    # normalise -0.0 to 0.0 so the output is stable / diff-friendly
    affine = affine + 0.0
    lps = lps + 0.0

    # Fortran-order flattening: x fastest (NIfTI on-disk order).
    flat = np.asarray(data, dtype=np.float64).ravel(order='F')
    n = flat.size
    # NaN voxels (legal in float images) are counted, then summed as 0, so sums stay comparable.
    nan_count = int(np.count_nonzero(np.isnan(flat)))
    flat = np.where(np.isnan(flat), 0.0, flat)
    if n:
        total = float(np.sum(flat))
        total_abs = float(np.sum(np.abs(flat)))
        vmin = float(np.min(flat))
        vmax = float(np.max(flat))
        checksum = float(np.dot(flat, _weights(n)))
    else:
        total = total_abs = checksum = 0.0
        vmin = vmax = float('nan')

    return {
        'path': path,
        'shape': [int(s) for s in img.shape],
        'affine_ras': _matrix(affine),
        'affine_lps': _matrix(lps),
        'dtype': data.dtype.name,
        'sum': _num(total),
        'sum_abs': _num(total_abs),
        'min': _num(vmin),
        'max': _num(vmax),
        'first_values': [_num(v) for v in flat[:N_FIRST]],
        'checksum_weighted': _num(checksum),
        'nan_count': nan_count,
        'qform_code': int(img.header['qform_code']),
        'sform_code': int(img.header['sform_code']),
    }


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    rc = 0
    for path in argv[1:]:
        try:
            rec = describe(path)
        except Exception as exc:  # report and continue with the next file
            rec = {'path': path, 'error': '%s: %s' % (type(exc).__name__, exc)}
            rc = 1
        sys.stdout.write(json.dumps(rec, allow_nan=False) + '\n')
        sys.stdout.flush()
    return rc


if __name__ == '__main__':
    sys.exit(main(sys.argv))
