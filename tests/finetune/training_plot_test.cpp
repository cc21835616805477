#include "finetune/training_plot.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <string>
#include <vector>

#include "finetune/run_logs.h"
#include "tests/support/test_support.h"

namespace graft::finetune {
namespace {

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

std::vector<std::string> polylines(const std::string& svg) {
  std::vector<std::string> found;
  const std::regex points("<polyline[^>]* points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), points); it != std::sregex_iterator(); ++it) {
    found.push_back((*it)[1]);
  }
  return found;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// An XML parser of its own reads the drawing, so a malformed file fails here.
void expect_well_formed_svg(const std::string& path, int panels_wide, std::size_t polyline_count) {
  const std::string python = graft::testing::python_with("xml");
  ASSERT_FALSE(python.empty()) << "python3 is needed to parse the SVG";
  std::string output;
  const std::string script =
      "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); "
      "n = '{http://www.w3.org/2000/svg}'; "
      "print(r.tag == n + 'svg', r.get('width'), len(r.findall(n + 'polyline')))";
  ASSERT_EQ(graft::testing::run_command(python + " -c \"" + script + "\" " + path, &output), 0) << output;
  EXPECT_EQ(output, "True " + std::to_string(480 * panels_wide) + ".00 " + std::to_string(polyline_count) + "\n");
}

TEST(TrainingPlot, WritesOnePanelPerGroupAndOneCurvePerSeries) {
  const std::string path = graft::testing::temp_dir() + "/curves.svg";
  write_plot_svg(rising_and_falling_panels(), path);
  expect_well_formed_svg(path, 2, 3);
  const std::string svg = read_file(path);
  for (const char* text : {">val Dice<", ">train loss<", ">Dice and loss<", ">epoch<"}) {
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  }
}

TEST(TrainingPlot, RisingSeriesStartsAndEndsAtItsLayoutPoints) {
  const auto panels = rising_and_falling_panels();
  const std::vector<std::string> curves = polylines(plot_svg(panels, "test"));
  ASSERT_EQ(curves.size(), 3u);
  const PlotLayout layout = plot_layout(panels[0], 0, 480, 360);
  char first[64], last[64];
  std::snprintf(first, sizeof first, "%.2f,%.2f", layout.x_to_drawing(0), layout.y_to_drawing(0.1));
  std::snprintf(last, sizeof last, "%.2f,%.2f", layout.x_to_drawing(19), layout.y_to_drawing(0.9));
  EXPECT_EQ(curves[0].substr(0, curves[0].find(' ')), first);
  EXPECT_EQ(curves[0].substr(curves[0].rfind(' ') + 1), last);
  // Larger y is higher up: the drawing's y grows downwards.
  EXPECT_LT(layout.y_to_drawing(0.9), layout.y_to_drawing(0.1));
  // The second panel lies to the right of the first.
  EXPECT_GT(plot_layout(panels[1], 1, 480, 360).left, layout.right);
}

TEST(TrainingPlot, PadsAxesByFivePercentWithNiceTickSteps) {
  const PlotLayout layout = plot_layout(rising_and_falling_panels()[0], 0, 480, 360);
  EXPECT_NEAR(layout.y_min, 0.1 - 0.045, 1e-12);
  EXPECT_NEAR(layout.y_max, 1.0 + 0.045, 1e-12);
  EXPECT_NEAR(layout.x_min, -0.95, 1e-12);
  EXPECT_NEAR(layout.x_max, 19.95, 1e-12);
  for (double step : {layout.x_tick_step, layout.y_tick_step}) {
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 || std::abs(mantissa - 5) < 1e-9)
        << step;
  }
  ASSERT_GE(layout.y_ticks.size(), 3u);
  for (double tick : layout.y_ticks) {
    EXPECT_GE(tick, layout.y_min);
    EXPECT_LE(tick, layout.y_max);
    EXPECT_NEAR(std::remainder(tick, layout.y_tick_step), 0.0, 1e-9);
  }
}

TEST(TrainingPlot, NonFinitePointsBreakTheCurve) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  PlotPanel panel{"loss", "epoch", "loss", {{"loss", {0, 1, 2, 3, 4}, {1.0, 0.8, nan, 0.5, 0.4}}}};
  const std::vector<std::string> curves = polylines(plot_svg({panel}, "test"));
  ASSERT_EQ(curves.size(), 2u);
  EXPECT_EQ(std::count(curves[0].begin(), curves[0].end(), ','), 2);
  EXPECT_EQ(std::count(curves[1].begin(), curves[1].end(), ','), 2);
}

TEST(TrainingPlot, TextWithMarkupCharactersStaysWellFormed) {
  const std::string path = graft::testing::temp_dir() + "/escaped.svg";
  write_plot_svg({{"a < b & \"c\"", "x > 0", "y", {{"p<q", {0, 1}, {0, 1}}}}}, path);
  expect_well_formed_svg(path, 1, 1);
  EXPECT_NE(read_file(path).find("a &lt; b &amp; &quot;c&quot;"), std::string::npos);
}

TEST(TrainingPlot, EmptySeriesListStillDrawsAxes) {
  const std::string svg = plot_svg({{"nothing yet", "epoch", "loss", {}}}, "test");
  EXPECT_TRUE(polylines(svg).empty());
  EXPECT_NE(svg.find("<rect x="), std::string::npos);
  EXPECT_NE(svg.find(">nothing yet<"), std::string::npos);
}

TEST(TrainingPlot, UnwritablePathThrowsErrorNamingThePath) {
  const std::string path = graft::testing::temp_dir() + "/no_such_folder/curves.svg";
  const std::string message = graft::testing::error_message([&] { write_plot_svg(rising_and_falling_panels(), path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST(TrainingPlot, MismatchedSeriesLengthsThrowErrorNamingPathAndSeries) {
  const std::string path = graft::testing::temp_dir() + "/loss.svg";
  const std::string message =
      graft::testing::error_message([&] { write_plot_svg({{"t", "x", "y", {{"val Dice", {0, 1, 2}, {0.5}}}}}, path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("val Dice"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TrainingPlot, LeavesOnlyTheFinishedFileBehind) {
  const std::string folder = graft::testing::temp_dir();
  write_plot_svg(rising_and_falling_panels(), folder + "/curves.svg");
  write_plot_svg(rising_and_falling_panels(), folder + "/curves.svg");
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) names.push_back(entry.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"curves.svg"});
}

TrainEvent epoch_end(int epoch, double loss, double dice) {
  TrainEvent event{"epoch_end", epoch};
  event.loss = loss;
  event.learning_rate = 0.01;
  event.seconds = 2.0 * (epoch + 1);
  event.metrics["train_loss"] = loss;
  if (!std::isnan(dice)) event.metrics["val_dice"] = dice;
  return event;
}

TEST(RunLogs, ResumedRunAppendsToItsLogsAndItsPlotKeepsTheEarlierEpochs) {
  const std::string folder = graft::testing::temp_dir();
  {
    const auto table = metrics_table_sink(folder, "val_dice", false);
    const auto events = events_log_sink(folder, false);
    TrainEvent weights{"weights"};
    weights.note = "loaded 42 tensors";
    events(weights);
    for (const TrainEvent& event : {epoch_end(0, 0.9, NAN), TrainEvent{"step", 1, 0}, epoch_end(1, 0.7, 0.4)}) {
      table(event);
      events(event);
    }
  }
  // Resumed: the sinks append, and the plot starts from the curves the checkpoint holds.
  const auto table = metrics_table_sink(folder, "val_dice", true);
  const auto events = events_log_sink(folder, true);
  const auto plot = training_plot_sink(folder, "val_dice", "validation Dice", {0.9, 0.7}, {NAN, 0.4});
  for (const auto& sink : {table, events, plot}) sink(epoch_end(2, 0.5, 0.6));

  EXPECT_EQ(read_file(folder + "/metrics.csv"),
            "epoch,train_loss,val_dice,learning_rate,seconds\n0,0.9,,0.01,2\n1,0.7,0.400000,0.01,4\n"
            "2,0.5,0.600000,0.01,6\n");
  std::ifstream log(folder + "/events.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(log, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 4u) << "steps are not logged";
  EXPECT_EQ(lines[0]["kind"], "weights");
  EXPECT_EQ(lines[0]["report"], "loaded 42 tensors");
  EXPECT_EQ(lines[3]["epoch"], 2);
  EXPECT_EQ(lines[3]["metrics"]["val_dice"], 0.6);
  // Loss over three epochs; Dice over the two validated ones (the NaN epoch breaks nothing).
  const std::vector<std::string> curves = polylines(read_file(folder + "/training.svg"));
  ASSERT_EQ(curves.size(), 2u);
  EXPECT_EQ(std::count(curves[0].begin(), curves[0].end(), ','), 3);
  EXPECT_EQ(std::count(curves[1].begin(), curves[1].end(), ','), 2);
}

}  // namespace
}  // namespace graft::finetune

namespace graft::finetune {
namespace {

TEST(RunLogs, MetricNamesSortNumbersAsNumbers) {
  std::vector<std::string> names{"val_dice_10", "val_dice_2", "val_dice", "val_dice_100", "val_dice_1", "val_auc"};
  std::sort(names.begin(), names.end(), metric_order);
  EXPECT_EQ(names, (std::vector<std::string>{"val_auc", "val_dice", "val_dice_1", "val_dice_2", "val_dice_10",
                                             "val_dice_100"}));
}

TEST(RunLogs, ManyClassesTableHasEveryClassInNumericOrderAndTheEpochLineOnlyTheExtremes) {
  TrainEvent event = epoch_end(0, 0.5, 0.3);
  for (int c = 1; c <= 12; ++c) event.metrics["val_dice_" + std::to_string(c)] = 0.05 * c;
  event.metrics["val_dice_7"] = 0.99;  // best, though not the largest index
  const std::string folder = graft::testing::temp_dir();
  metrics_table_sink(folder, "val_dice", false)(event);
  const std::string table = read_file(folder + "/metrics.csv");
  const std::string header = table.substr(0, table.find('\n'));
  std::string expected_header = "epoch,train_loss,val_dice,learning_rate,seconds";
  for (int c = 1; c <= 12; ++c) expected_header += ",val_dice_" + std::to_string(c);
  EXPECT_EQ(header, expected_header);
  EXPECT_NE(table.find(",0.990000,"), std::string::npos);

  EXPECT_EQ(metrics_summary(event.metrics),
            "  val_dice 0.3000  worst: val_dice_1 0.0500 val_dice_2 0.1000 val_dice_3 0.1500"
            "  best: val_dice_7 0.9900 val_dice_11 0.5500 val_dice_12 0.6000");
  TrainEvent few = epoch_end(0, 0.5, 0.3);
  for (int c = 1; c <= 3; ++c) few.metrics["val_dice_" + std::to_string(c)] = 0.1 * c;
  EXPECT_EQ(metrics_summary(few.metrics), "  val_dice 0.3000  val_dice_1 0.1000  val_dice_2 0.2000  val_dice_3 0.3000");
}

}  // namespace
}  // namespace graft::finetune
