#include "finetune/training_plot.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "io/atomic_file.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

using Rgb = std::array<std::uint8_t, 3>;

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kBlack{0, 0, 0};
constexpr Rgb kGridGrey{228, 228, 228};
constexpr Rgb kLegendBorderGrey{170, 170, 170};

// Above this many pixels a side the caller has almost certainly passed a wrong number, and the
// RGB buffer alone would run to gigabytes.
constexpr int kMaxImageSidePx = 16384;
constexpr int kMinPanelWidthPx = 120;
constexpr int kMinHeightPx = 100;
constexpr int kMinPlotAreaPx = 20;

// ---------------------------------------------------------------------------------------------
// Font: 5 columns x 9 rows per glyph. Rows 0-6 hold capitals and digits; rows 7-8 are descenders
// (g, j, p, q, y, comma), so lowercase text sits on the same baseline as capitals.

constexpr int kGlyphColumns = 5;
constexpr int kGlyphRows = 9;
constexpr int kCapRows = 7;
constexpr int kAdvanceColumns = 6;  // one blank column between glyphs

struct Glyph {
  char character;
  const char* rows[kGlyphRows];  // '#' = ink; rows left null are blank
};

// clang-format off
const Glyph kGlyphs[] = {
    {' ', {}},
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
    {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
    {'D', {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."}},
    {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
    {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
    {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
    {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
    {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
    {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
    {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
    {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
    {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
    {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
    {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
    {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
    {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
    {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
    {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
    {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
    {'a', {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},
    {'b', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},
    {'c', {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},
    {'d', {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},
    {'e', {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},
    {'f', {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},
    {'g', {".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###."}},
    {'h', {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'i', {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},
    {'j', {"...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'k', {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},
    {'l', {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'m', {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#"}},
    {'n', {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},
    {'o', {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},
    {'p', {".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#...."}},
    {'q', {".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#"}},
    {'r', {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},
    {'s', {".....", ".....", ".####", "#....", ".###.", "....#", "####."}},
    {'t', {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},
    {'u', {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},
    {'v', {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'w', {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},
    {'x', {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},
    {'y', {".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###."}},
    {'z', {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
    {',', {".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "..#..", ".#..."}},
    {'-', {".....", ".....", ".....", ".###.", ".....", ".....", "....."}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
    {'=', {".....", ".....", "#####", ".....", "#####", ".....", "....."}},
    {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
    {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
    {'[', {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}},
    {']', {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}},
    {'<', {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}},
    {'>', {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}},
    {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
    {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
    {'_', {".....", ".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
    {'%', {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},
    {'\'', {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."}},
    {'*', {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}},
    {'|', {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
    {'!', {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}},
    {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
};
// clang-format on

const Glyph& glyph_for(char character) {
  static const std::array<const Glyph*, 128> table = [] {
    std::array<const Glyph*, 128> t{};
    for (const Glyph& g : kGlyphs) t[static_cast<unsigned char>(g.character)] = &g;
    return t;
  }();
  const auto code = static_cast<unsigned char>(character);
  // Characters outside the font (including UTF-8 bytes) show as '?', so a missing glyph is
  // visible rather than silently dropped.
  const Glyph* glyph = code < table.size() ? table[code] : nullptr;
  return glyph != nullptr ? *glyph : *table['?'];
}

int text_width_px(const std::string& text, int scale) {
  if (text.empty()) return 0;
  return (static_cast<int>(text.size()) * kAdvanceColumns - 1) * scale;
}

// ---------------------------------------------------------------------------------------------
// Raster.

struct Rect {
  int left = 0, top = 0, right = -1, bottom = -1;  // inclusive
  bool contains(int x, int y) const { return x >= left && x <= right && y >= top && y <= bottom; }
};

class Canvas {
 public:
  Canvas(int width_px, int height_px)
      : width_px_(width_px),
        height_px_(height_px),
        rgb_(static_cast<std::size_t>(width_px) * static_cast<std::size_t>(height_px) * 3, 255) {}

  int width_px() const { return width_px_; }
  int height_px() const { return height_px_; }
  const std::uint8_t* data() const { return rgb_.data(); }

  void set(int x, int y, const Rgb& colour, const Rect& clip) {
    if (!clip.contains(x, y) || x < 0 || y < 0 || x >= width_px_ || y >= height_px_) return;
    const std::size_t offset =
        (static_cast<std::size_t>(y) * static_cast<std::size_t>(width_px_) + x) * 3;
    std::copy(colour.begin(), colour.end(), rgb_.begin() + static_cast<std::ptrdiff_t>(offset));
  }

  void fill(const Rect& area, const Rgb& colour, const Rect& clip) {
    for (int y = area.top; y <= area.bottom; ++y) {
      for (int x = area.left; x <= area.right; ++x) set(x, y, colour, clip);
    }
  }

  void outline(const Rect& area, const Rgb& colour, const Rect& clip) {
    for (int x = area.left; x <= area.right; ++x) {
      set(x, area.top, colour, clip);
      set(x, area.bottom, colour, clip);
    }
    for (int y = area.top; y <= area.bottom; ++y) {
      set(area.left, y, colour, clip);
      set(area.right, y, colour, clip);
    }
  }

  // Bresenham with a 2x2 brush, so the line is 2 px wide in every direction and its colour stays
  // exact (no anti-aliasing), which keeps series distinguishable by colour alone.
  void line(int x0, int y0, int x1, int y1, const Rgb& colour, const Rect& clip) {
    const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int error = dx + dy;
    while (true) {
      set(x0, y0, colour, clip);
      set(x0 + 1, y0, colour, clip);
      set(x0, y0 + 1, colour, clip);
      set(x0 + 1, y0 + 1, colour, clip);
      if (x0 == x1 && y0 == y1) break;
      const int twice = 2 * error;
      if (twice >= dy) {
        error += dy;
        x0 += sx;
      }
      if (twice <= dx) {
        error += dx;
        y0 += sy;
      }
    }
  }

  // Horizontal text whose glyph tops start at row `top`.
  void text(const std::string& text, int left, int top, int scale, const Rgb& colour,
            const Rect& clip) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      const Glyph& glyph = glyph_for(text[i]);
      const int origin = left + static_cast<int>(i) * kAdvanceColumns * scale;
      for_each_ink(glyph, [&](int column, int row) {
        fill({origin + column * scale, top + row * scale, origin + (column + 1) * scale - 1,
              top + (row + 1) * scale - 1},
             colour, clip);
      });
    }
  }

  // Text turned 90 degrees anticlockwise (reading upwards, as a y-axis label), starting at row
  // `bottom` with glyph tops at column `left`.
  void text_upwards(const std::string& text, int left, int bottom, int scale, const Rgb& colour,
                    const Rect& clip) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      const Glyph& glyph = glyph_for(text[i]);
      const int origin = bottom - static_cast<int>(i) * kAdvanceColumns * scale;
      for_each_ink(glyph, [&](int column, int row) {
        fill({left + row * scale, origin - (column + 1) * scale + 1, left + (row + 1) * scale - 1,
              origin - column * scale},
             colour, clip);
      });
    }
  }

 private:
  template <typename Fn>
  static void for_each_ink(const Glyph& glyph, Fn&& fn) {
    for (int row = 0; row < kGlyphRows; ++row) {
      const char* bits = glyph.rows[row];
      if (bits == nullptr) continue;
      for (int column = 0; column < kGlyphColumns && bits[column] != '\0'; ++column) {
        if (bits[column] == '#') fn(column, row);
      }
    }
  }

  int width_px_;
  int height_px_;
  std::vector<std::uint8_t> rgb_;
};

// ---------------------------------------------------------------------------------------------
// Axes.

struct Range {
  double min = 0.0;
  double max = 1.0;
};

bool finite_point(const PlotSeries& series, std::size_t i) {
  return std::isfinite(series.x[i]) && std::isfinite(series.y[i]);
}

std::size_t point_count(const PlotSeries& series) {
  return std::min(series.x.size(), series.y.size());
}

Range padded_data_range(const PlotPanel& panel, bool x_axis) {
  double low = std::numeric_limits<double>::infinity();
  double high = -std::numeric_limits<double>::infinity();
  for (const PlotSeries& series : panel.series) {
    for (std::size_t i = 0; i < point_count(series); ++i) {
      if (!finite_point(series, i)) continue;
      const double v = x_axis ? series.x[i] : series.y[i];
      low = std::min(low, v);
      high = std::max(high, v);
    }
  }
  if (!(low <= high)) return {-0.05, 1.05};  // no finite data: the unit range, padded
  double span = high - low;
  if (!(span > 0.0) || !std::isfinite(span)) {
    // A constant series still needs a non-empty range; scale it to the value so 1e-6 and 1e6 both
    // get a readable axis.
    span = low != 0.0 ? std::abs(low) * 0.2 : 1.0;
    if (!std::isfinite(span)) span = std::numeric_limits<double>::max() / 4;
    low -= span / 2;
    high += span / 2;
  }
  const double pad = 0.05 * span;
  return {low - pad, high + pad};
}

// The smallest of 1, 2, 5 x 10^k that is >= raw.
double nice_step_at_least(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double normalised = raw / magnitude;
  if (normalised <= 1.0 + 1e-9) return magnitude;
  if (normalised <= 2.0 + 1e-9) return 2.0 * magnitude;
  if (normalised <= 5.0 + 1e-9) return 5.0 * magnitude;
  return 10.0 * magnitude;
}

std::vector<double> ticks_for(const Range& range, double step) {
  std::vector<double> ticks;
  if (!(step > 0.0) || !std::isfinite(step)) return ticks;
  const double first = std::ceil(range.min / step - 1e-9);
  const double last = std::floor(range.max / step + 1e-9);
  for (double k = first; k <= last && ticks.size() < 100; k += 1.0) {
    const double tick = k * step;
    ticks.push_back(std::abs(tick) < step * 1e-6 ? 0.0 : tick);  // no "-0.0" label
  }
  return ticks;
}

// Labels carry as many decimals as the step needs; very large or very fine axes switch to
// exponent notation so labels stay short.
std::string tick_label(double value, double step, const Range& range) {
  const double largest = std::max(std::abs(range.min), std::abs(range.max));
  char buffer[64];
  if (largest >= 1e6 || step < 1e-4) {
    const int digits = std::clamp(
        static_cast<int>(std::floor(std::log10(largest)) - std::floor(std::log10(step))), 0, 6);
    std::snprintf(buffer, sizeof buffer, "%.*e", digits, value);
  } else {
    const int decimals = step >= 1.0 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  }
  return buffer;
}

int widest_label_px(const std::vector<double>& ticks, double step, const Range& range, int scale) {
  int widest = 0;
  for (double tick : ticks) {
    widest = std::max(widest, text_width_px(tick_label(tick, step, range), scale));
  }
  return widest;
}

// Picks the finest nice step whose ticks are at least min_gap_px apart along length_px.
double choose_step(const Range& range, int length_px, int min_gap_px) {
  const double span = range.max - range.min;
  const int max_ticks = std::max(2, length_px / std::max(1, min_gap_px));
  return nice_step_at_least(span / max_ticks);
}

// Sizes derived from the text scale, shared by layout and drawing so they cannot disagree.
struct Metrics {
  int scale;
  int pad_px;
  int tick_px;
  int cap_px;   // height of capitals and digits
  int line_px;  // height including descenders
};

Metrics metrics_for(int height_px) {
  const int scale = height_px >= 300 ? 2 : 1;
  return {scale, 4 * scale, 3 * scale, kCapRows * scale, kGlyphRows * scale};
}

Rect panel_rect(int panel_index, int panel_width_px, int height_px) {
  return {panel_index * panel_width_px, 0, (panel_index + 1) * panel_width_px - 1, height_px - 1};
}

}  // namespace

double PlotLayout::x_to_pixel(double x) const {
  return left_px + (x - x_min) / (x_max - x_min) * (right_px - left_px);
}

double PlotLayout::y_to_pixel(double y) const {
  return bottom_px - (y - y_min) / (y_max - y_min) * (bottom_px - top_px);
}

PlotLayout plot_layout(const PlotPanel& panel, int panel_index, int panel_width_px, int height_px) {
  const Metrics m = metrics_for(height_px);
  const Rect panel_area = panel_rect(panel_index, panel_width_px, height_px);
  PlotLayout layout;
  layout.text_scale = m.scale;

  const Range x_range = padded_data_range(panel, /*x_axis=*/true);
  const Range y_range = padded_data_range(panel, /*x_axis=*/false);
  layout.x_min = x_range.min;
  layout.x_max = x_range.max;
  layout.y_min = y_range.min;
  layout.y_max = y_range.max;

  // Vertical margins do not depend on the labels, so y ticks can be chosen first; their widest
  // label then sets the left margin, and only then is the width known for the x ticks.
  const int top_margin = m.pad_px + (panel.title.empty() ? m.cap_px / 2 : m.cap_px + 2 * m.pad_px);
  const int bottom_margin = m.tick_px + m.pad_px + m.cap_px +
                            (panel.x_label.empty() ? 0 : m.pad_px + m.line_px) + m.pad_px;
  layout.top_px = panel_area.top + top_margin;
  layout.bottom_px = panel_area.bottom - bottom_margin;

  layout.y_tick_step = choose_step(y_range, layout.bottom_px - layout.top_px, 2 * m.cap_px);
  layout.y_ticks = ticks_for(y_range, layout.y_tick_step);
  const int y_label_width = widest_label_px(layout.y_ticks, layout.y_tick_step, y_range, m.scale);
  layout.left_px = panel_area.left + m.pad_px + (panel.y_label.empty() ? 0 : m.line_px + m.pad_px) +
                   y_label_width + m.pad_px + m.tick_px;

  // The last x label is centred on the right edge at worst, so leave half a label of room.
  const int right_margin = std::max(3 * m.pad_px, text_width_px("0.000", m.scale) / 2 + m.pad_px);
  layout.right_px = panel_area.right - right_margin;

  const int x_length = layout.right_px - layout.left_px;
  double step = choose_step(x_range, x_length, 4 * kAdvanceColumns * m.scale);
  // Widen the step until neighbouring labels leave at least two character cells between them.
  for (int attempt = 0; attempt < 8; ++attempt) {
    const std::vector<double> ticks = ticks_for(x_range, step);
    const int needed =
        widest_label_px(ticks, step, x_range, m.scale) + 2 * kAdvanceColumns * m.scale;
    const double gap_px = step / (x_range.max - x_range.min) * x_length;
    if (gap_px >= needed) break;
    step = nice_step_at_least(step * 1.5);
  }
  layout.x_tick_step = step;
  layout.x_ticks = ticks_for(x_range, step);
  return layout;
}

std::array<std::uint8_t, 3> series_colour(std::size_t series_index) {
  // matplotlib's tab10 without its grey, which would read as a grid line.
  static constexpr std::array<Rgb, 9> kPalette = {{{31, 119, 180},
                                                   {255, 127, 14},
                                                   {44, 160, 44},
                                                   {214, 39, 40},
                                                   {148, 103, 189},
                                                   {140, 86, 75},
                                                   {227, 119, 194},
                                                   {188, 189, 34},
                                                   {23, 190, 207}}};
  return kPalette[series_index % kPalette.size()];
}

namespace {

int to_int_px(double value) {
  // Finite data always lies inside the padded range; the clamp only guards the int conversion.
  return static_cast<int>(std::lround(std::clamp(value, -1e6, 1e6)));
}

std::string legend_name(const PlotSeries& series, std::size_t index) {
  return series.name.empty() ? "series " + std::to_string(index + 1) : series.name;
}

// Counts how much of the drawn data falls inside `box`, by sampling every segment about once per
// pixel, so the legend can go to the emptiest corner.
int data_samples_inside(const PlotPanel& panel, const PlotLayout& layout, const Rect& box) {
  int inside = 0;
  for (const PlotSeries& series : panel.series) {
    bool have_previous = false;
    double px0 = 0, py0 = 0;
    for (std::size_t i = 0; i < point_count(series); ++i) {
      if (!finite_point(series, i)) continue;
      const double px = layout.x_to_pixel(series.x[i]), py = layout.y_to_pixel(series.y[i]);
      if (!have_previous) {
        inside += box.contains(to_int_px(px), to_int_px(py));
      } else {
        const int samples =
            std::clamp(static_cast<int>(std::max(std::abs(px - px0), std::abs(py - py0))), 1, 4096);
        for (int s = 1; s <= samples; ++s) {
          const double t = static_cast<double>(s) / samples;
          inside += box.contains(to_int_px(px0 + t * (px - px0)), to_int_px(py0 + t * (py - py0)));
        }
      }
      px0 = px;
      py0 = py;
      have_previous = true;
    }
  }
  return inside;
}

void draw_legend(Canvas& canvas, const PlotPanel& panel, const PlotLayout& layout, const Metrics& m,
                 const Rect& panel_area) {
  if (panel.series.empty()) return;
  int widest_name = 0;
  for (std::size_t i = 0; i < panel.series.size(); ++i) {
    widest_name = std::max(widest_name, text_width_px(legend_name(panel.series[i], i), m.scale));
  }
  const int sample_px = 12 * m.scale;
  const int row_px = m.line_px + m.scale;
  const int width = m.pad_px + sample_px + m.pad_px + widest_name + m.pad_px;
  const int height = 2 * m.pad_px + static_cast<int>(panel.series.size()) * row_px - 2 * m.scale;
  const int inset = m.pad_px;
  const Rect corners[] = {
      {layout.right_px - inset - width, layout.top_px + inset, layout.right_px - inset,
       layout.top_px + inset + height},
      {layout.left_px + inset, layout.top_px + inset, layout.left_px + inset + width,
       layout.top_px + inset + height},
      {layout.right_px - inset - width, layout.bottom_px - inset - height, layout.right_px - inset,
       layout.bottom_px - inset},
      {layout.left_px + inset, layout.bottom_px - inset - height, layout.left_px + inset + width,
       layout.bottom_px - inset},
  };
  Rect box = corners[0];
  int least = std::numeric_limits<int>::max();
  for (const Rect& candidate : corners) {
    const int covered = data_samples_inside(panel, layout, candidate);
    if (covered < least) {
      least = covered;
      box = candidate;
    }
  }
  canvas.fill(box, kWhite, panel_area);
  canvas.outline(box, kLegendBorderGrey, panel_area);
  for (std::size_t i = 0; i < panel.series.size(); ++i) {
    const Rgb colour = series_colour(i);
    const int text_top = box.top + m.pad_px + static_cast<int>(i) * row_px;
    const int sample_y = text_top + m.cap_px / 2 - 1;
    canvas.line(box.left + m.pad_px, sample_y, box.left + m.pad_px + sample_px - 2, sample_y,
                colour, panel_area);
    canvas.text(legend_name(panel.series[i], i), box.left + 2 * m.pad_px + sample_px, text_top,
                m.scale, colour, panel_area);
  }
}

void draw_panel(Canvas& canvas, const PlotPanel& panel, int panel_index, int panel_width_px) {
  const int height_px = canvas.height_px();
  const Metrics m = metrics_for(height_px);
  const Rect panel_area = panel_rect(panel_index, panel_width_px, height_px);
  const PlotLayout layout = plot_layout(panel, panel_index, panel_width_px, height_px);
  const Rect plot_area{layout.left_px, layout.top_px, layout.right_px, layout.bottom_px};
  const Range x_range{layout.x_min, layout.x_max};
  const Range y_range{layout.y_min, layout.y_max};

  for (double tick : layout.x_ticks) {
    const int x = to_int_px(layout.x_to_pixel(tick));
    for (int y = plot_area.top; y <= plot_area.bottom; ++y) canvas.set(x, y, kGridGrey, plot_area);
  }
  for (double tick : layout.y_ticks) {
    const int y = to_int_px(layout.y_to_pixel(tick));
    for (int x = plot_area.left; x <= plot_area.right; ++x) canvas.set(x, y, kGridGrey, plot_area);
  }

  for (std::size_t s = 0; s < panel.series.size(); ++s) {
    const PlotSeries& series = panel.series[s];
    const Rgb colour = series_colour(s);
    bool have_previous = false;
    int x0 = 0, y0 = 0, finite_points = 0;
    for (std::size_t i = 0; i < point_count(series); ++i) {
      if (!finite_point(series, i)) continue;
      const int x1 = to_int_px(layout.x_to_pixel(series.x[i]));
      const int y1 = to_int_px(layout.y_to_pixel(series.y[i]));
      if (have_previous) canvas.line(x0, y0, x1, y1, colour, plot_area);
      x0 = x1;
      y0 = y1;
      have_previous = true;
      ++finite_points;
    }
    if (finite_points == 1) {
      // A lone point has no segment to draw; mark it so the series is not invisible.
      canvas.fill({x0 - m.scale - 1, y0 - m.scale - 1, x0 + m.scale + 1, y0 + m.scale + 1}, colour,
                  plot_area);
    }
  }

  canvas.outline(plot_area, kBlack, panel_area);

  for (double tick : layout.x_ticks) {
    const int x = to_int_px(layout.x_to_pixel(tick));
    for (int y = 1; y <= m.tick_px; ++y) canvas.set(x, plot_area.bottom + y, kBlack, panel_area);
    const std::string label = tick_label(tick, layout.x_tick_step, x_range);
    canvas.text(label, x - text_width_px(label, m.scale) / 2,
                plot_area.bottom + m.tick_px + m.pad_px, m.scale, kBlack, panel_area);
  }
  for (double tick : layout.y_ticks) {
    const int y = to_int_px(layout.y_to_pixel(tick));
    for (int x = 1; x <= m.tick_px; ++x) canvas.set(plot_area.left - x, y, kBlack, panel_area);
    const std::string label = tick_label(tick, layout.y_tick_step, y_range);
    canvas.text(label, plot_area.left - m.tick_px - m.pad_px - text_width_px(label, m.scale),
                y - m.cap_px / 2, m.scale, kBlack, panel_area);
  }

  const int plot_centre_x = (plot_area.left + plot_area.right) / 2;
  const int plot_centre_y = (plot_area.top + plot_area.bottom) / 2;
  if (!panel.title.empty()) {
    const int left = std::max(panel_area.left + m.pad_px,
                              plot_centre_x - text_width_px(panel.title, m.scale) / 2);
    canvas.text(panel.title, left, panel_area.top + m.pad_px, m.scale, kBlack, panel_area);
  }
  if (!panel.x_label.empty()) {
    canvas.text(panel.x_label, plot_centre_x - text_width_px(panel.x_label, m.scale) / 2,
                plot_area.bottom + m.tick_px + m.pad_px + m.cap_px + m.pad_px, m.scale, kBlack,
                panel_area);
  }
  if (!panel.y_label.empty()) {
    const int bottom = std::min(panel_area.bottom - m.pad_px,
                                plot_centre_y + text_width_px(panel.y_label, m.scale) / 2);
    canvas.text_upwards(panel.y_label, panel_area.left + m.pad_px, bottom, m.scale, kBlack,
                        panel_area);
  }

  draw_legend(canvas, panel, layout, m, panel_area);
}

void check_inputs(const std::vector<PlotPanel>& panels, const std::string& path, int panel_width_px,
                  int height_px) {
  if (path.empty()) throw Error("training plot: the output path is empty");
  if (panels.empty()) throw Error(path + ": training plot has no panels");
  if (panel_width_px < kMinPanelWidthPx || height_px < kMinHeightPx) {
    throw Error(path + ": training plot panels must be at least " +
                std::to_string(kMinPanelWidthPx) + "x" + std::to_string(kMinHeightPx) +
                " px, got " + std::to_string(panel_width_px) + "x" + std::to_string(height_px));
  }
  if (static_cast<long long>(panel_width_px) * static_cast<long long>(panels.size()) >
          kMaxImageSidePx ||
      height_px > kMaxImageSidePx) {
    throw Error(path + ": training plot would exceed " + std::to_string(kMaxImageSidePx) +
                " px a side");
  }
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const PlotPanel& panel = panels[p];
    for (std::size_t s = 0; s < panel.series.size(); ++s) {
      const PlotSeries& series = panel.series[s];
      if (series.x.size() != series.y.size()) {
        throw Error(path + ": panel " + std::to_string(p + 1) + " ('" + panel.title +
                    "') series '" + legend_name(series, s) + "' has " +
                    std::to_string(series.x.size()) + " x values but " +
                    std::to_string(series.y.size()) + " y values");
      }
    }
    const PlotLayout layout = plot_layout(panel, static_cast<int>(p), panel_width_px, height_px);
    if (layout.right_px - layout.left_px < kMinPlotAreaPx ||
        layout.bottom_px - layout.top_px < kMinPlotAreaPx) {
      throw Error(path + ": panel " + std::to_string(p + 1) + " ('" + panel.title +
                  "') leaves no room to plot at " + std::to_string(panel_width_px) + "x" +
                  std::to_string(height_px) + " px (tick labels too wide?)");
    }
  }
}

void write_png_atomically(const Canvas& canvas, const std::string& path) {
  io::write_atomically(path, [&](const std::string& temporary) {
    FILE* file = std::fopen(temporary.c_str(), "wb");
    if (file == nullptr) {
      throw Error(path + ": cannot write the training plot (" + std::strerror(errno) + ")");
    }
    // libpng's simplified API reports errors in image.message instead of longjmp-ing through C++
    // frames, which would skip destructors.
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = static_cast<png_uint_32>(canvas.width_px());
    image.height = static_cast<png_uint_32>(canvas.height_px());
    image.format = PNG_FORMAT_RGB;
    const bool encoded = png_image_write_to_stdio(&image, file, /*convert_to_8bit=*/0, canvas.data(),
                                                  /*row_stride=*/0, /*colormap=*/nullptr) != 0;
    const std::string png_message = encoded ? "" : image.message;
    png_image_free(&image);
    const bool closed = std::fclose(file) == 0;
    const int close_errno = errno;
    if (!encoded || !closed) {
      throw Error(path + ": cannot write the training plot (" +
                  (encoded ? std::string(std::strerror(close_errno)) : "libpng: " + png_message) + ")");
    }
  });
}

}  // namespace

void write_plot_png(const std::vector<PlotPanel>& panels, const std::string& path,
                    int panel_width_px, int height_px) {
  check_inputs(panels, path, panel_width_px, height_px);
  Canvas canvas(panel_width_px * static_cast<int>(panels.size()), height_px);
  for (std::size_t p = 0; p < panels.size(); ++p) {
    draw_panel(canvas, panels[p], static_cast<int>(p), panel_width_px);
  }
  write_png_atomically(canvas, path);
}

}  // namespace graft::finetune
