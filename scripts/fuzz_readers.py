#!/usr/bin/env python3
"""Mutation fuzzing of graft's readers through the command a user runs.

For each reader (NIfTI, NRRD, NPY, DICOM, GeoTIFF, HDF5) it takes real files as seeds, mutates
them (bit flips and integer fields set to edge values in the header, random bytes, truncation,
repeated chunks), and runs `graft info FILE` and, every fourth file, `graft convert FILE out.nii`
on each. graft should read the file or refuse it with exit code 1 or 2. A sanitizer report, a
signal, or a run over the time limit is a finding: the file and the log are kept in
WORK/findings/, and the line `reader: N runs, M findings` is printed per reader.

Run it through scripts/fuzz_readers.sh, which builds graft with -fsanitize=address,undefined and
caps the sanitizer's allocator at 4 GiB, so a header that makes graft reserve more than the file
could hold is a finding too.

  fuzz_readers.py --graft GRAFT --work DIR --minutes M [--readers nifti,dicom,...] [--seed S]
"""
import argparse
import gzip
import os
import random
import shutil
import struct
import subprocess
import sys
import time

EXPECTED_EXITS = {0, 1, 2}


def seed_files(shared, work):
    """Seeds per reader: real files from ../shared/data, and an NPY written here."""
    def present(paths):
        return [p for p in paths if os.path.isfile(p)]

    nifti_raw = os.path.join(work, "seeds", "ct.nii")
    os.makedirs(os.path.dirname(nifti_raw), exist_ok=True)
    ct = os.path.join(shared, "nifti", "example_ct_sm.nii.gz")
    if os.path.isfile(ct) and not os.path.isfile(nifti_raw):
        with gzip.open(ct, "rb") as source, open(nifti_raw, "wb") as target:
            shutil.copyfileobj(source, target)
    npy = os.path.join(work, "seeds", "volume.npy")
    if not os.path.isfile(npy):
        header = "{'descr': '<i2', 'fortran_order': False, 'shape': (6, 7, 8), }"
        header += " " * (63 - (len(header) + 10) % 64) + "\n"
        with open(npy, "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
            f.write(struct.pack("<336h", *[(i * 37) % 1000 - 500 for i in range(336)]))
    dicom = os.path.join(shared, "dicom")
    ct_slices = sorted(os.listdir(os.path.join(dicom, "ct-j2k-series"))) if os.path.isdir(
        os.path.join(dicom, "ct-j2k-series")) else []
    raster = os.path.join(shared, "geotiff", "rasterio")
    return {
        "nifti": present([nifti_raw, ct, os.path.join(shared, "nifti", "example_seg_mr.nii.gz")]),
        "nrrd": present([os.path.join(shared, "nrrd", "brain1_label.nrrd"),
                         os.path.join(shared, "nrrd", "brain2_image.nrrd")]),
        "npy": [npy],
        "dicom": present([os.path.join(dicom, "transfer-syntaxes", f"{n}.dcm") for n in (1, 2, 3, 4, 5, 7, 9)] +
                         [os.path.join(dicom, "ct-j2k-series", ct_slices[0])] if ct_slices else []),
        "geotiff": present([os.path.join(raster, name) for name in
                            ("RGB.byte.tif", "rgb_lzw.tif", "float_raster_with_nodata.tif", "RGBA.uint16.tif",
                             "rotated.tif", "cogeo.tif")]),
        "hdf5": present([os.path.join(shared, "hdf5", "ABoVE_TVPRM_bbox.nc4"),
                         os.path.join(shared, "hdf5", "f16_ssmis_20200102v7.nc")]),
    }


EDGE_VALUES = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF]


def mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        header = min(len(data), 4096)
        kind = rng.random()
        if kind < 0.35 and header:  # bit flips in the header
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(header)
                data[i] ^= 1 << rng.randrange(8)
        elif kind < 0.65 and header > 8:  # an integer field set to an edge value
            width = rng.choice((2, 4, 8))
            i = rng.randrange(max(1, header - width))
            value = rng.choice(EDGE_VALUES) & ((1 << (8 * width)) - 1)
            data[i:i + width] = value.to_bytes(width, rng.choice(("little", "big")))
        elif kind < 0.8 and data:  # random bytes anywhere
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind < 0.9 and len(data) > 1:  # truncation
            del data[rng.randrange(1, len(data)):]
        elif data:  # a chunk repeated
            i = rng.randrange(len(data))
            chunk = data[i:i + rng.randint(1, 512)]
            j = rng.randrange(len(data))
            data[j:j] = chunk
    return bytes(data)


def run(command, timeout_s):
    try:
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout_s)
        return result.returncode, result.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return "timeout", (e.stderr or b"").decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graft", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--shared", default=os.environ.get("GRAFT_SHARED_DATA", "../shared/data"))
    ap.add_argument("--minutes", type=float, default=10.0, help="per reader")
    ap.add_argument("--readers", default="nifti,nrrd,npy,dicom,geotiff,hdf5")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per graft run")
    args = ap.parse_args()
    os.makedirs(os.path.join(args.work, "findings"), exist_ok=True)
    seeds = seed_files(args.shared, args.work)
    rng = random.Random(args.seed)
    total_findings = 0
    for reader in args.readers.split(","):
        files = seeds.get(reader, [])
        if not files:
            print(f"{reader}: no seed files (is {args.shared} there?)", file=sys.stderr)
            return 2
        contents = [(f, open(f, "rb").read()) for f in files]
        runs = findings = 0
        deadline = time.monotonic() + 60 * args.minutes
        while time.monotonic() < deadline:
            source, data = rng.choice(contents)
            name = os.path.basename(source)
            extension = name[name.index("."):] if "." in name else ""
            case = os.path.join(args.work, f"case-{reader}{extension}")
            with open(case, "wb") as f:
                f.write(mutate(data, rng))
            commands = [[args.graft, "info", case]]
            if runs % 4 == 0:
                commands.append([args.graft, "convert", case, os.path.join(args.work, "out.nii")])
            for command in commands:
                runs += 1
                code, log = run(command, args.timeout)
                if code in EXPECTED_EXITS:
                    continue
                findings += 1
                kept = os.path.join(args.work, "findings", f"{reader}-{runs}{extension}")
                shutil.copy(case, kept)
                with open(kept + ".log", "w") as f:
                    f.write(f"{' '.join(command)}\nexit: {code}\n{log[-20000:]}")
                summary = next((line for line in log.splitlines() if "ERROR" in line or "runtime error" in line), "")
                print(f"{reader}: finding {kept}: exit {code} {summary[:200]}", flush=True)
        total_findings += findings
        print(f"{reader}: {runs} runs, {findings} findings, {args.minutes:g} min", flush=True)
    return 1 if total_findings else 0


if __name__ == "__main__":
    sys.exit(main())
