#!/usr/bin/env python3
"""Reference Python (nibabel + scipy.ndimage) preprocessing pipeline for benchmarks.

Modes
-----
Benchmark (default):
    python_pipeline.py --input FILE.nii[.gz] [--repeat N] [--threads T]
                       [--target-spacing-mm 1.0]
  Stages, each timed with time.perf_counter; the whole pipeline is run
  --repeat times and the best (minimum) is reported:
    read      nib.load + np.asanyarray(img.dataobj) -> float32 (scaled values)
    reorient  nib.as_closest_canonical on an in-memory image holding that
              array (nibabel returns flipped/transposed views; no copy is forced)
    resample  to isotropic --target-spacing-mm with scipy.ndimage:
              per axis zoom z = old_spacing / new_spacing; for axes with z < 1
              a Gaussian pre-filter with sigma = (1/z - 1)/2 (skimage's
              anti-aliasing rule, mode='nearest', truncate=4), then
              scipy.ndimage.zoom(order=1, mode='nearest', grid_mode=False);
              output shape = round(shape * z) (scipy's own rule; with
              grid_mode=False corner voxel centres are aligned, i.e. the
              effective step is (n_in - 1)/(n_out - 1) input voxels)
    zscore    (x - mean) / std over all voxels (mean/std accumulated in
              float64, result float32)
  The last line of stdout is one JSON object:
    input_bytes, input_mb, seconds_best, mb_per_s, stages{read, reorient,
    resample, zscore} (each the per-stage minimum over the repeats),
    output_shape, output_mean, output_std, plus a few informational keys.

End to end, as a user runs it (the script's own start-up and imports included when
timed from outside):
    python_pipeline.py --input FILE.nii[.gz] --output OUT.nii [--threads T]
  The same stages once, except that the resampling keeps voxel edges in place
  (scipy.ndimage.zoom grid_mode=True), as graft's resampling does, so the two
  outputs can be compared voxel for voxel; the result is written as float32
  NIfTI with the resampled grid's affine.

Synthetic CT:
    python_pipeline.py --make-synthetic-ct OUT.nii.gz [--size 512 512 300]
                       [--spacing 0.7 0.7 2.5]
  Deterministic (np.random.default_rng(0)) int16 CT-like volume, affine
  diag(-sx, -sy, sz) in RAS (LPS voxel order, as DICOM CT), sform_code 1.

Upsample a real volume:
    python_pipeline.py --upsample INPUT OUT.nii.gz --factor F
  scipy.ndimage.zoom(order=1, mode='nearest', grid_mode=True) by F per spatial
  axis (output shape round(shape*F)); the world extent (n * spacing, voxel
  edges) is kept: spacing *= n_in/n_out, origin shifted by half-voxel terms.
  Saved as int16 (rounded, clipped).

--threads T sets OMP/OpenBLAS/MKL thread counts before numpy is imported
(scipy.ndimage itself is single-threaded).
"""
import os
import sys


def _early_threads(argv):
    """Export thread-count env vars from argv before numpy is imported."""
    t = None
    for i, a in enumerate(argv):
        if a == '--threads' and i + 1 < len(argv):
            t = argv[i + 1]
        elif a.startswith('--threads='):
            t = a.split('=', 1)[1]
    if t is not None:
        for var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
                    'NUMEXPR_NUM_THREADS', 'VECLIB_MAXIMUM_THREADS'):
            os.environ[var] = str(t)


_early_threads(sys.argv)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import nibabel as nib  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402


# ----------------------------------------------------------------------------
# benchmark pipeline
# ----------------------------------------------------------------------------

def _spacing_from_affine(aff):
    return np.sqrt(np.sum(np.asarray(aff, dtype=np.float64)[:3, :3] ** 2, axis=0))


def stage_read(path):
    img = nib.load(path)
    data = np.asanyarray(img.dataobj).astype(np.float32, copy=False)
    # drop trailing singleton dims (e.g. 3D stored as X,Y,Z,1)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise SystemExit('only 3D volumes are supported, got shape %s' % (data.shape,))
    return img, data


