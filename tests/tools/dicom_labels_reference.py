#!/usr/bin/env python3
"""DICOM SEG and RTSTRUCT written and read by a second, independent implementation (pydicom, NumPy
and scikit-image; no DCMTK), so graft's readers meet files from another writer and graft's
RTSTRUCT meets another rasteriser.

usage:
  dicom_labels_reference.py seg SERIES_DIR MASK OUT.dcm [--fractional] [--labels 1,5,...]
      A SEG of MASK (any NIfTI on the series' voxels, in any voxel order) the way highdicom writes
      one: segment numbers 1..K for the mask's values in increasing order, frames only where a
      segment has voxels, per-frame plane positions, shared orientation and pixel measures.
      --fractional stores PROBABILITY 0..255: 200 inside a segment, 100 on the ring of voxels just
      outside it (so a reader that thresholds anywhere but one half gets a different mask).
      --labels keeps only those mask values (the others become background).
  dicom_labels_reference.py rtstruct SERIES_DIR MASK OUT.dcm
      An RTSTRUCT whose contours are marching squares (skimage.measure.find_contours at 0.5) of
      each label on each slice, the way rt-utils and most Python writers draw them.
  dicom_labels_reference.py rasterize RTSTRUCT SERIES_DIR OUT.npy
      Every ROI rasterised onto the series (skimage.draw.polygon per contour, XOR of the contours
      on a slice), the ROI numbered N as value N; the array is (slices along the normal, rows,
      columns).
"""
import glob
import sys

import nibabel
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from skimage import draw, measure
from scipy import ndimage

SEG_CLASS = '1.2.840.10008.5.1.4.1.1.66.4'
RTSTRUCT_CLASS = '1.2.840.10008.5.1.4.1.1.481.3'


def read_series(folder):
    """The series' slices sorted along the normal, and its index (col, row, slice) -> LPS affine."""
    slices = []
    for path in sorted(glob.glob(folder + '/**/*', recursive=True)):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if 'ImagePositionPatient' in ds:
            slices.append(ds)
    row_dir = np.array(slices[0].ImageOrientationPatient[:3], float)
    col_dir = np.array(slices[0].ImageOrientationPatient[3:], float)
    normal = np.cross(row_dir, col_dir)
    slices.sort(key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))
    first = np.array(slices[0].ImagePositionPatient, float)
    last = np.array(slices[-1].ImagePositionPatient, float)
    step = (last - first) / max(len(slices) - 1, 1)
    spacing_row, spacing_col = (float(v) for v in slices[0].PixelSpacing)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * spacing_col
    affine[:3, 1] = col_dir * spacing_row
    affine[:3, 2] = step if len(slices) > 1 else normal
    affine[:3, 3] = first
    return slices, affine


def mask_on_series(mask_path, slices, affine):
    """The mask's value at every series voxel, as (slice, row, column)."""
    image = nibabel.load(mask_path)
    data = np.asanyarray(image.dataobj)
    ras_from_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    to_mask = np.linalg.inv(image.affine) @ ras_from_lps @ affine
    rows, cols = int(slices[0].Rows), int(slices[0].Columns)
    k, r, c = np.meshgrid(np.arange(len(slices)), np.arange(rows), np.arange(cols), indexing='ij')
    index = np.stack([c.ravel(), r.ravel(), k.ravel(), np.ones(c.size)])
    mask_index = np.rint(to_mask @ index)[:3].astype(int)
    inside = np.all((mask_index >= 0) & (mask_index < np.array(data.shape[:3])[:, None]), axis=0)
    values = np.zeros(c.size, dtype=np.int64)
    values[inside] = data[mask_index[0, inside], mask_index[1, inside], mask_index[2, inside]]
    return values.reshape(len(slices), rows, cols)


def new_file(sop_class, reference):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    for keyword in ('PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyInstanceUID', 'StudyDate',
                    'StudyTime', 'ReferringPhysicianName', 'StudyID', 'AccessionNumber', 'FrameOfReferenceUID'):
        setattr(ds, keyword, getattr(reference, keyword, ''))
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 77
    ds.InstanceNumber = 1
    ds.Manufacturer = 'reference writer'
    return ds


