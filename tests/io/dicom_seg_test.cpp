#include "io/dicom/dicom_seg.h"

#include <gtest/gtest.h>

// DCMTK's configuration header must come before any other DCMTK header.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/dicom/dicom_anonymize.h"
#include "io/error.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

// One 128x128 CT slice shipped with Debian's python3-pydicom. The multi-slice series below is
// built from it, so the tests need no DICOM reader of graft's own.
const char* const kCtSmall = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";

#define GRAFT_REQUIRE_CT_SMALL()                                                     \
  do {                                                                               \
    if (!graft::testing::file_exists(kCtSmall))                                      \
      GTEST_SKIP() << kCtSmall << " is absent (Debian python3-pydicom provides it)"; \
  } while (0)

std::string fresh_uid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

std::string string_of(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  item.findAndGetOFStringArray(tag, value);
  return value.c_str();
}

struct SourceSeries {
  DicomVolumeSource source;
  Geometry geometry;
  std::string patient_id;
};

Vec3 normalized(const Vec3& v) {
  const double length = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  return {v[0] / length, v[1] / length, v[2] / length};
}

std::string decimal_triplet(const Vec3& v) {
  char text[128];
  std::snprintf(text, sizeof(text), "%.10g\\%.10g\\%.10g", v[0], v[1], v[2]);
  return text;
}

// An oblique series of `slice_count` copies of CT_small with their own SOP Instance UIDs, one new
// Series Instance UID, anisotropic pixels (0.5 mm columns, 0.7 mm rows), 2.5 mm slices, and
// identifying attributes the anonymizer must remove. Slices go along +normal, as graft's DICOM
// reader orders them.
SourceSeries write_oblique_series(const std::string& folder, int slice_count) {
  SourceSeries series;
  const Vec3 row = normalized({1.0, 0.2, 0.1});
  const Vec3 column_guess{0.0, 1.0, 0.3};
  const double along_row =
      column_guess[0] * row[0] + column_guess[1] * row[1] + column_guess[2] * row[2];
  const Vec3 column =
      normalized({column_guess[0] - along_row * row[0], column_guess[1] - along_row * row[1],
                  column_guess[2] - along_row * row[2]});
  const Vec3 normal{row[1] * column[2] - row[2] * column[1],
                    row[2] * column[0] - row[0] * column[2],
                    row[0] * column[1] - row[1] * column[0]};
  const double slice_spacing_mm = 2.5;
  Geometry& grid = series.geometry;
  grid.size_xyz = {128, 128, slice_count};
  grid.spacing_xyz = {0.5, 0.7, slice_spacing_mm};
  grid.origin_world = {-100.0, -120.0, 40.0};
  for (int r = 0; r < 3; ++r) {
    grid.direction[r][0] = row[r];
    grid.direction[r][1] = column[r];
    grid.direction[r][2] = normal[r];
  }

  DcmFileFormat file;
  EXPECT_TRUE(file.loadFile(kCtSmall).good());
  DcmDataset& dataset = *file.getDataset();
  series.source.study_instance_uid = string_of(dataset, DCM_StudyInstanceUID);
  series.source.series_instance_uid = fresh_uid();
  series.source.frame_of_reference_uid = string_of(dataset, DCM_FrameOfReferenceUID);
  series.source.modality = "CT";
  series.source.geometry = grid;
  series.patient_id = string_of(dataset, DCM_PatientID);
  dataset.putAndInsertString(DCM_SeriesInstanceUID, series.source.series_instance_uid.c_str());
  dataset.putAndInsertString(DCM_PatientBirthDate, "19700101");
  dataset.putAndInsertString(DCM_AccessionNumber, "ACC-12345");
  dataset.putAndInsertString(DCM_RETIRED_OtherPatientIDs, "OTHER-ID-1");
  dataset.putAndInsertString(DCM_PixelSpacing, "0.7\\0.5");  // row spacing \ column spacing
  const std::string orientation = decimal_triplet(row) + "\\" + decimal_triplet(column);
  dataset.putAndInsertString(DCM_ImageOrientationPatient, orientation.c_str());
  for (int z = 0; z < slice_count; ++z) {
    DicomSliceSource slice;
    slice.file = folder + "/slice_" + std::to_string(z) + ".dcm";
    slice.sop_class_uid = UID_CTImageStorage;
    slice.sop_instance_uid = fresh_uid();
    const Vec3 position = grid.index_to_world({0.0, 0.0, static_cast<double>(z)});
    dataset.putAndInsertString(DCM_SOPInstanceUID, slice.sop_instance_uid.c_str());
    dataset.putAndInsertString(DCM_InstanceNumber, std::to_string(z + 1).c_str());
    dataset.putAndInsertString(DCM_ImagePositionPatient, decimal_triplet(position).c_str());
    EXPECT_TRUE(file.saveFile(slice.file.c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength,
                              EGL_recalcGL, EPD_noChange, 0, 0, EWM_updateMeta)
                    .good());
    series.source.slices.push_back(slice);
  }
  return series;
}