def stage_reorient(img, data):
    mem = img.__class__(data, img.affine, img.header)
    canon = nib.as_closest_canonical(mem)
    arr = np.asanyarray(canon.dataobj)
    return arr, np.asarray(canon.affine, dtype=np.float64)


def stage_resample(arr, affine, target, keep_edges=False):
    old = _spacing_from_affine(affine)
    zoom = old / float(target)
    sigma = [((1.0 / z) - 1.0) / 2.0 if z < 1.0 else 0.0 for z in zoom]
    x = arr
    if any(s > 0 for s in sigma):
        # gaussian_filter skips axes whose sigma is 0
        x = ndi.gaussian_filter(x, sigma=sigma, mode='nearest', truncate=4.0)
    if keep_edges:
        # the output size graft uses; zoom then maps voxel edges onto voxel edges
        shape = [max(1, int(round(n * z))) for n, z in zip(x.shape, zoom)]
        zoom = np.array(shape, dtype=np.float64) / np.array(x.shape, dtype=np.float64)
    out = ndi.zoom(x, zoom=tuple(float(z) for z in zoom), order=1,
                   mode='nearest', grid_mode=keep_edges)
    return out, zoom, sigma


def stage_zscore(x):
    mean = float(np.mean(x, dtype=np.float64))
    std = float(np.std(x, dtype=np.float64))
    out = x - np.float32(mean)
    if std > 0:
        out /= np.float32(std)
    return out.astype(np.float32, copy=False)


def run_benchmark(args):
    hdr_img = nib.load(args.input)
    shape = tuple(int(s) for s in hdr_img.shape)
    ondisk = np.dtype(hdr_img.get_data_dtype())
    input_bytes = int(np.prod(shape, dtype=np.int64)) * ondisk.itemsize
    input_mb = input_bytes / 1e6
    del hdr_img

    best_total = None
    best_stage = {'read': None, 'reorient': None, 'resample': None, 'zscore': None}
    totals = []
    out = None
    info = {}
    for _ in range(max(1, args.repeat)):
        out = None  # free the previous result before timing
        t0 = time.perf_counter()
        img, data = stage_read(args.input)
        t1 = time.perf_counter()
        arr, aff = stage_reorient(img, data)
        t2 = time.perf_counter()
        res, zoom, sigma = stage_resample(arr, aff, args.target_spacing_mm)
        t3 = time.perf_counter()
        out = stage_zscore(res)
        t4 = time.perf_counter()
        del img, data, arr, res
        dts = {'read': t1 - t0, 'reorient': t2 - t1, 'resample': t3 - t2, 'zscore': t4 - t3}
        for k, v in dts.items():
            if best_stage[k] is None or v < best_stage[k]:
                best_stage[k] = v
        total = t4 - t0
        totals.append(total)
        if best_total is None or total < best_total:
            best_total = total
        info = {'zoom': [float(z) for z in zoom], 'sigma': [float(s) for s in sigma],
                'canonical_affine': aff.tolist()}
        sys.stderr.write('run: total %.3fs  %s\n' % (
            total, '  '.join('%s %.3fs' % kv for kv in dts.items())))

    result = {
        'input': args.input,
        'input_shape': list(shape),
        'input_dtype': ondisk.name,
        'input_bytes': input_bytes,
        'input_mb': input_mb,
        'repeat': max(1, args.repeat),
        'threads': args.threads,
        'target_spacing_mm': args.target_spacing_mm,
        'seconds_best': best_total,
        'seconds_all': totals,
        'mb_per_s': input_mb / best_total if best_total > 0 else None,
        'stages': best_stage,
        'output_shape': [int(s) for s in out.shape],
        'output_mean': float(np.mean(out, dtype=np.float64)),
        'output_std': float(np.std(out, dtype=np.float64)),
    }
    result.update(info)
    print(json.dumps(result))
    return 0


