#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/oflog/oflog.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/error.h"
#include "io/dicom/jpeg2000_decoder.h"
#include "tests/support/test_support.h"

namespace graft::io {
namespace {

const std::string kPydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files/";

// One frame as a DICOM file stores it: the codestream and the header fields that describe it.
struct EncapsulatedFrame {
  std::vector<std::uint8_t> codestream;
  PixelLayout layout;
};

std::uint16_t required_u16(DcmDataset& dataset, const DcmTagKey& tag, const std::string& path) {
  Uint16 value = 0;
  EXPECT_TRUE(dataset.findAndGetUint16(tag, value).good()) << path << " lacks " << tag.toString();
  return value;
}

// Reads a single-frame file's pixel data with DCMTK, as the DICOM reader will: item 0 is the
// basic offset table, every later fragment belongs to the one frame.
EncapsulatedFrame read_single_frame(const std::string& path) {
  OFLog::configure(OFLogger::ERROR_LOG_LEVEL);  // pydicom's odd-length files warn otherwise
  EncapsulatedFrame frame;
  DcmFileFormat file;
  const OFCondition loaded = file.loadFile(path.c_str());
  EXPECT_TRUE(loaded.good()) << path << ": " << loaded.text();
  if (loaded.bad()) return frame;
  DcmDataset& dataset = *file.getDataset();
  frame.layout.rows = required_u16(dataset, DCM_Rows, path);
  frame.layout.columns = required_u16(dataset, DCM_Columns, path);
  frame.layout.samples_per_pixel = required_u16(dataset, DCM_SamplesPerPixel, path);
  frame.layout.bits_allocated = required_u16(dataset, DCM_BitsAllocated, path);
  frame.layout.is_signed = required_u16(dataset, DCM_PixelRepresentation, path) == 1;
  Sint32 frame_count = 0;
  if (dataset.findAndGetSint32(DCM_NumberOfFrames, frame_count).good()) {
    EXPECT_EQ(frame_count, 1) << path;
  }

  DcmElement* element = nullptr;
  EXPECT_TRUE(dataset.findAndGetElement(DCM_PixelData, element).good()) << path;
  auto* pixel_data = dynamic_cast<DcmPixelData*>(element);
  DcmPixelSequence* fragments = nullptr;
  if (!pixel_data ||
      pixel_data->getEncapsulatedRepresentation(dataset.getOriginalXfer(), nullptr, fragments)
          .bad() ||
      !fragments) {
    ADD_FAILURE() << path << " has no encapsulated pixel data";
    return frame;
  }
  for (unsigned long i = 1; i < fragments->card(); ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* bytes = nullptr;
    EXPECT_TRUE(fragments->getItem(item, i).good());
    if (!item || item->getUint8Array(bytes).bad() || !bytes) continue;
    frame.codestream.insert(frame.codestream.end(), bytes, bytes + item->getLength());
  }
  return frame;
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool has_gdcm() {
  return graft::testing::file_exists("/usr/bin/gdcmconv") &&
         graft::testing::file_exists("/usr/bin/gdcmraw");
}

// gdcmconv refuses to write a file whose SOPClassUID or SOPInstanceUID is empty, as in the
// anonymised CT series. Returns a copy with both taken from the file meta header, or `path`
// itself when nothing is missing. The pixel data is copied unchanged.
std::string with_sop_uids(const std::string& path, const std::string& folder) {
  DcmFileFormat file;
  if (file.loadFile(path.c_str()).bad()) return path;
  bool changed = false;
  const std::pair<DcmTagKey, DcmTagKey> fields[] = {
      {DCM_SOPClassUID, DCM_MediaStorageSOPClassUID},
      {DCM_SOPInstanceUID, DCM_MediaStorageSOPInstanceUID}};
  for (const auto& [field, meta_field] : fields) {
    OFString value;
    file.getDataset()->findAndGetOFString(field, value);
    if (!value.empty()) continue;
    file.getMetaInfo()->findAndGetOFString(meta_field, value);
    file.getDataset()->putAndInsertOFStringArray(field, value);
    changed = true;
  }
  if (!changed) return path;
  const std::string copy = folder + "/" + std::filesystem::path(path).filename().string() + ".dcm";
  EXPECT_TRUE(file.saveFile(copy.c_str()).good()) << copy;
  return copy;
}

// GDCM's decoding of the file (Debian libgdcm-tools): decompressed to explicit little endian by
// gdcmconv, then the Pixel Data value dumped by gdcmraw.
std::vector<std::uint8_t> gdcm_pixels(const std::string& path, const std::string& folder) {
  const std::string name = std::filesystem::path(path).filename().string();
  const std::string raw_dicom = folder + "/" + name + ".raw.dcm";
  const std::string pixels = folder + "/" + name + ".pixels";
  const std::string input = with_sop_uids(path, folder);
  std::string output;
  EXPECT_EQ(
      graft::testing::run_command("gdcmconv --raw '" + input + "' '" + raw_dicom + "'", &output), 0)
      << output;
  EXPECT_EQ(graft::testing::run_command(
                "gdcmraw -i '" + raw_dicom + "' -o '" + pixels + "' -t 7fe0,0010", &output),
            0)
      << output;
  return read_bytes(pixels);
}

std::vector<std::uint8_t> decode(const EncapsulatedFrame& frame, const std::string& source) {
  std::vector<std::uint8_t> out(frame.layout.rows * frame.layout.columns *
                                frame.layout.samples_per_pixel * (frame.layout.bits_allocated / 8));
  decode_jpeg2000_frame(frame.codestream.data(), frame.codestream.size(), frame.layout, out.data(),
                        source);
  return out;
}

std::vector<std::string> ct_series_files() {
  std::vector<std::string> files;
  const std::string folder = graft::testing::shared_data_dir() + "/dicom/ct-j2k-series";
  if (!graft::testing::file_exists(folder)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The message must name the frame it came from and stay on one line for the CLI.
void expect_error_names_source(const EncapsulatedFrame& frame, const std::string& source) {
  const std::string message = graft::testing::error_message([&] { decode(frame, source); });
  if (message.empty()) {
    ADD_FAILURE() << "decoding did not throw";
    return;
  }
  EXPECT_EQ(message.rfind(source + ": ", 0), 0u) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(Jpeg2000, DecodesLosslessCtSeriesLikeGdcm) {
  GRAFT_REQUIRE_SHARED_DATA();
  if (!has_gdcm()) GTEST_SKIP() << "gdcmconv/gdcmraw are missing (Debian libgdcm-tools)";
  const auto files = ct_series_files();
  if (files.empty()) GTEST_SKIP() << "../shared/data/dicom/ct-j2k-series is absent";
  EXPECT_EQ(files.size(), 20u);
  const std::string folder = graft::testing::temp_dir();
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    const EncapsulatedFrame frame = read_single_frame(path);
    EXPECT_EQ(frame.layout.rows, 512);
    EXPECT_EQ(frame.layout.bits_allocated, 16);
    const auto pixels = decode(frame, path + " frame 1");
    const auto expected = gdcm_pixels(path, folder);
    ASSERT_EQ(pixels.size(), expected.size());
    EXPECT_TRUE(pixels == expected);
    // Equal but blank output from both decoders would prove nothing.
    EXPECT_GT(std::count(pixels.begin(), pixels.end(), 0), 0);
    EXPECT_LT(std::count(pixels.begin(), pixels.end(), 0),
              static_cast<std::ptrdiff_t>(pixels.size() / 2));
  }
}

TEST(Jpeg2000, DecodesPydicomLosslessMrExactlyLikeItsUncompressedTwin) {
  if (!graft::testing::file_exists(kPydicomFiles + "MR_small_jp2klossless.dcm")) {
    GTEST_SKIP() << "pydicom's test files are absent (Debian python3-pydicom)";
  }
  const EncapsulatedFrame frame = read_single_frame(kPydicomFiles + "MR_small_jp2klossless.dcm");
  const auto pixels = decode(frame, "MR_small_jp2klossless.dcm frame 1");

  DcmFileFormat file;
  ASSERT_TRUE(file.loadFile((kPydicomFiles + "MR_small.dcm").c_str()).good());
  const Uint8* expected = nullptr;
  unsigned long expected_size = 0;
  ASSERT_TRUE(
      file.getDataset()->findAndGetUint8Array(DCM_PixelData, expected, &expected_size).good());
  ASSERT_EQ(pixels.size(), expected_size);
  EXPECT_TRUE(std::equal(pixels.begin(), pixels.end(), expected));
}

TEST(Jpeg2000, DecodesPydicomFilesLikeGdcm) {
  if (!has_gdcm()) GTEST_SKIP() << "gdcmconv/gdcmraw are missing (Debian libgdcm-tools)";
  const std::string folder = graft::testing::temp_dir();
  // Signed 16-bit lossy (.91) with BitsStored below the codestream precision, 8-bit YBR_RCT
  // colour in 128x128 tiles, and a 256x1024 lossy frame.
  for (const std::string name : {"693_J2KI.dcm", "GDCMJ2K_TextGBR.dcm", "JPEG2000.dcm"}) {
    SCOPED_TRACE(name);
    const std::string path = kPydicomFiles + name;
    if (!graft::testing::file_exists(path)) GTEST_SKIP() << path << " is absent";
    const EncapsulatedFrame frame = read_single_frame(path);
    const auto pixels = decode(frame, name + " frame 1");
    const auto expected = gdcm_pixels(path, folder);
    ASSERT_EQ(pixels.size(), expected.size());
    EXPECT_TRUE(pixels == expected);
  }
}

// The codestream says unsigned 13-bit, PixelRepresentation says signed. GDCM hands back the
// codestream's unsigned values; graft sign-extends them from bit 12 (see copy_component), which
// turns the CT's air from 7192 into -1000 HU-like values.
TEST(Jpeg2000, FollowsPixelRepresentationWhenCodestreamSignDiffers) {
  if (!has_gdcm()) GTEST_SKIP() << "gdcmconv/gdcmraw are missing (Debian libgdcm-tools)";
  const std::string path = kPydicomFiles + "J2K_pixelrep_mismatch.dcm";
  if (!graft::testing::file_exists(path)) GTEST_SKIP() << path << " is absent";
  const EncapsulatedFrame frame = read_single_frame(path);
  ASSERT_TRUE(frame.layout.is_signed);
  const auto pixels = decode(frame, "J2K_pixelrep_mismatch.dcm frame 1");
  const auto expected = gdcm_pixels(path, graft::testing::temp_dir());
  ASSERT_EQ(pixels.size(), expected.size());
  std::int64_t negative = 0;
  for (std::size_t i = 0; i + 1 < pixels.size(); i += 2) {
    const int ours = static_cast<std::int16_t>(pixels[i] | (pixels[i + 1] << 8));
    const int unsigned_13_bit = expected[i] | (expected[i + 1] << 8);
    ASSERT_LT(unsigned_13_bit, 1 << 13) << "pixel " << i / 2;
    const int sign_extended =
        unsigned_13_bit >= (1 << 12) ? unsigned_13_bit - (1 << 13) : unsigned_13_bit;
    ASSERT_EQ(ours, sign_extended) << "pixel " << i / 2;
    negative += ours < 0;
  }
  EXPECT_GT(negative, 0);
}

// A JP2 file (signature, ftyp, jp2h, jp2c boxes) around a real codestream decodes like the bare
// codestream: the decoder tells them apart by their first bytes.
TEST(Jpeg2000, DecodesJp2WrappedCodestreamLikeBareOne) {
  const std::string path = kPydicomFiles + "MR_small_jp2klossless.dcm";
  if (!graft::testing::file_exists(path)) GTEST_SKIP() << path << " is absent";
  const EncapsulatedFrame bare = read_single_frame(path);
  auto u32 = [](std::vector<std::uint8_t>& out, std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back((value >> shift) & 0xFF);
  };
  auto box = [&](std::vector<std::uint8_t>& out, const char* type,
                 const std::vector<std::uint8_t>& body) {
    u32(out, static_cast<std::uint32_t>(8 + body.size()));
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), body.begin(), body.end());
  };
  std::vector<std::uint8_t> ihdr;
  u32(ihdr, 64);                                        // height
  u32(ihdr, 64);                                        // width
  ihdr.insert(ihdr.end(), {0, 1, 0x80 | 15, 7, 0, 0});  // 1 component, signed 16 bit, JPEG 2000
  std::vector<std::uint8_t> colr = {1, 0, 0};
  u32(colr, 17);  // greyscale
  std::vector<std::uint8_t> header;
  box(header, "ihdr", ihdr);
  box(header, "colr", colr);
  EncapsulatedFrame wrapped{{0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A},
                            bare.layout};
  box(wrapped.codestream, "ftyp", {'j', 'p', '2', ' ', 0, 0, 0, 0, 'j', 'p', '2', ' '});
  box(wrapped.codestream, "jp2h", header);
  box(wrapped.codestream, "jp2c", bare.codestream);
  EXPECT_TRUE(decode(wrapped, "wrapped frame 1") == decode(bare, "bare frame 1"));
}

TEST(Jpeg2000, RejectsFrameThatDoesNotMatchTheHeader) {
  const std::string path = kPydicomFiles + "MR_small_jp2klossless.dcm";
  if (!graft::testing::file_exists(path)) GTEST_SKIP() << path << " is absent";
  const EncapsulatedFrame frame = read_single_frame(path);
  auto message_for = [&](const PixelLayout& layout) -> std::string {
    std::vector<std::uint8_t> out(512 * 512 * 4 * 3);
    const std::string message = graft::testing::error_message([&] {
      decode_jpeg2000_frame(frame.codestream.data(), frame.codestream.size(), layout, out.data(), "mr.dcm frame 3");
    });
    return message.empty() ? "no error" : message;
  };
  PixelLayout layout = frame.layout;
  layout.rows = 128;
  EXPECT_EQ(message_for(layout),
            "mr.dcm frame 3: JPEG 2000 codestream is 64x64 (rows x columns), but Rows/Columns "
            "say 128x64");
  layout = frame.layout;
  layout.samples_per_pixel = 3;
  EXPECT_EQ(message_for(layout),
            "mr.dcm frame 3: JPEG 2000 codestream has 1 components, but SamplesPerPixel is 3");
  layout = frame.layout;
  layout.bits_allocated = 8;
  EXPECT_EQ(message_for(layout),
            "mr.dcm frame 3: JPEG 2000 component 0 has 16-bit samples, but BitsAllocated is 8");
  layout = frame.layout;
  layout.bits_allocated = 12;
  EXPECT_EQ(message_for(layout),
            "mr.dcm frame 3: BitsAllocated 12 is not supported for JPEG 2000 (8, 16 or 32)");
}

TEST(Jpeg2000, RejectsTruncatedCodestreamNamingTheFrame) {
  const std::string path = kPydicomFiles + "MR_small_jp2klossless.dcm";
  if (!graft::testing::file_exists(path)) GTEST_SKIP() << path << " is absent";
  std::vector<EncapsulatedFrame> frames = {read_single_frame(path)};
  const auto ct_files = ct_series_files();
  if (!ct_files.empty()) frames.push_back(read_single_frame(ct_files.front()));
  for (EncapsulatedFrame frame : frames) {
    frame.codestream.resize(frame.codestream.size() / 2);
    expect_error_names_source(frame, "half.dcm frame 1");
    frame.codestream.resize(60);  // inside the main header
    expect_error_names_source(frame, "header.dcm frame 1");
  }
}

TEST(Jpeg2000, RejectsRandomBytesNamingTheFrame) {
  std::mt19937 random(20240517);
  std::uniform_int_distribution<int> byte(0, 255);
  EncapsulatedFrame frame{{}, {64, 64, 1, 16, true}};
  for (int round = 0; round < 20; ++round) {
    frame.codestream.assign(4096, 0);
    for (auto& value : frame.codestream) value = static_cast<std::uint8_t>(byte(random));
    expect_error_names_source(frame, "random.dcm frame 1");
    // Behind a valid magic, so that the bytes reach OpenJPEG's marker parser.
    frame.codestream[0] = 0xFF;
    frame.codestream[1] = 0x4F;
    frame.codestream[2] = 0xFF;
    frame.codestream[3] = 0x51;
    expect_error_names_source(frame, "random.dcm frame 2");
  }
  frame.codestream.clear();
  expect_error_names_source(frame, "empty.dcm frame 1");
}

// A valid main header over a corrupted body mostly decodes to noise (JPEG 2000 has no checksum),
// but it must never crash, and what it rejects must come back as graft::Error naming the frame.
TEST(Jpeg2000, SurvivesCorruptedTileData) {
  const std::string path = kPydicomFiles + "MR_small_jp2klossless.dcm";
  if (!graft::testing::file_exists(path)) GTEST_SKIP() << path << " is absent";
  const EncapsulatedFrame original = read_single_frame(path);
  std::mt19937 random(7);
  std::uniform_int_distribution<std::size_t> position(200, original.codestream.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  int thrown = 0;
  for (int round = 0; round < 200; ++round) {
    EncapsulatedFrame frame = original;
    for (int i = 0; i < 32; ++i) {
      frame.codestream[position(random)] = static_cast<std::uint8_t>(byte(random));
    }
    try {
      decode(frame, "corrupt.dcm frame 1");
    } catch (const graft::Error& error) {
      ++thrown;
      EXPECT_EQ(std::string(error.what()).rfind("corrupt.dcm frame 1: ", 0), 0u) << error.what();
    }
  }
  // The corruption stays behind the main header, so most rounds must get past the header parser
  // into the tile decoder (with this seed, two of them are rejected there).
  EXPECT_LT(thrown, 200);
}

TEST(Jpeg2000, DecodesFromManyThreadsAtOnce) {
  GRAFT_REQUIRE_SHARED_DATA();
  const auto files = ct_series_files();
  if (files.empty()) GTEST_SKIP() << "../shared/data/dicom/ct-j2k-series is absent";
  std::vector<EncapsulatedFrame> frames;
  std::vector<std::vector<std::uint8_t>> expected;
  for (const auto& path : files) {
    frames.push_back(read_single_frame(path));
    expected.push_back(decode(frames.back(), path));
  }
  constexpr int kThreads = 4;
  std::vector<std::vector<std::vector<std::uint8_t>>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    results[t].resize(frames.size());
    threads.emplace_back([&, t] {
      for (std::size_t f = 0; f < frames.size(); ++f) {
        // Each thread starts elsewhere in the series so that different frames overlap.
        const std::size_t index = (f + t * 5) % frames.size();
        results[t][index] = decode(frames[index], files[index]);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    for (std::size_t f = 0; f < frames.size(); ++f) EXPECT_TRUE(results[t][f] == expected[f]);
  }
}

}  // namespace
}  // namespace graft::io