// Two overlapping-free boxes: "liver" (label 3) on slices 0-2, "lesion" (label 7) on slices 1-2.
// The last slice holds no label, so the SEG's extent rule (segment 1 keeps the end slices) is
// exercised.
Image two_segment_labels(const Geometry& grid) {
  Image labels(DType::kI16, 1, grid);
  std::int16_t* voxels = labels.data<std::int16_t>();
  for (std::int64_t z = 0; z < grid.size_xyz[2]; ++z) {
    for (std::int64_t y = 0; y < grid.size_xyz[1]; ++y) {
      for (std::int64_t x = 0; x < grid.size_xyz[0]; ++x) {
        std::int16_t value = 0;
        if (z <= 2 && x >= 10 && x < 60 && y >= 20 && y < 50) value = 3;
        if (z >= 1 && z <= 2 && x >= 70 && x < 90 && y >= 5 && y < 100) value = 7;
        if (grid.size_xyz[2] == 1 && x >= 70 && x < 90 && y >= 5 && y < 100) value = 7;
        voxels[labels.offset(0, z, y, x)] = value;
      }
    }
  }
  return labels;
}

const std::vector<DicomSegment> kSegments = {{3, "liver", "whole organ"}, {7, "lesion", ""}};

// Frames graft writes: one per (segment, slice) holding a voxel, plus segment 1 on the first and
// last slice.
struct ExpectedFrame {
  int segment_number;
  std::int64_t z;
  std::int64_t voxel_count;
};
std::vector<ExpectedFrame> expected_frames(const Image& labels) {
  std::vector<ExpectedFrame> frames;
  const auto& n = labels.geometry().size_xyz;
  for (std::int64_t z = 0; z < n[2]; ++z) {
    for (std::size_t s = 0; s < kSegments.size(); ++s) {
      std::int64_t count = 0;
      for (std::int64_t i = 0; i < n[0] * n[1]; ++i) {
        count += labels.value_at(z * n[0] * n[1] + i) == kSegments[s].label_value;
      }
      if (count > 0 || (s == 0 && (z == 0 || z == n[2] - 1))) {
        frames.push_back({static_cast<int>(s) + 1, z, count});
      }
    }
  }
  return frames;
}

void expect_same_geometry(const Geometry& actual, const Geometry& expected) {
  EXPECT_EQ(actual.size_xyz, expected.size_xyz);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(actual.spacing_xyz[i], expected.spacing_xyz[i], 1e-4) << "spacing " << i;
    EXPECT_NEAR(actual.origin_world[i], expected.origin_world[i], 1e-4) << "origin " << i;
    for (int j = 0; j < 3; ++j) {
      EXPECT_NEAR(actual.direction[i][j], expected.direction[i][j], 1e-4) << "direction " << i << j;
    }
  }
}

void expect_same_voxels(const Image& actual, const Image& expected) {
  ASSERT_EQ(actual.element_count(), expected.element_count());
  std::int64_t differing = 0;
  for (std::int64_t i = 0; i < expected.element_count(); ++i) {
    differing += actual.value_at(i) != expected.value_at(i);
  }
  EXPECT_EQ(differing, 0);
}

