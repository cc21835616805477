#include "finetune/training_plot.h"

#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "io/error.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

constexpr int kPanelWidthPx = 480;
constexpr int kHeightPx = 360;

struct DecodedPng {
  int width = 0;
  int height = 0;
  bool stored_as_rgb = false;
  std::vector<std::uint8_t> rgb;

  std::array<std::uint8_t, 3> at(int x, int y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * width + x) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

// Decodes with libpng itself rather than trusting the writer, so a malformed file fails here.
DecodedPng decode_png(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_file(&image, path.c_str()) == 0) {
    ADD_FAILURE() << path << ": libpng cannot read it: " << image.message;
    return {};
  }
  DecodedPng decoded;
  decoded.width = static_cast<int>(image.width);
  decoded.height = static_cast<int>(image.height);
  decoded.stored_as_rgb = (image.format & PNG_FORMAT_FLAG_COLOR) != 0 &&
                          (image.format & PNG_FORMAT_FLAG_ALPHA) == 0 &&
                          (image.format & PNG_FORMAT_FLAG_COLORMAP) == 0;
  image.format = PNG_FORMAT_RGB;
  decoded.rgb.resize(PNG_IMAGE_SIZE(image));
  if (png_image_finish_read(&image, nullptr, decoded.rgb.data(), 0, nullptr) == 0) {
    ADD_FAILURE() << path << ": libpng cannot decode it: " << image.message;
    png_image_free(&image);
    return {};
  }
  return decoded;
}

int count_pixels(const DecodedPng& png, const std::array<std::uint8_t, 3>& colour, int x_begin,
                 int x_end) {
  int count = 0;
  for (int y = 0; y < png.height; ++y) {
    for (int x = x_begin; x < x_end; ++x) count += png.at(x, y) == colour;
  }
  return count;
}

bool colour_within(const DecodedPng& png, const std::array<std::uint8_t, 3>& colour, int x, int y,
                   int radius_px) {
  for (int dy = -radius_px; dy <= radius_px; ++dy) {
    for (int dx = -radius_px; dx <= radius_px; ++dx) {
      const int px = x + dx, py = y + dy;
      if (px >= 0 && py >= 0 && px < png.width && py < png.height && png.at(px, py) == colour) {
        return true;
      }
    }
  }
  return false;
}

// Panel 0: Dice rising from 0.1 to 0.9 and loss falling from 1.0 to 0.2 over 20 epochs, both
// linear, so the y range is [0.1, 1.0]. Panel 1: the loss alone.
std::vector<PlotPanel> rising_and_falling_panels() {
  PlotSeries dice{"val Dice", {}, {}};
  PlotSeries loss{"train loss", {}, {}};
  for (int epoch = 0; epoch < 20; ++epoch) {
    dice.x.push_back(epoch);
    dice.y.push_back(0.1 + 0.8 * epoch / 19.0);
    loss.x.push_back(epoch);
    loss.y.push_back(1.0 - 0.8 * epoch / 19.0);
  }
  return {{"Dice and loss", "epoch", "value", {dice, loss}}, {"Loss", "epoch", "loss", {loss}}};
}

TEST(TrainingPlot, WritesRgbImageOfPanelsSideBySide) {
  const std::string path = graft::testing::temp_dir() + "/curves.png";
  write_plot_png(rising_and_falling_panels(), path, kPanelWidthPx, kHeightPx);
  const DecodedPng png = decode_png(path);
  EXPECT_EQ(png.width, 2 * kPanelWidthPx);
  EXPECT_EQ(png.height, kHeightPx);
  EXPECT_TRUE(png.stored_as_rgb);
}

TEST(TrainingPlot, BackgroundIsWhite) {
  const std::string path = graft::testing::temp_dir() + "/curves.png";
  write_plot_png(rising_and_falling_panels(), path, kPanelWidthPx, kHeightPx);
  const DecodedPng png = decode_png(path);
  ASSERT_EQ(png.width, 2 * kPanelWidthPx);
  const std::array<std::uint8_t, 3> white{255, 255, 255};
  EXPECT_EQ(png.at(0, 0), white);
  EXPECT_EQ(png.at(png.width - 1, png.height - 1), white);
}