def run_end_to_end(args):
    img, data = stage_read(args.input)
    arr, aff = stage_reorient(img, data)
    del img, data
    res, zoom, _ = stage_resample(arr, aff, args.target_spacing_mm, keep_edges=True)
    ratio = 1.0 / np.asarray(zoom, dtype=np.float64)  # new spacing / old spacing
    new_aff = aff.copy()
    new_aff[:3, :3] = aff[:3, :3] * ratio[None, :]
    new_aff[:3, 3] = aff[:3, :3] @ (0.5 * ratio - 0.5) + aff[:3, 3]
    del arr
    out = stage_zscore(res)
    del res
    result = nib.Nifti1Image(out, new_aff)
    result.set_data_dtype(np.float32)
    nib.save(result, args.output)
    return 0


# ----------------------------------------------------------------------------
# synthetic CT
# ----------------------------------------------------------------------------

def _ellipse(u, v, cu, cv, ru, rv):
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def make_synthetic_ct(out_path, size, spacing):
    nx, ny, nz = (int(s) for s in size)
    sx, sy, sz = (float(s) for s in spacing)
    rng = np.random.default_rng(0)

    # in-plane coordinates in mm relative to the volume centre; voxel order is
    # LPS (i -> patient left, j -> posterior), so +v is posterior.
    u = ((np.arange(nx, dtype=np.float32) - (nx - 1) / 2.0) * sx)[:, None]
    v = ((np.arange(ny, dtype=np.float32) - (ny - 1) / 2.0) * sy)[None, :]
    fov = min(nx * sx, ny * sy)
    s = fov / 360.0  # scale anatomy to the field of view (designed for ~360 mm)

    vol = np.empty((nx, ny, nz), dtype=np.int16, order='F')
    zlen = max(nz - 1, 1)
    for k in range(nz):
        t = k / zlen  # 0 (inferior) .. 1 (superior)
        sl = np.full((nx, ny), -1000.0, dtype=np.float32)
        # body: slightly varying cross-section along z
        bw = (165.0 + 12.0 * np.sin(np.pi * t)) * s
        bh = (115.0 + 8.0 * np.sin(np.pi * t)) * s
        body = _ellipse(u, v, 0.0, 5.0 * s, bw, bh)
        inner = _ellipse(u, v, 0.0, 5.0 * s, bw - 12.0 * s, bh - 12.0 * s)
        sl[body] = -90.0            # subcutaneous fat
        sl[inner] = 0.0             # soft tissue ~0 HU
        # lungs in the superior part
        if t > 0.6:
            lr = min(1.0, (t - 0.6) / 0.1)
            for side in (-1.0, 1.0):
                sl[_ellipse(u, v, side * 70.0 * s, -5.0 * s, 55.0 * s * lr, 70.0 * s * lr)] = -820.0
        else:
            # abdominal organs ~50 HU (liver, spleen, kidneys)
            sl[_ellipse(u, v, -60.0 * s, -10.0 * s, 75.0 * s, 60.0 * s)] = 55.0   # liver (patient right)
            sl[_ellipse(u, v, 85.0 * s, 10.0 * s, 35.0 * s, 45.0 * s)] = 45.0     # spleen
            if 0.2 < t < 0.5:
                for side in (-1.0, 1.0):
                    sl[_ellipse(u, v, side * 55.0 * s, 55.0 * s, 22.0 * s, 30.0 * s)] = 35.0  # kidneys
        # aorta (contrast) in front of the spine
        sl[_ellipse(u, v, 12.0 * s, 45.0 * s, 11.0 * s, 11.0 * s)] = 180.0
        # vertebral body + posterior elements ~700 HU
        sl[_ellipse(u, v, 0.0, 75.0 * s, 20.0 * s, 17.0 * s)] = 700.0
        sl[_ellipse(u, v, 0.0, 100.0 * s, 6.0 * s, 15.0 * s)] = 700.0
        # ribs: small bright ellipses on a ring (superior half), pelvis (inferior)
        if t > 0.45:
            for ang in np.linspace(0.25 * np.pi, 1.75 * np.pi, 10):
                cu = (bw - 22.0 * s) * np.sin(ang)
                cv = 5.0 * s + (bh - 22.0 * s) * np.cos(ang)
                sl[_ellipse(u, v, cu, cv, 6.0 * s, 5.0 * s)] = 650.0
        elif t < 0.2:
            for side in (-1.0, 1.0):
                sl[_ellipse(u, v, side * 95.0 * s, 40.0 * s, 30.0 * s, 18.0 * s)] = 750.0
        # noise (tissue only, air gets a little too)
        noise = rng.standard_normal((nx, ny), dtype=np.float32)
        noise *= np.where(sl > -950.0, np.float32(20.0), np.float32(5.0))
        sl += noise
        np.clip(np.rint(sl), -1024, 3071, out=sl)
        vol[:, :, k] = sl.astype(np.int16)

    aff = np.diag([-sx, -sy, sz, 1.0])
    # plausible scanner origin: table centre near x=y=0, patient couch z
    aff[:3, 3] = [sx * (nx - 1) / 2.0, sy * (ny - 1) / 2.0 - 5.0, -600.0]
    img = nib.Nifti1Image(vol, aff)
    img.set_data_dtype(np.int16)
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    img.header['xyzt_units'] = 10  # mm, s
    nib.save(img, out_path)
    print(json.dumps({'written': out_path, 'shape': [nx, ny, nz],
                      'spacing': [sx, sy, sz], 'dtype': 'int16',
                      'affine_ras': aff.tolist()}))
    return 0