TEST(DicomSeg, MultiSliceObliqueSeriesRoundTripsVoxelsAndGeometry) {
  GRAFT_REQUIRE_CT_SMALL();
  const std::string folder = graft::testing::temp_dir();
  const SourceSeries series = write_oblique_series(folder, 4);
  const Image labels = two_segment_labels(series.geometry);
  const std::string output = folder + "/seg.dcm";
  write_dicom_seg(labels, series.source, kSegments, output, DicomSegOptions{});

  const DicomSegContents read_back = read_dicom_seg(output);
  expect_same_geometry(read_back.labels.geometry(), series.geometry);
  expect_same_voxels(read_back.labels, labels);
  EXPECT_EQ(read_back.labels.dtype(), DType::kU8);
  ASSERT_EQ(read_back.segments.size(), 2u);
  EXPECT_EQ(read_back.segments[0].label_value, 3);
  EXPECT_EQ(read_back.segments[0].label, "liver");
  EXPECT_EQ(read_back.segments[0].description, "whole organ");
  EXPECT_EQ(read_back.segments[1].label_value, 7);
  EXPECT_EQ(read_back.segments[1].label, "lesion");
  EXPECT_EQ(read_back.referenced_series_instance_uid, series.source.series_instance_uid);
}

TEST(DicomSeg, SingleSliceSourceRoundTrips) {
  GRAFT_REQUIRE_CT_SMALL();
  // CT_small's own header: 128x128, 0.661468 mm pixels, 5 mm slice, axial at this position.
  DicomVolumeSource source;
  source.study_instance_uid = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
  source.series_instance_uid = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322";
  source.frame_of_reference_uid = "1.3.6.1.4.1.5962.1.4.1.1.20040119072730.12322";
  source.modality = "CT";
  source.slices.push_back(
      {kCtSmall, UID_CTImageStorage, "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322", 0});
  Geometry grid;
  grid.size_xyz = {128, 128, 1};
  grid.spacing_xyz = {0.661468, 0.661468, 5.0};
  grid.origin_world = {-158.135803, -179.035797, -75.699997};
  source.geometry = grid;
  const Image labels = two_segment_labels(grid);
  const std::string output = graft::testing::temp_dir() + "/seg.dcm";
  write_dicom_seg(labels, source, kSegments, output, DicomSegOptions{});

  const DicomSegContents read_back = read_dicom_seg(output);
  expect_same_geometry(read_back.labels.geometry(), grid);
  expect_same_voxels(read_back.labels, labels);
  EXPECT_EQ(read_back.referenced_series_instance_uid, source.series_instance_uid);
}

TEST(DicomSeg, DcmtkLoadsSegmentsWithLabels) {
  GRAFT_REQUIRE_CT_SMALL();
  const std::string folder = graft::testing::temp_dir();
  const SourceSeries series = write_oblique_series(folder, 4);
  const Image labels = two_segment_labels(series.geometry);
  const std::string output = folder + "/seg.dcm";
  write_dicom_seg(labels, series.source, kSegments, output, DicomSegOptions{});

  DcmSegmentation* loaded = nullptr;
  const OFCondition status = DcmSegmentation::loadFile(output.c_str(), loaded);
  std::unique_ptr<DcmSegmentation> seg(loaded);
  ASSERT_TRUE(status.good()) << status.text();
  ASSERT_EQ(seg->getNumberOfSegments(), 2u);
  OFString label;
  seg->getSegment(1)->getSegmentLabel(label);
  EXPECT_EQ(std::string(label.c_str()), "liver");
  seg->getSegment(2)->getSegmentLabel(label);
  EXPECT_EQ(std::string(label.c_str()), "lesion");
  EXPECT_EQ(seg->getNumberOfFrames(), expected_frames(labels).size());
  OFString modality;
  seg->getModality(modality);
  EXPECT_EQ(std::string(modality.c_str()), "SEG");
}

