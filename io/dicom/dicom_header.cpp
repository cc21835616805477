// Reading one file's header into per-frame records, including the functional groups of
// multi-frame objects and Siemens mosaics, and rejecting headers graft cannot assemble.
#include "io/dicom/dicom_header.h"
#include "io/dicom/dicom_series.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "io/dicom/dicom_csa.h"
#include "io/dicom/dicom_tags.h"
#include "io/error.h"

namespace graft::io::dicom_detail {

namespace {

// Siemens stores the CSA image header in a private block whose creator names it.
CsaHeader read_csa_image_header(DcmItem* dataset, const std::string& file) {
  for (Uint16 block = 0x10; block <= 0xFF; ++block) {
    if (get_string(dataset, DcmTagKey(0x0029, block)) != "SIEMENS CSA HEADER") continue;
    const Uint8* bytes = nullptr;
    unsigned long count = 0;
    const DcmTagKey image_header(0x0029, static_cast<Uint16>((block << 8) | 0x10));
    if (dataset->findAndGetUint8Array(image_header, bytes, &count).good() && bytes && count > 0) {
      return parse_csa_header(bytes, count, file);
    }
  }
  return {};
}

void read_mosaic(DcmItem* dataset, DicomFrameHeader& header) {
  OFString full_type;
  dataset->findAndGetOFStringArray(DCM_ImageType, full_type);
  if (std::string(full_type.c_str()).find("MOSAIC") == std::string::npos) return;
  const CsaHeader csa = read_csa_image_header(dataset, header.file);
  const auto tiles = csa_numbers(csa, "NumberOfImagesInMosaic");
  if (!tiles.empty() && tiles[0] > 0) {
    header.mosaic_tiles = static_cast<int>(tiles[0]);
  } else {
    header.mosaic_tiles = get_int(dataset, DcmTagKey(0x0019, 0x100a));  // Siemens private copy
  }
  if (header.mosaic_tiles <= 0) {
    throw Error(header.file + ": ImageType says MOSAIC but neither the CSA header's " +
                "NumberOfImagesInMosaic nor (0019,100A) gives the number of images");
  }
  const auto normal = csa_numbers(csa, "SliceNormalVector");
  if (normal.size() == 3) {
    header.mosaic_normal = {normal[0], normal[1], normal[2]};
    header.has_mosaic_normal = norm(header.mosaic_normal) > 0.5;
  }
}

// Reads what every frame shares from the top level of the dataset.
DicomFrameHeader read_common_header(DcmFileFormat& file_format, const std::string& file) {
  DcmDataset* dataset = file_format.getDataset();
  DicomFrameHeader h;
  h.file = file;
  h.series_instance_uid = get_string(dataset, DCM_SeriesInstanceUID);
  h.study_instance_uid = get_string(dataset, DCM_StudyInstanceUID);
  h.frame_of_reference_uid = get_string(dataset, DCM_FrameOfReferenceUID);
  h.modality = get_string(dataset, DCM_Modality);
  h.series_description = get_string(dataset, DCM_SeriesDescription);
  h.series_number = get_int(dataset, DCM_SeriesNumber);
  h.sop_class_uid = get_string(dataset, DCM_SOPClassUID);
  h.sop_instance_uid = get_string(dataset, DCM_SOPInstanceUID);
  // De-identification tools sometimes empty these; the file meta header keeps a copy.
  if (h.sop_class_uid.empty())
    h.sop_class_uid = get_string(file_format.getMetaInfo(), DCM_MediaStorageSOPClassUID);
  if (h.sop_instance_uid.empty()) {
    h.sop_instance_uid = get_string(file_format.getMetaInfo(), DCM_MediaStorageSOPInstanceUID);
  }
  h.transfer_syntax_uid = DcmXfer(dataset->getOriginalXfer()).getXferID();
  DcmElement* pixel_data = nullptr;
  if (dataset->findAndGetElement(DCM_PixelData, pixel_data).good() && pixel_data) {
    h.pixel_data_bytes = pixel_data->getLength();
  }
  h.rows = get_int(dataset, DCM_Rows);
  h.columns = get_int(dataset, DCM_Columns);
  h.samples_per_pixel = get_int(dataset, DCM_SamplesPerPixel, 1);
  h.bits_allocated = get_int(dataset, DCM_BitsAllocated, 16);
  h.bits_stored = get_int(dataset, DCM_BitsStored, h.bits_allocated);
  h.pixel_representation = get_int(dataset, DCM_PixelRepresentation, 0);
  h.planar_configuration = get_int(dataset, DCM_PlanarConfiguration, 0);
  const std::string photometric = get_string(dataset, DCM_PhotometricInterpretation);
  if (!photometric.empty()) h.photometric = photometric;
  h.has_position = get_doubles(dataset, DCM_ImagePositionPatient, h.position_lps);
  h.has_orientation = get_doubles(dataset, DCM_ImageOrientationPatient, h.orientation);
  std::array<double, 2> spacing{};
  h.has_pixel_spacing = get_doubles(dataset, DCM_PixelSpacing, spacing) ||
                        get_doubles(dataset, DCM_ImagerPixelSpacing, spacing);
  if (h.has_pixel_spacing) {
    h.row_spacing_mm = spacing[0];
    h.column_spacing_mm = spacing[1];
  }
  get_double(dataset, DCM_SliceThickness, h.slice_thickness_mm);
  get_double(dataset, DCM_SpacingBetweenSlices, h.spacing_between_slices_mm);
  get_double(dataset, DCM_RescaleSlope, h.rescale_slope);
  get_double(dataset, DCM_RescaleIntercept, h.rescale_intercept);
  h.echo = get_string(dataset, DCM_EchoNumbers);
  h.temporal_position = get_int(dataset, DCM_TemporalPositionIdentifier);
  get_double(dataset, DCM_TriggerTime, h.trigger_time_ms);
  h.acquisition_number = get_int(dataset, DCM_AcquisitionNumber);
  h.instance_number = get_int(dataset, DCM_InstanceNumber);
  read_mosaic(dataset, h);
  return h;
}

void check_frame_header(const DicomFrameHeader& h) {
  // A SEG's bit-packed or fractional frames are read by DCMTK's dcmseg (read_dicom_seg), not as
  // pixels.
  if (h.sop_class_uid == kSegmentationStorageUid) return;
  const std::string where =
      h.file + (h.multi_frame ? " frame " + std::to_string(h.frame_index + 1) : "");
  if (h.rows <= 0 || h.columns <= 0) {
    throw Error(where + ": Rows/Columns missing or zero (" + std::to_string(h.rows) + "x" +
                std::to_string(h.columns) + ")");
  }
  if (h.bits_allocated != 8 && h.bits_allocated != 16 && h.bits_allocated != 32) {
    throw Error(where + ": BitsAllocated " + std::to_string(h.bits_allocated) +
                " is not supported (8, 16 or 32)");
  }
  if (h.bits_stored <= 0 || h.bits_stored > h.bits_allocated) {
    throw Error(where + ": BitsStored " + std::to_string(h.bits_stored) +
                " does not fit BitsAllocated " + std::to_string(h.bits_allocated));
  }
  if (h.samples_per_pixel != 1 && h.samples_per_pixel != 3) {
    throw Error(where + ": SamplesPerPixel " + std::to_string(h.samples_per_pixel) +
                " is not 1 or 3");
  }
  if (h.has_pixel_spacing && !(h.row_spacing_mm > 0 && h.column_spacing_mm > 0)) {
    throw Error(where + ": PixelSpacing must be positive, got " + std::to_string(h.row_spacing_mm) +
                "\\" + std::to_string(h.column_spacing_mm));
  }
  if (h.has_orientation) {
    const Vec3 r = row_direction(h), c = column_direction(h);
    if (std::abs(norm(r) - 1) > 1e-2 || std::abs(norm(c) - 1) > 1e-2 ||
        std::abs(dot(r, c)) > 1e-2) {
      throw Error(where + ": ImageOrientationPatient is not two orthogonal unit vectors");
    }
  }
  if (h.mosaic_tiles > 0) {
    const auto per_side = static_cast<std::int64_t>(std::ceil(std::sqrt(h.mosaic_tiles)));
    if (h.rows % per_side != 0 || h.columns % per_side != 0) {
      throw Error(where + ": a mosaic of " + std::to_string(h.mosaic_tiles) +
                  " images does not tile " + std::to_string(h.rows) + "x" +
                  std::to_string(h.columns));
    }
  }
}

}  // namespace

std::vector<DicomFrameHeader> read_frame_headers(DcmFileFormat& file_format,
                                                 const std::string& file) {
  DcmDataset* dataset = file_format.getDataset();
  const DicomFrameHeader common = read_common_header(file_format, file);
  const int frame_count = std::max(1, get_int(dataset, DCM_NumberOfFrames, 1));
  std::vector<DicomFrameHeader> frames;
  if (frame_count == 1 && !dataset->tagExists(DCM_PerFrameFunctionalGroupsSequence)) {
    frames.push_back(common);
    check_frame_header(frames.back());
    return frames;
  }
  DcmItem* shared = nullptr;
  dataset->findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
  DcmSequenceOfItems* per_frame_sequence = nullptr;
  dataset->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame_sequence);
  std::vector<double> grid_offsets_mm;
  for (unsigned long i = 0; i < static_cast<unsigned long>(frame_count); ++i) {
    double offset = 0;
    if (!get_double(dataset, DCM_GridFrameOffsetVector, offset, i)) break;
    grid_offsets_mm.push_back(offset);
  }
  for (int frame = 0; frame < frame_count; ++frame) {
    DicomFrameHeader h = common;
    h.frame_index = frame;
    h.multi_frame = true;
    DcmItem* own = nullptr;
    if (per_frame_sequence && frame < static_cast<int>(per_frame_sequence->card())) {
      own = per_frame_sequence->getItem(static_cast<unsigned long>(frame));
    }
    if (own || shared) {
      if (DcmItem* plane = functional_group(own, shared, DCM_PlanePositionSequence)) {
        h.has_position = get_doubles(plane, DCM_ImagePositionPatient, h.position_lps);
      }
      if (DcmItem* plane = functional_group(own, shared, DCM_PlaneOrientationSequence)) {
        h.has_orientation = get_doubles(plane, DCM_ImageOrientationPatient, h.orientation);
      }
      if (DcmItem* measures = functional_group(own, shared, DCM_PixelMeasuresSequence)) {
        std::array<double, 2> spacing{};
        if (get_doubles(measures, DCM_PixelSpacing, spacing)) {
          h.has_pixel_spacing = true;
          h.row_spacing_mm = spacing[0];
          h.column_spacing_mm = spacing[1];
        }
        get_double(measures, DCM_SliceThickness, h.slice_thickness_mm);
        get_double(measures, DCM_SpacingBetweenSlices, h.spacing_between_slices_mm);
      }
      if (DcmItem* transform =
              functional_group(own, shared, DCM_PixelValueTransformationSequence)) {
        get_double(transform, DCM_RescaleSlope, h.rescale_slope);
        get_double(transform, DCM_RescaleIntercept, h.rescale_intercept);
      }
      if (DcmItem* content = functional_group(own, shared, DCM_FrameContentSequence)) {
        h.temporal_position = get_int(content, DCM_TemporalPositionIndex, h.temporal_position);
      }
      if (DcmItem* echo = functional_group(own, shared, DCM_MREchoSequence)) {
        const std::string echo_time = get_string(echo, DCM_EffectiveEchoTime);
        if (!echo_time.empty()) h.echo = echo_time;
      }
      if (DcmItem* timing = functional_group(own, shared, DCM_CardiacSynchronizationSequence)) {
        get_double(timing, DCM_NominalCardiacTriggerDelayTime, h.trigger_time_ms);
      }
    }
    if (static_cast<int>(grid_offsets_mm.size()) == frame_count && common.has_position &&
        common.has_orientation) {
      // Relative offsets start at 0; absolute ones give the z of each plane, so measure from
      // the first either way.
      const Vec3 normal = cross(row_direction(common), column_direction(common));
      h.position_lps =
          plus(common.position_lps, scaled(normal, grid_offsets_mm[frame] - grid_offsets_mm[0]));
    } else if (!own && !shared && frame > 0) {
      h.has_position = false;  // the top-level position describes the first frame only
    }
    check_frame_header(h);
    frames.push_back(std::move(h));
  }
  return frames;
}

bool has_pixel_data(DcmDataset* dataset) {
  return dataset->tagExists(DCM_PixelData) || dataset->tagExists(DCM_FloatPixelData) ||
         dataset->tagExists(DCM_DoubleFloatPixelData);
}

void load_file(DcmFileFormat& file_format, const std::string& path, bool headers_only) {
  // With a small read limit, DCMTK leaves large values (the pixels) in the file until asked, and
  // then opens the file again for each one; without a limit it reads every value in one pass.
  const Uint32 max_read_length = headers_only ? DCM_MaxReadLength : std::numeric_limits<Uint32>::max();
  const OFCondition status =
      file_format.loadFile(OFFilename(path.c_str()), EXS_Unknown, EGL_noChange, max_read_length);
  if (status.bad()) {
    throw Error(path + ": not readable as DICOM (" + status.text() + ")");
  }
}

}  // namespace graft::io::dicom_detail