# ----------------------------------------------------------------------------
# upsample a real volume
# ----------------------------------------------------------------------------

def upsample(in_path, out_path, factor):
    img = nib.load(in_path)
    data = np.asanyarray(img.dataobj).astype(np.float32, copy=False)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise SystemExit('only 3D volumes are supported, got shape %s' % (data.shape,))
    n_in = np.array(data.shape, dtype=np.float64)
    n_out = np.array([int(round(n * factor)) for n in data.shape])
    zoom = n_out / n_in
    out = ndi.zoom(data, zoom=tuple(zoom), order=1, mode='nearest', grid_mode=True)
    assert tuple(out.shape) == tuple(n_out), (out.shape, n_out)
    out = np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    aff = np.asarray(img.affine, dtype=np.float64)
    ratio = n_in / n_out  # new spacing / old spacing, per axis
    new_aff = aff.copy()
    new_aff[:3, :3] = aff[:3, :3] * ratio[None, :]
    # output voxel 0 centre sits at input index 0.5*ratio - 0.5 (edge aligned)
    c = 0.5 * ratio - 0.5
    new_aff[:3, 3] = aff[:3, :3] @ c + aff[:3, 3]

    hdr = img.header.copy()
    new = nib.Nifti1Image(out, new_aff, header=hdr)
    new.set_data_dtype(np.int16)
    new.header.set_slope_inter(1.0, 0.0)
    sf_code = int(img.header['sform_code']) or 1
    qf_code = int(img.header['qform_code']) or 1
    new.set_sform(new_aff, code=sf_code)
    new.set_qform(new_aff, code=qf_code)
    nib.save(new, out_path)
    print(json.dumps({'written': out_path, 'input_shape': [int(s) for s in data.shape],
                      'shape': [int(s) for s in out.shape],
                      'spacing': _spacing_from_affine(new_aff).tolist(),
                      'affine_ras': new_aff.tolist()}))
    return 0


# ----------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--input', help='NIfTI file to benchmark')
    p.add_argument('--output', help='end to end: write the result here (.nii)')
    p.add_argument('--repeat', type=int, default=1)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--target-spacing-mm', type=float, default=1.0)
    p.add_argument('--make-synthetic-ct', metavar='OUT.nii.gz')
    p.add_argument('--size', type=int, nargs=3, default=[512, 512, 300])
    p.add_argument('--spacing', type=float, nargs=3, default=[0.7, 0.7, 2.5])
    p.add_argument('--upsample', nargs=2, metavar=('INPUT', 'OUT.nii.gz'))
    p.add_argument('--factor', type=float, default=4.0)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.make_synthetic_ct:
        return make_synthetic_ct(args.make_synthetic_ct, args.size, args.spacing)
    if args.upsample:
        return upsample(args.upsample[0], args.upsample[1], args.factor)
    if not args.input:
        sys.stderr.write('need --input, --make-synthetic-ct or --upsample\n')
        return 2
    if args.output:
        return run_end_to_end(args)
    return run_benchmark(args)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