// What pydicom sees: the structure other tools (highdicom, Slicer, OHIF) rely on.
const char* const kPydicomSummary = R"(
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
frames = []
for i, f in enumerate(ds.PerFrameFunctionalGroupsSequence):
    frames.append({
        'position': [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient],
        'segment': int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
        'source_sop': str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID),
        'set_pixels': int(pixels[i].sum()),
    })
print(json.dumps({
    'modality': ds.Modality,
    'number_of_frames': int(ds.NumberOfFrames),
    'labels': [str(s.SegmentLabel) for s in ds.SegmentSequence],
    'referenced_series': str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID),
    'referenced_instances': [str(i.ReferencedSOPInstanceUID)
                             for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence],
    'frame_of_reference': str(ds.FrameOfReferenceUID),
    'frames': frames}))
)";

TEST(DicomSeg, PydicomReadsStructurePositionsAndSourceReferences) {
  GRAFT_REQUIRE_CT_SMALL();
  const std::string python = graft::testing::python_with("pydicom");
  if (python.empty())
    GTEST_SKIP() << "/usr/bin/python3 with pydicom (Debian python3-pydicom) is absent";
  const std::string folder = graft::testing::temp_dir();
  const SourceSeries series = write_oblique_series(folder, 4);
  const Image labels = two_segment_labels(series.geometry);
  const std::string output = folder + "/seg.dcm";
  write_dicom_seg(labels, series.source, kSegments, output, DicomSegOptions{});

  const std::string script = folder + "/summary.py";
  std::ofstream(script) << kPydicomSummary;
  std::string text;
  ASSERT_EQ(
      graft::testing::run_command(python + " " + script + " " + output + " 2>/dev/null", &text), 0)
      << text;
  const auto summary = nlohmann::json::parse(text);
  EXPECT_EQ(summary["modality"], "SEG");
  const std::vector<ExpectedFrame> expected = expected_frames(labels);
  ASSERT_EQ(summary["number_of_frames"].get<std::size_t>(), expected.size());
  EXPECT_EQ(summary["labels"], nlohmann::json({"liver", "lesion"}));
  EXPECT_EQ(summary["referenced_series"], series.source.series_instance_uid);
  EXPECT_EQ(summary["frame_of_reference"], series.source.frame_of_reference_uid);
  std::set<std::string> referenced;
  for (const auto& uid : summary["referenced_instances"]) referenced.insert(uid.get<std::string>());
  std::set<std::string> source_instances;
  for (const auto& slice : series.source.slices) source_instances.insert(slice.sop_instance_uid);
  EXPECT_EQ(referenced, source_instances);

  const auto& frames = summary["frames"];
  for (std::size_t f = 0; f < expected.size(); ++f) {
    SCOPED_TRACE("frame " + std::to_string(f + 1));
    const Vec3 corner =
        series.geometry.index_to_world({0.0, 0.0, static_cast<double>(expected[f].z)});
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(frames[f]["position"][i].get<double>(), corner[i], 1e-4);
    EXPECT_EQ(frames[f]["segment"].get<int>(), expected[f].segment_number);
    EXPECT_EQ(frames[f]["source_sop"], series.source.slices[expected[f].z].sop_instance_uid);
    EXPECT_EQ(frames[f]["set_pixels"].get<std::int64_t>(), expected[f].voxel_count);
  }
}