TEST(TrainingPlot, DrawsEachSeriesInItsOwnColour) {
  const std::string path = graft::testing::temp_dir() + "/curves.png";
  write_plot_png(rising_and_falling_panels(), path, kPanelWidthPx, kHeightPx);
  const DecodedPng png = decode_png(path);
  ASSERT_EQ(png.width, 2 * kPanelWidthPx);
  ASSERT_NE(series_colour(0), series_colour(1));
  EXPECT_GT(count_pixels(png, series_colour(0), 0, kPanelWidthPx), 50);
  EXPECT_GT(count_pixels(png, series_colour(1), 0, kPanelWidthPx), 50);
  // The second panel holds one series, so it uses only the first colour.
  EXPECT_GT(count_pixels(png, series_colour(0), kPanelWidthPx, png.width), 50);
  EXPECT_EQ(count_pixels(png, series_colour(1), kPanelWidthPx, png.width), 0);
}

TEST(TrainingPlot, RisingSeriesStartsAtItsLayoutPixel) {
  const std::vector<PlotPanel> panels = rising_and_falling_panels();
  const std::string path = graft::testing::temp_dir() + "/curves.png";
  write_plot_png(panels, path, kPanelWidthPx, kHeightPx);
  const DecodedPng png = decode_png(path);
  ASSERT_EQ(png.width, 2 * kPanelWidthPx);

  const PlotLayout layout = plot_layout(panels[0], 0, kPanelWidthPx, kHeightPx);
  // (x_min, y_min) of the data = the Dice curve's first point (epoch 0, 0.1), which sits 5% of
  // the span inside the bottom-left corner of the plot area.
  const double x_px = layout.x_to_pixel(0.0);
  const double y_px = layout.y_to_pixel(0.1);
  const double plot_width = layout.right_px - layout.left_px;
  const double plot_height = layout.bottom_px - layout.top_px;
  EXPECT_NEAR(x_px, layout.left_px + plot_width * 0.05 / 1.1, 1e-9);
  EXPECT_NEAR(y_px, layout.bottom_px - plot_height * 0.05 / 1.1, 1e-9);
  EXPECT_TRUE(colour_within(png, series_colour(0), static_cast<int>(std::lround(x_px)),
                            static_cast<int>(std::lround(y_px)), 2));
  // The falling curve starts at the top, far from there.
  EXPECT_FALSE(colour_within(png, series_colour(1), static_cast<int>(std::lround(x_px)),
                             static_cast<int>(std::lround(y_px)), 2));
}

TEST(TrainingPlot, PadsAxesByFivePercentWithNiceTickSteps) {
  const PlotLayout layout =
      plot_layout(rising_and_falling_panels()[0], 0, kPanelWidthPx, kHeightPx);
  // x spans 0..19 and y 0.1..1.0; each range grows by 5% of its span at both ends.
  EXPECT_NEAR(layout.x_min, -0.95, 1e-12);
  EXPECT_NEAR(layout.x_max, 19.95, 1e-12);
  EXPECT_NEAR(layout.y_min, 0.055, 1e-12);
  EXPECT_NEAR(layout.y_max, 1.045, 1e-12);
  EXPECT_DOUBLE_EQ(layout.x_tick_step, 5.0);
  EXPECT_DOUBLE_EQ(layout.y_tick_step, 0.2);
  EXPECT_EQ(layout.x_ticks, (std::vector<double>{0.0, 5.0, 10.0, 15.0}));
  ASSERT_EQ(layout.y_ticks.size(), 5u);
  EXPECT_NEAR(layout.y_ticks.front(), 0.2, 1e-12);
  EXPECT_NEAR(layout.y_ticks.back(), 1.0, 1e-12);
  // The second panel starts one panel width to the right.
  const PlotLayout second =
      plot_layout(rising_and_falling_panels()[0], 1, kPanelWidthPx, kHeightPx);
  EXPECT_EQ(second.left_px, layout.left_px + kPanelWidthPx);
}