def referenced_series(slices):
    item = Dataset()
    item.SeriesInstanceUID = slices[0].SeriesInstanceUID
    item.ReferencedInstanceSequence = Sequence()
    for s in slices:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = s.SOPClassUID, s.SOPInstanceUID
        item.ReferencedInstanceSequence.append(ref)
    return Sequence([item])


def write_seg(folder, mask_path, out, fractional, keep):
    slices, affine = read_series(folder)
    labels = mask_on_series(mask_path, slices, affine)
    if keep:
        labels[~np.isin(labels, keep)] = 0
    values = [int(v) for v in np.unique(labels) if v > 0]
    ds = new_file(SEG_CLASS, slices[0])
    ds.Modality = 'SEG'
    ds.SeriesDescription = 'reference SEG'
    ds.ContentLabel, ds.ContentDescription, ds.ContentCreatorName = 'REFERENCE', '', ''
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.Rows, ds.Columns = int(slices[0].Rows), int(slices[0].Columns)
    ds.PixelRepresentation, ds.LossyImageCompression = 0, '00'
    ds.ImageType = ['DERIVED', 'PRIMARY']
    if fractional:
        ds.SegmentationType, ds.SegmentationFractionalType, ds.MaximumFractionalValue = 'FRACTIONAL', 'PROBABILITY', 255
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
    else:
        ds.SegmentationType = 'BINARY'
        ds.BitsAllocated = ds.BitsStored = 1
        ds.HighBit = 0
    ds.ReferencedSeriesSequence = referenced_series(slices)
    ds.DimensionOrganizationSequence = Sequence([Dataset()])
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = generate_uid()
    ds.SegmentSequence = Sequence()
    for number, value in enumerate(values, start=1):
        segment = Dataset()
        segment.SegmentNumber = number
        segment.SegmentLabel = 'label %d' % value
        segment.SegmentAlgorithmType = 'MANUAL'
        category, kind = Dataset(), Dataset()
        category.CodeValue, category.CodingSchemeDesignator, category.CodeMeaning = '91723000', 'SCT', 'Anatomical Structure'
        kind.CodeValue, kind.CodingSchemeDesignator, kind.CodeMeaning = '85756007', 'SCT', 'Tissue'
        segment.SegmentedPropertyCategoryCodeSequence = Sequence([category])
        segment.SegmentedPropertyTypeCodeSequence = Sequence([kind])
        ds.SegmentSequence.append(segment)
    shared = Dataset()
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = slices[0].ImageOrientationPatient
    measures.PixelSpacing = slices[0].PixelSpacing
    measures.SliceThickness = np.linalg.norm(affine[:3, 2])
    measures.SpacingBetweenSlices = np.linalg.norm(affine[:3, 2])
    shared.PlaneOrientationSequence = Sequence([orientation])
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence()
    frames = []
    for number, value in enumerate(values, start=1):
        inside = labels == value
        ring = ndimage.binary_dilation(inside, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool)) & ~inside
        for k in range(len(slices)):
            if not inside[k].any():
                continue
            group = Dataset()
            position, identification = Dataset(), Dataset()
            position.ImagePositionPatient = slices[k].ImagePositionPatient
            identification.ReferencedSegmentNumber = number
            group.PlanePositionSequence = Sequence([position])
            group.SegmentIdentificationSequence = Sequence([identification])
            ds.PerFrameFunctionalGroupsSequence.append(group)
            if fractional:
                frames.append((inside[k] * 200 + ring[k] * 100).astype(np.uint8))
            else:
                frames.append(inside[k].astype(np.uint8))
    ds.NumberOfFrames = len(frames)
    stacked = np.stack(frames)
    if fractional:
        ds.PixelData = stacked.tobytes()
    else:
        bits = np.packbits(stacked.ravel(), bitorder='little')
        ds.PixelData = bits.tobytes() + (b'\0' if bits.size % 2 else b'')
    ds.save_as(out, write_like_original=False)