TEST(DicomSeg, ReferencesEachFrameOfMultiFrameSource) {
  GRAFT_REQUIRE_CT_SMALL();
  const std::string folder = graft::testing::temp_dir();
  SourceSeries series = write_oblique_series(folder, 4);
  // As an enhanced (multi-frame) CT would be assembled: every slice is a frame of one instance.
  const std::string instance_uid = series.source.slices.front().sop_instance_uid;
  for (std::size_t z = 0; z < series.source.slices.size(); ++z) {
    series.source.slices[z].sop_class_uid = UID_EnhancedCTImageStorage;
    series.source.slices[z].sop_instance_uid = instance_uid;
    series.source.slices[z].frame_number = static_cast<int>(z) + 1;
  }
  const Image labels = two_segment_labels(series.geometry);
  const std::string output = folder + "/seg.dcm";
  write_dicom_seg(labels, series.source, kSegments, output, DicomSegOptions{});

  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(output.c_str()).good());
  DcmDataset& seg = *file.getDataset();
  DcmItem* referenced_series = nullptr;
  ASSERT_TRUE(
      seg.findAndGetSequenceItem(DCM_ReferencedSeriesSequence, referenced_series, 0).good());
  DcmSequenceOfItems* instances = nullptr;
  ASSERT_TRUE(
      referenced_series->findAndGetSequence(DCM_ReferencedInstanceSequence, instances).good());
  EXPECT_EQ(instances->card(), 1u);
  const std::vector<ExpectedFrame> expected = expected_frames(labels);
  DcmItem* frame = nullptr;
  for (std::size_t f = 0; f < expected.size(); ++f) {
    ASSERT_TRUE(seg.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame,
                                           static_cast<long>(f))
                    .good());
    DcmItem* derivation = nullptr;
    DcmItem* source_image = nullptr;
    ASSERT_TRUE(frame->findAndGetSequenceItem(DCM_DerivationImageSequence, derivation, 0).good());
    ASSERT_TRUE(
        derivation->findAndGetSequenceItem(DCM_SourceImageSequence, source_image, 0).good());
    EXPECT_EQ(string_of(*source_image, DCM_ReferencedSOPInstanceUID), instance_uid);
    EXPECT_EQ(string_of(*source_image, DCM_ReferencedFrameNumber),
              std::to_string(expected[f].z + 1))
        << "frame " << f + 1;
  }
}

bool has_private_element(DcmItem& item) {
  for (unsigned long i = 0; i < item.card(); ++i) {
    DcmElement* element = item.getElement(i);
    if (element->getTag().isPrivate()) return true;
    if (element->ident() == EVR_SQ) {
      auto* sequence = static_cast<DcmSequenceOfItems*>(element);
      for (unsigned long n = 0; n < sequence->card(); ++n) {
        if (has_private_element(*sequence->getItem(n))) return true;
      }
    }
  }
  return false;
}

