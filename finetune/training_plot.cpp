#include "finetune/training_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "io/atomic_file.h"
#include "io/error.h"

namespace graft::finetune {
namespace {

// matplotlib's tab10 without its grey, which would read as a grid line.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#bcbd22", "#17becf"};
constexpr double kFontSize = 12.0;
constexpr double kTickLength = 5.0;

struct Range {
  double min, max;
};

bool finite_point(const PlotSeries& series, std::size_t i) {
  return std::isfinite(series.x[i]) && std::isfinite(series.y[i]);
}

Range padded_data_range(const PlotPanel& panel, bool x_axis) {
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const PlotSeries& series : panel.series) {
    for (std::size_t i = 0; i < std::min(series.x.size(), series.y.size()); ++i) {
      if (!finite_point(series, i)) continue;
      const double v = x_axis ? series.x[i] : series.y[i];
      low = std::min(low, v);
      high = std::max(high, v);
    }
  }
  if (!(low <= high)) return {-0.05, 1.05};  // no finite data: the unit range, padded
  double span = high - low;
  if (!(span > 0.0)) {
    // A constant series still needs a range; scale it to the value so 1e-6 and 1e6 both read.
    span = low != 0.0 ? std::abs(low) * 0.2 : 1.0;
    low -= span / 2;
    high += span / 2;
  }
  return {low - 0.05 * span, high + 0.05 * span};
}

// The smallest of 1, 2, 5 x 10^k that is >= raw.
double nice_step_at_least(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double factor : {1.0, 2.0, 5.0}) {
    if (raw / magnitude <= factor + 1e-9) return factor * magnitude;
  }
  return 10.0 * magnitude;
}

std::vector<double> ticks_for(const Range& range, double step) {
  std::vector<double> ticks;
  if (!(step > 0.0) || !std::isfinite(step)) return ticks;
  for (double k = std::ceil(range.min / step - 1e-9); k <= std::floor(range.max / step + 1e-9) && ticks.size() < 100;
       k += 1.0) {
    ticks.push_back(std::abs(k) < 0.5 ? 0.0 : k * step);  // no "-0" label
  }
  return ticks;
}

// As many decimals as the step needs; very large or very fine axes in exponent notation.
std::string tick_label(double value, double step, const Range& range) {
  const double largest = std::max(std::abs(range.min), std::abs(range.max));
  char text[64];
  if (largest >= 1e6 || step < 1e-4) {
    std::snprintf(text, sizeof text, "%.2e", value);
  } else {
    const int decimals = step >= 1.0 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
  }
  return text;
}

std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", value);
  return text;
}

void write_text(std::ostringstream& svg, double x, double y, const std::string& text, const char* anchor,
                const std::string& extra = "") {
  svg << "<text x=\"" << number(x) << "\" y=\"" << number(y) << "\" text-anchor=\"" << anchor << "\"" << extra << ">"
      << escaped(text) << "</text>\n";
}