def write_rtstruct(folder, mask_path, out):
    slices, affine = read_series(folder)
    labels = mask_on_series(mask_path, slices, affine)
    values = [int(v) for v in np.unique(labels) if v > 0]
    ds = new_file(RTSTRUCT_CLASS, slices[0])
    ds.Modality = 'RTSTRUCT'
    ds.StructureSetLabel = 'reference'
    ds.StructureSetDate, ds.StructureSetTime, ds.OperatorsName = '20260101', '000000', ''
    frame = Dataset()
    frame.FrameOfReferenceUID = slices[0].FrameOfReferenceUID
    study = Dataset()
    study.ReferencedSOPClassUID = '1.2.840.10008.3.1.2.3.1'
    study.ReferencedSOPInstanceUID = slices[0].StudyInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = slices[0].SeriesInstanceUID
    series.ContourImageSequence = Sequence()
    for s in slices:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = s.SOPClassUID, s.SOPInstanceUID
        series.ContourImageSequence.append(ref)
    study.RTReferencedSeriesSequence = Sequence([series])
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = Sequence(), Sequence(), Sequence()
    for number, value in enumerate(values, start=1):
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, slices[0].FrameOfReferenceUID
        roi.ROIName, roi.ROIGenerationAlgorithm = 'label %d' % value, 'MANUAL'
        ds.StructureSetROISequence.append(roi)
        contours = Dataset()
        contours.ReferencedROINumber, contours.ROIDisplayColor = number, [255, 0, 0]
        contours.ContourSequence = Sequence()
        for k in range(len(slices)):
            plane = np.pad((labels[k] == value).astype(float), 1)
            for line in measure.find_contours(plane, 0.5):
                rows, cols = line[:-1, 0] - 1, line[:-1, 1] - 1  # the first point is not repeated
                if len(rows) < 3:
                    continue
                world = affine @ np.stack([cols, rows, np.full(rows.size, k), np.ones(rows.size)])
                contour = Dataset()
                contour.ContourGeometricType = 'CLOSED_PLANAR'
                contour.NumberOfContourPoints = int(rows.size)
                contour.ContourData = ['%.6g' % v for v in world[:3].T.ravel()]
                contours.ContourSequence.append(contour)
        ds.ROIContourSequence.append(contours)
        observation = Dataset()
        observation.ObservationNumber, observation.ReferencedROINumber = number, number
        observation.RTROIInterpretedType, observation.ROIInterpreter = 'ORGAN', ''
        ds.RTROIObservationsSequence.append(observation)
    ds.save_as(out, write_like_original=False)


def rasterize(rtstruct_path, folder, out):
    slices, affine = read_series(folder)
    to_index = np.linalg.inv(affine)
    rows, cols = int(slices[0].Rows), int(slices[0].Columns)
    volume = np.zeros((len(slices), rows, cols), np.uint16)
    ds = pydicom.dcmread(rtstruct_path)
    for contours in ds.ROIContourSequence:
        value = int(contours.ReferencedROINumber)
        masks = {}
        for contour in getattr(contours, 'ContourSequence', []):
            points = np.array(contour.ContourData, float).reshape(-1, 3)
            index = to_index @ np.vstack([points.T, np.ones(len(points))])
            k = int(round(float(index[2].mean())))
            rr, cc = draw.polygon(index[1], index[0], shape=(rows, cols))
            filled = np.zeros((rows, cols), bool)
            filled[rr, cc] = True
            masks[k] = masks.get(k, np.zeros((rows, cols), bool)) ^ filled
        for k, mask in masks.items():
            volume[k][mask] = value
    np.save(out, volume)


if __name__ == '__main__':
    command = sys.argv[1]
    if command == 'seg':
        keep = [int(v) for v in sys.argv[sys.argv.index('--labels') + 1].split(',')] if '--labels' in sys.argv else []
        write_seg(sys.argv[2], sys.argv[3], sys.argv[4], '--fractional' in sys.argv, keep)
    elif command == 'rtstruct':
        write_rtstruct(sys.argv[2], sys.argv[3], sys.argv[4])
    elif command == 'rasterize':
        rasterize(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