TEST(DicomSeg, CarriesSourcePatientFieldsUnlessAnonymized) {
  GRAFT_REQUIRE_CT_SMALL();
  const std::string folder = graft::testing::temp_dir();
  const SourceSeries series = write_oblique_series(folder, 4);
  const Image labels = two_segment_labels(series.geometry);
  const std::string plain_output = folder + "/plain.dcm";
  write_dicom_seg(labels, series.source, kSegments, plain_output, DicomSegOptions{});
  DcmFileFormat plain;
  ASSERT_TRUE(plain.loadFile(plain_output.c_str()).good());
  // Without anonymize the SEG belongs to the source's patient and study, as the standard requires.
  EXPECT_EQ(string_of(*plain.getDataset(), DCM_PatientBirthDate), "19700101");
  EXPECT_EQ(string_of(*plain.getDataset(), DCM_AccessionNumber), "ACC-12345");
  EXPECT_EQ(string_of(*plain.getDataset(), DCM_StudyInstanceUID), series.source.study_instance_uid);

  DicomUidMap uid_map;
  DicomSegOptions options;
  options.anonymize = true;
  options.uid_map = &uid_map;
  const std::string output = folder + "/anonymous.dcm";
  write_dicom_seg(labels, series.source, kSegments, output, options);
  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile(output.c_str()).good());
  DcmDataset& seg = *file.getDataset();
  EXPECT_EQ(string_of(seg, DCM_PatientName), "ANONYMOUS^");
  EXPECT_EQ(string_of(seg, DCM_PatientID).rfind("ANONYMOUS-", 0), 0u);
  EXPECT_NE(string_of(seg, DCM_PatientID), series.patient_id);
  EXPECT_EQ(string_of(seg, DCM_PatientBirthDate), "");
  EXPECT_EQ(string_of(seg, DCM_AccessionNumber), "");
  EXPECT_FALSE(seg.tagExists(DCM_RETIRED_OtherPatientIDs, OFTrue));
  EXPECT_FALSE(seg.tagExists(DCM_OtherPatientIDsSequence, OFTrue));
  EXPECT_FALSE(has_private_element(seg));
  EXPECT_EQ(string_of(seg, DCM_PatientIdentityRemoved), "YES");
  EXPECT_FALSE(string_of(seg, DCM_DeidentificationMethod).empty());

  // New UIDs, and every reference still agrees with the map the source would be anonymized with.
  const std::string study = string_of(seg, DCM_StudyInstanceUID);
  EXPECT_NE(study, series.source.study_instance_uid);
  EXPECT_EQ(study, uid_map.replacement_for(series.source.study_instance_uid));
  EXPECT_EQ(string_of(seg, DCM_FrameOfReferenceUID),
            uid_map.replacement_for(series.source.frame_of_reference_uid));
  DcmItem* referenced_series = nullptr;
  ASSERT_TRUE(
      seg.findAndGetSequenceItem(DCM_ReferencedSeriesSequence, referenced_series, 0).good());
  const std::string referenced_series_uid = string_of(*referenced_series, DCM_SeriesInstanceUID);
  EXPECT_NE(referenced_series_uid, series.source.series_instance_uid);
  EXPECT_EQ(referenced_series_uid, uid_map.replacement_for(series.source.series_instance_uid));
  std::set<std::string> expected_instances;
  for (const auto& slice : series.source.slices) {
    expected_instances.insert(uid_map.replacement_for(slice.sop_instance_uid));
  }
  std::set<std::string> referenced_instances;
  DcmItem* instance = nullptr;
  for (long n = 0;
       referenced_series->findAndGetSequenceItem(DCM_ReferencedInstanceSequence, instance, n)
           .good();
       ++n) {
    referenced_instances.insert(string_of(*instance, DCM_ReferencedSOPInstanceUID));
  }
  EXPECT_EQ(referenced_instances, expected_instances);
  std::set<std::string> derivation_instances;
  DcmItem* frame = nullptr;
  for (long f = 0;
       seg.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame, f).good(); ++f) {
    DcmItem* derivation = nullptr;
    DcmItem* source_image = nullptr;
    ASSERT_TRUE(frame->findAndGetSequenceItem(DCM_DerivationImageSequence, derivation, 0).good());
    ASSERT_TRUE(
        derivation->findAndGetSequenceItem(DCM_SourceImageSequence, source_image, 0).good());
    derivation_instances.insert(string_of(*source_image, DCM_ReferencedSOPInstanceUID));
  }
  EXPECT_EQ(derivation_instances, expected_instances);

  // The anonymized SEG still reads back to the same labels.
  expect_same_voxels(read_dicom_seg(output).labels, labels);
}

