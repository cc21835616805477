#pragma once

// Training curves as an SVG drawing: any browser, the desktop's image viewer or a report shows it,
// text is real text, and writing it takes no drawing library.
#include <string>
#include <vector>

namespace graft::finetune {

// One curve. x and y must have the same length; points where either is NaN or infinite are
// skipped and the curve breaks there.
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

// Where one panel's data lands in the drawing (SVG user units, y down). Exposed so callers and
// tests can find the point of a datum without re-deriving margins.
struct PlotLayout {
  double left = 0.0, top = 0.0, right = 0.0, bottom = 0.0;  // the plot area inside the axes
  // Axis ranges after 5% padding on each side.
  double x_min = 0.0, x_max = 1.0, y_min = 0.0, y_max = 1.0;
  // Ticks are the multiples of a step of 1, 2 or 5 x 10^k inside the range.
  std::vector<double> x_ticks, y_ticks;
  double x_tick_step = 0.0, y_tick_step = 0.0;

  double x_to_drawing(double x) const;
  double y_to_drawing(double y) const;
};

// Layout of panel `panel_index` in a drawing of panels `panel_width` wide and `height` tall.
PlotLayout plot_layout(const PlotPanel& panel, int panel_index, double panel_width, double height);

// The SVG document: the panels side by side, each with axes, tick labels, a title and a legend
// naming each series in its colour. Throws graft::Error naming `where` when a series' x and y
// lengths differ.
std::string plot_svg(const std::vector<PlotPanel>& panels, const std::string& where, double panel_width = 480,
                     double height = 360);

// Writes plot_svg atomically (a reader never sees half a drawing); errors name `path`.
void write_plot_svg(const std::vector<PlotPanel>& panels, const std::string& path, double panel_width = 480,
                    double height = 360);

}  // namespace graft::finetune
