#!/usr/bin/env python3
"""Makes a test copy of an enhanced (multi-frame) DICOM file: every frame gets a known pixel
pattern, and the frames are stored out of spatial order (with their per-frame functional groups),
so a reader must place each frame by its own PlanePositionSequence.

Usage: enhanced_frames.py SOURCE DESTINATION

The source's pixels may be blank (nibabel's test copy of a Philips Enhanced MR is); the pattern
value(frame, row, column) = (37 * frame + 5 * row + 3 * column) % 2000, frame counted in the
source's order, makes every frame distinct.
"""
import sys

import numpy as np
import pydicom


def main(source, destination):
    dataset = pydicom.dcmread(source)
    frames = int(dataset.NumberOfFrames)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    frame, row, column = np.meshgrid(np.arange(frames), np.arange(rows), np.arange(columns), indexing="ij")
    pixels = ((37 * frame + 5 * row + 3 * column) % 2000).astype(np.uint16)
    # Odd frames first, then even ones: no reader can rely on storage order.
    order = list(range(1, frames, 2)) + list(range(0, frames, 2))
    groups = dataset.PerFrameFunctionalGroupsSequence
    dataset.PerFrameFunctionalGroupsSequence = pydicom.Sequence([groups[i] for i in order])
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.PixelData = np.ascontiguousarray(pixels[order]).tobytes()
    dataset.save_as(destination)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