TEST(DicomAnonymize, CleansCtSmallAndRemapsUidsConsistentlyAcrossDatasets) {
  GRAFT_REQUIRE_CT_SMALL();
  DcmFileFormat first, second;
  ASSERT_TRUE(first.loadFile(kCtSmall).good());
  ASSERT_TRUE(second.loadFile(kCtSmall).good());
  DcmDataset& dataset = *first.getDataset();
  const std::string original_study = string_of(dataset, DCM_StudyInstanceUID);
  const std::string original_sop = string_of(dataset, DCM_SOPInstanceUID);
  ASSERT_TRUE(has_private_element(dataset));
  ASSERT_TRUE(dataset.tagExists(DCM_OtherPatientIDsSequence));

  DicomUidMap uid_map;
  anonymize_dataset(dataset, uid_map);
  anonymize_dataset(*second.getDataset(), uid_map);

  EXPECT_FALSE(has_private_element(dataset));
  EXPECT_FALSE(dataset.tagExists(DCM_OtherPatientIDsSequence, OFTrue));
  EXPECT_FALSE(dataset.tagExists(DCM_PatientAge));
  EXPECT_FALSE(dataset.tagExists(DCM_PatientWeight));
  EXPECT_FALSE(dataset.tagExists(DCM_AdditionalPatientHistory));
  EXPECT_FALSE(dataset.tagExists(DCM_ImageComments));
  EXPECT_FALSE(dataset.tagExists(DCM_StudyDescription));
  EXPECT_EQ(string_of(dataset, DCM_PatientName), "ANONYMOUS^");
  EXPECT_EQ(string_of(dataset, DCM_PatientSex), "");
  EXPECT_EQ(string_of(dataset, DCM_StudyDate), "");
  EXPECT_EQ(string_of(dataset, DCM_StudyID), "");
  EXPECT_EQ(string_of(dataset, DCM_InstitutionName), "ANONYMIZED");
  EXPECT_EQ(string_of(dataset, DCM_StationName), "ANONYMIZED");
  EXPECT_EQ(string_of(dataset, DCM_PatientIdentityRemoved), "YES");
  // Not in the profile's table: kept.
  EXPECT_EQ(string_of(dataset, DCM_Modality), "CT");
  EXPECT_EQ(string_of(dataset, DCM_Manufacturer), "GE MEDICAL SYSTEMS");

  EXPECT_NE(string_of(dataset, DCM_StudyInstanceUID), original_study);
  EXPECT_NE(string_of(dataset, DCM_SOPInstanceUID), original_sop);
  EXPECT_EQ(string_of(dataset, DCM_SOPClassUID), UID_CTImageStorage);
  EXPECT_EQ(string_of(*second.getDataset(), DCM_StudyInstanceUID),
            string_of(dataset, DCM_StudyInstanceUID));
  EXPECT_EQ(string_of(*second.getDataset(), DCM_PatientID), string_of(dataset, DCM_PatientID));
  EXPECT_EQ(string_of(dataset, DCM_SOPInstanceUID), uid_map.replacement_for(original_sop));
}

TEST(DicomSeg, RejectsLabelsOffTheSourceGridNamingPathAndMismatch) {
  GRAFT_REQUIRE_CT_SMALL();
  const std::string folder = graft::testing::temp_dir();
  const SourceSeries series = write_oblique_series(folder, 4);
  Geometry wrong_grid = series.geometry;
  wrong_grid.size_xyz[2] = 3;
  const std::string output = folder + "/seg.dcm";
  std::string message = graft::testing::error_message([&] {
    write_dicom_seg(two_segment_labels(wrong_grid), series.source, kSegments, output, DicomSegOptions{});
  });
  ASSERT_FALSE(message.empty()) << "a 3-slice label image was accepted for a 4-slice source";
  EXPECT_NE(message.find(output), std::string::npos) << message;
  EXPECT_NE(message.find("3 slices"), std::string::npos) << message;
  EXPECT_NE(message.find("has 4"), std::string::npos) << message;
  EXPECT_FALSE(graft::testing::file_exists(output));

  Geometry shifted_grid = series.geometry;
  shifted_grid.origin_world[0] += 0.5;
  message = graft::testing::error_message([&] {
    write_dicom_seg(two_segment_labels(shifted_grid), series.source, kSegments, output, DicomSegOptions{});
  });
  ASSERT_FALSE(message.empty()) << "labels shifted by 0.5 mm were accepted";
  EXPECT_NE(message.find(output), std::string::npos) << message;
  EXPECT_NE(message.find("origin"), std::string::npos) << message;
  EXPECT_FALSE(graft::testing::file_exists(output));
}

TEST(DicomSeg, RejectsLabelValueWithoutSegment) {
  GRAFT_REQUIRE_CT_SMALL();
  const std::string folder = graft::testing::temp_dir();
  const SourceSeries series = write_oblique_series(folder, 4);
  const std::string output = folder + "/seg.dcm";
  const std::vector<DicomSegment> liver_only = {kSegments[0]};
  const std::string message = graft::testing::error_message([&] {
    write_dicom_seg(two_segment_labels(series.geometry), series.source, liver_only, output, DicomSegOptions{});
  });
  ASSERT_FALSE(message.empty()) << "label value 7 has no segment but was accepted";
  EXPECT_NE(message.find(output), std::string::npos) << message;
  EXPECT_NE(message.find("label value 7"), std::string::npos) << message;
  EXPECT_FALSE(graft::testing::file_exists(output));
}

}  // namespace
}  // namespace graft::io