void draw_panel(std::ostringstream& svg, const PlotPanel& panel, const PlotLayout& layout) {
  const Range x_range{layout.x_min, layout.x_max}, y_range{layout.y_min, layout.y_max};
  svg << "<rect x=\"" << number(layout.left) << "\" y=\"" << number(layout.top) << "\" width=\""
      << number(layout.right - layout.left) << "\" height=\"" << number(layout.bottom - layout.top)
      << "\" fill=\"none\" stroke=\"black\"/>\n";
  for (double tick : layout.x_ticks) {
    const double x = layout.x_to_drawing(tick);
    svg << "<line x1=\"" << number(x) << "\" y1=\"" << number(layout.bottom) << "\" x2=\"" << number(x) << "\" y2=\""
        << number(layout.bottom + kTickLength) << "\" stroke=\"black\"/>\n";
    write_text(svg, x, layout.bottom + kTickLength + kFontSize, tick_label(tick, layout.x_tick_step, x_range), "middle");
  }
  for (double tick : layout.y_ticks) {
    const double y = layout.y_to_drawing(tick);
    svg << "<line x1=\"" << number(layout.left - kTickLength) << "\" y1=\"" << number(y) << "\" x2=\""
        << number(layout.left) << "\" y2=\"" << number(y) << "\" stroke=\"black\"/>\n";
    write_text(svg, layout.left - kTickLength - 2, y + kFontSize / 3, tick_label(tick, layout.y_tick_step, y_range),
               "end");
  }
  const double middle_x = (layout.left + layout.right) / 2, middle_y = (layout.top + layout.bottom) / 2;
  write_text(svg, middle_x, layout.top - kFontSize / 2, panel.title, "middle", " font-weight=\"bold\"");
  write_text(svg, middle_x, layout.bottom + kTickLength + 2.5 * kFontSize, panel.x_label, "middle");
  const double y_label_x = layout.left - 4.5 * kFontSize;
  write_text(svg, y_label_x, middle_y, panel.y_label, "middle",
             " transform=\"rotate(-90 " + number(y_label_x) + " " + number(middle_y) + ")\"");
  for (std::size_t s = 0; s < panel.series.size(); ++s) {
    const PlotSeries& series = panel.series[s];
    const char* colour = kPalette[s % std::size(kPalette)];
    // One polyline per run of finite points: a NaN breaks the curve.
    std::string points;
    auto flush = [&] {
      if (!points.empty()) {
        svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"" << points << "\"/>\n";
      }
      points.clear();
    };
    for (std::size_t i = 0; i < series.x.size(); ++i) {
      if (!finite_point(series, i)) {
        flush();
        continue;
      }
      points += (points.empty() ? "" : " ") + number(layout.x_to_drawing(series.x[i])) + "," +
                number(layout.y_to_drawing(series.y[i]));
    }
    flush();
    const double legend_y = layout.top + (s + 1) * 1.4 * kFontSize;
    svg << "<line x1=\"" << number(layout.right - 110) << "\" y1=\"" << number(legend_y - kFontSize / 3) << "\" x2=\""
        << number(layout.right - 90) << "\" y2=\"" << number(legend_y - kFontSize / 3) << "\" stroke=\"" << colour
        << "\" stroke-width=\"2\"/>\n";
    write_text(svg, layout.right - 85, legend_y, series.name.empty() ? "series " + std::to_string(s + 1) : series.name,
               "start");
  }
}

}  // namespace

double PlotLayout::x_to_drawing(double x) const { return left + (x - x_min) / (x_max - x_min) * (right - left); }

double PlotLayout::y_to_drawing(double y) const { return bottom - (y - y_min) / (y_max - y_min) * (bottom - top); }

PlotLayout plot_layout(const PlotPanel& panel, int panel_index, double panel_width, double height) {
  PlotLayout layout;
  const double panel_left = panel_index * panel_width;
  layout.left = panel_left + 6 * kFontSize;
  layout.right = panel_left + panel_width - 2 * kFontSize;
  layout.top = 2.5 * kFontSize;
  layout.bottom = height - 4 * kFontSize;
  const Range x_range = padded_data_range(panel, true), y_range = padded_data_range(panel, false);
  layout.x_min = x_range.min;
  layout.x_max = x_range.max;
  layout.y_min = y_range.min;
  layout.y_max = y_range.max;
  // About one x tick per 80 units and one y tick per 40.
  layout.x_tick_step = nice_step_at_least((x_range.max - x_range.min) / std::max(2.0, (layout.right - layout.left) / 80));
  layout.y_tick_step = nice_step_at_least((y_range.max - y_range.min) / std::max(2.0, (layout.bottom - layout.top) / 40));
  layout.x_ticks = ticks_for(x_range, layout.x_tick_step);
  layout.y_ticks = ticks_for(y_range, layout.y_tick_step);
  return layout;
}

std::string plot_svg(const std::vector<PlotPanel>& panels, const std::string& where, double panel_width,
                     double height) {
  for (const PlotPanel& panel : panels) {
    for (const PlotSeries& series : panel.series) {
      if (series.x.size() != series.y.size()) {
        throw Error(where + ": panel '" + panel.title + "' series '" + series.name + "' has " +
                    std::to_string(series.x.size()) + " x values but " + std::to_string(series.y.size()) +
                    " y values");
      }
    }
  }
  const double width = panel_width * std::max<std::size_t>(1, panels.size());
  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << number(width) << "\" height=\"" << number(height)
      << "\" viewBox=\"0 0 " << number(width) << " " << number(height) << "\" font-family=\"sans-serif\" font-size=\""
      << kFontSize << "\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    draw_panel(svg, panels[p], plot_layout(panels[p], static_cast<int>(p), panel_width, height));
  }
  svg << "</svg>\n";
  return svg.str();
}

void write_plot_svg(const std::vector<PlotPanel>& panels, const std::string& path, double panel_width, double height) {
  io::write_text_atomically(path, plot_svg(panels, path, panel_width, height));
}

}  // namespace graft::finetune