TEST(TrainingPlot, SkipsNonFinitePoints) {
  PlotSeries series{"loss", {0, 1, 2, 3, 4}, {0.5, std::nan(""), 0.4, 0.3, 0.2}};
  series.x[3] = std::numeric_limits<double>::infinity();
  series.y[4] = -std::numeric_limits<double>::infinity();
  const PlotPanel panel{"Loss", "epoch", "loss", {series}};
  // Only (0, 0.5) and (2, 0.4) are finite, so they alone set the ranges.
  const PlotLayout layout = plot_layout(panel, 0, kPanelWidthPx, kHeightPx);
  EXPECT_NEAR(layout.x_min, -0.1, 1e-12);
  EXPECT_NEAR(layout.x_max, 2.1, 1e-12);
  EXPECT_NEAR(layout.y_min, 0.395, 1e-12);
  EXPECT_NEAR(layout.y_max, 0.505, 1e-12);

  const std::string path = graft::testing::temp_dir() + "/loss.png";
  write_plot_png({panel}, path, kPanelWidthPx, kHeightPx);
  const DecodedPng png = decode_png(path);
  ASSERT_EQ(png.width, kPanelWidthPx);
  EXPECT_GT(count_pixels(png, series_colour(0), 0, png.width), 50);
}

TEST(TrainingPlot, EmptySeriesListStillDrawsAxes) {
  const PlotPanel panel{"No epochs yet", "epoch", "loss", {}};
  const std::string path = graft::testing::temp_dir() + "/empty.png";
  write_plot_png({panel}, path, kPanelWidthPx, kHeightPx);
  const DecodedPng png = decode_png(path);
  ASSERT_EQ(png.width, kPanelWidthPx);
  ASSERT_EQ(png.height, kHeightPx);

  const PlotLayout layout = plot_layout(panel, 0, kPanelWidthPx, kHeightPx);
  // With no data the axes show the unit range, padded.
  EXPECT_NEAR(layout.y_min, -0.05, 1e-12);
  EXPECT_NEAR(layout.y_max, 1.05, 1e-12);
  const std::array<std::uint8_t, 3> black{0, 0, 0};
  const int middle_x = (layout.left_px + layout.right_px) / 2;
  const int middle_y = (layout.top_px + layout.bottom_px) / 2;
  EXPECT_EQ(png.at(layout.left_px, middle_y), black);
  EXPECT_EQ(png.at(layout.right_px, middle_y), black);
  EXPECT_EQ(png.at(middle_x, layout.top_px), black);
  EXPECT_EQ(png.at(middle_x, layout.bottom_px), black);
  // Tick labels are black text left of the y axis.
  EXPECT_GT(count_pixels(png, black, 0, layout.left_px - 1), 100);
}

TEST(TrainingPlot, UnwritablePathThrowsErrorNamingThePath) {
  const std::string path = graft::testing::temp_dir() + "/no_such_folder/curves.png";
  try {
    write_plot_png(rising_and_falling_panels(), path);
    FAIL() << "expected graft::Error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
}

TEST(TrainingPlot, MismatchedSeriesLengthsThrowErrorNamingPathAndSeries) {
  const PlotPanel panel{"Loss", "epoch", "loss", {{"train loss", {0, 1, 2}, {0.5, 0.4}}}};
  const std::string path = graft::testing::temp_dir() + "/loss.png";
  try {
    write_plot_png({panel}, path);
    FAIL() << "expected graft::Error";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("train loss"), std::string::npos) << message;
  }
  EXPECT_FALSE(graft::testing::file_exists(path));
}

TEST(TrainingPlot, LeavesOnlyTheFinishedFileBehind) {
  const std::string folder = graft::testing::temp_dir();
  write_plot_png(rising_and_falling_panels(), folder + "/curves.png");
  // Writing over an existing plot replaces it the same way.
  write_plot_png(rising_and_falling_panels(), folder + "/curves.png");
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"curves.png"});
}

}  // namespace
}  // namespace graft::finetune
