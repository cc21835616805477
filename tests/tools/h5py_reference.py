#!/usr/bin/env python3
"""h5py's view of HDF5 files, for graft's HDF5 reader tests.

Usage: h5py_reference.py FILE...
       h5py_reference.py --make-userblock FILE   the same sample after a 32 KiB user block that
                                       holds XMP text, as NeXus and beamline writers make them
       h5py_reference.py --make FILE   writes a sample with groups, gzip chunks, a 4D uint16 image with
                                       spacing/origin, int64 and float datasets, and string, vlen-string,
                                       scalar and array attributes
One JSON line per file: {"path": FILE, "attributes": {...}, "datasets": [{"path", "shape", "dtype",
"attributes", "sum", "weighted"}]}. Attribute values are lists for arrays and plain values for
scalars; bytes are decoded as UTF-8; NaN is "nan". For numeric datasets, "sum" is the float64 sum
of the values (NaN skipped) and "weighted" the sum of value * (1 + index % 1009) over C order, so a
value in the wrong place is seen.
"""
import json
import sys

import h5py
import numpy as np


def plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.reshape(-1)]
    if isinstance(value, (np.floating, float)):
        return "nan" if np.isnan(value) else float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, str):
        return value
    return None


def dtype_name(dtype):
    if h5py.check_string_dtype(dtype) is not None and h5py.check_string_dtype(dtype).length is None:
        return "str"
    if dtype.kind == "S":
        return dtype.str.replace("|", "|")
    return dtype.name


def describe(path):
    out = {"path": path, "datasets": []}
    with h5py.File(path, "r") as f:
        out["attributes"] = {k: plain(v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            entry = {"path": "/" + name, "shape": list(obj.shape), "dtype": dtype_name(obj.dtype),
                     "attributes": {}}
            for key in obj.attrs.keys():
                try:
                    entry["attributes"][key] = plain(obj.attrs[key])
                except (TypeError, OSError):
                    entry["attributes"][key] = None  # references and other types h5py cannot give
            if obj.dtype.kind in "iuf" and obj.shape is not None:
                values = obj[()].astype(np.float64).reshape(-1)
                weights = 1 + np.arange(values.size) % 1009
                entry["sum"] = float(np.nansum(values))
                entry["weighted"] = float(np.nansum(values * weights))
            out["datasets"].append(entry)

        f.visititems(visit)
    return out


def make(path, userblock_size=0):
    with h5py.File(path, "w", userblock_size=userblock_size) as f:
        f.attrs["title"] = "graft sample"
        f.attrs["version"] = np.int32(3)
        image = (np.arange(2 * 3 * 4 * 5, dtype=np.uint16) * 7 % 1000).reshape(2, 3, 4, 5)
        d = f.create_dataset("scans/a/image", data=image, chunks=(1, 1, 4, 5), compression="gzip")
        d.attrs["spacing"] = np.array([2.5, 0.5, 0.25])
        d.attrs["origin"] = np.array([10.0, -5.0, 1.0])
        d.attrs["units"] = "mm"
        d.attrs["fixed"] = np.bytes_("abc")
        d.attrs["counts"] = np.array([1, 2, 3], dtype=np.int16)
        d.attrs["nan"] = np.float32("nan")
        wide = f.create_dataset("wide", data=np.arange(-6, 6, dtype=np.int64).reshape(3, 4) * 1000000007)
        wide.attrs["_FillValue"] = np.int64(-1)
        f.create_dataset("plane", data=np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
        f.create_dataset("names", data=np.array([b"x", b"yz"]))


if __name__ == "__main__":
    if sys.argv[1] == "--make":
        make(sys.argv[2])
        sys.exit(0)
    if sys.argv[1] == "--make-userblock":
        make(sys.argv[2], userblock_size=32768)
        with open(sys.argv[2], "r+b") as f:  # the user block is the writer's: h5py leaves it zeroed
            f.write(b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
        sys.exit(0)
    for path in sys.argv[1:]:
        print(json.dumps(describe(path)))
