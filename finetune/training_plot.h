#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace graft::finetune {

// One curve. x and y must have the same length; points where either is NaN or infinite are
// skipped and the line joins the finite points on either side.
struct PlotSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

struct PlotPanel {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
};

// Where one panel's data lands in the image. It is exposed so callers and tests can find the
// pixel of a data point without re-deriving margins.
struct PlotLayout {
  // The plot area (inside the axis frame), in whole-image pixels, inclusive.
  int left_px = 0;
  int top_px = 0;
  int right_px = 0;
  int bottom_px = 0;
  // Axis ranges after 5% padding on each side.
  double x_min = 0.0;
  double x_max = 1.0;
  double y_min = 0.0;
  double y_max = 1.0;
  // Tick steps are 1, 2 or 5 x 10^k; ticks are the multiples of the step inside the range.
  double x_tick_step = 0.0;
  double y_tick_step = 0.0;
  std::vector<double> x_ticks;
  std::vector<double> y_ticks;
  // Text scale in font pixels (1 = 5x7 glyphs), chosen from the image height.
  int text_scale = 1;

  // Image column and row (fractional) of data point (x, y).
  double x_to_pixel(double x) const;
  double y_to_pixel(double y) const;
};

// Layout of panel `panel_index` in an image of panels `panel_width_px` wide and `height_px` tall.
PlotLayout plot_layout(const PlotPanel& panel, int panel_index, int panel_width_px, int height_px);

// Colour of the series at `series_index` within a panel (a 9-colour cycle, as RGB).
std::array<std::uint8_t, 3> series_colour(std::size_t series_index);

// Writes a PNG (RGB, white background) with the panels side by side, each with axes, tick labels,
// a title and a legend naming each series in its colour. The image is
// (panel_width_px * panels.size()) x height_px. The file appears atomically (temporary file in
// the same folder, then rename), so a reader never sees half a plot. Throws graft::Error naming
// `path` when the input is inconsistent or the file cannot be written.
void write_plot_png(const std::vector<PlotPanel>& panels, const std::string& path,
                    int panel_width_px = 480, int height_px = 360);

}  // namespace graft::finetune
