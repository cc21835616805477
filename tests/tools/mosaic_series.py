#!/usr/bin/env python3
"""Makes a 4D Siemens mosaic series from one real mosaic file, as an fMRI run stores it: one file
per volume, volumes told apart by AcquisitionNumber (no TemporalPositionIdentifier), each volume's
voxels shifted by a known amount so that their order can be checked.

Usage: mosaic_series.py SOURCE FOLDER VOLUMES

Volume k (0-based) gets AcquisitionNumber k + 1, InstanceNumber k + 1, a new SOPInstanceUID, and
pixels = source + 100 * k. Files are written in reverse order of k under shuffled names.
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.uid import generate_uid


def main(source, folder, volumes):
    os.makedirs(folder, exist_ok=True)
    for k in reversed(range(volumes)):
        dataset = pydicom.dcmread(source)
        dataset.decompress() if dataset.file_meta.TransferSyntaxUID.is_compressed else None
        pixels = dataset.pixel_array.astype(np.int32) + 100 * k
        dataset.PixelData = pixels.astype(dataset.pixel_array.dtype).tobytes()
        dataset.AcquisitionNumber = k + 1
        dataset.InstanceNumber = k + 1
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.save_as(os.path.join(folder, f"vol{(7 * k) % volumes:03d}.dcm"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
