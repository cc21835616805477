#include "finetune/run_logs.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "finetune/training_plot.h"
#include "io/error.h"
#include "io/text.h"

namespace graft::finetune {
namespace {

std::shared_ptr<std::ofstream> open_log(const std::string& path, bool resume) {
  auto file = std::make_shared<std::ofstream>(path, resume ? std::ios::app : std::ios::trunc);
  if (!*file) throw Error(path + ": cannot write the run's log");
  return file;
}

}  // namespace

TrainEventSink events_log_sink(const std::string& folder, bool resume) {
  auto file = open_log(folder + "/events.jsonl", resume);
  return [file](const TrainEvent& event) {
    if (event.kind == "step") return;
    nlohmann::json line{{"kind", event.kind},
                        {"epoch", event.epoch},
                        {"seconds", event.seconds},
                        {"loss", event.loss},
                        {"learning_rate", event.learning_rate},
                        {"metrics", event.metrics}};
    if (!event.path.empty()) line["path"] = event.path;
    if (!event.note.empty()) line["report"] = event.note;
    *file << line.dump() << "\n" << std::flush;
  };
}

bool metric_order(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool digit_a = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
    const bool digit_b = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
    if (digit_a && digit_b) {
      std::size_t end_a = i, end_b = j;
      while (end_a < a.size() && std::isdigit(static_cast<unsigned char>(a[end_a]))) ++end_a;
      while (end_b < b.size() && std::isdigit(static_cast<unsigned char>(b[end_b]))) ++end_b;
      const std::string number_a = a.substr(i, end_a - i), number_b = b.substr(j, end_b - j);
      // Compared as numbers of any length: the shorter (leading zeros aside) is smaller.
      const auto significant = [](const std::string& n) { return n.substr(std::min(n.find_first_not_of('0'), n.size())); };
      const std::string sa = significant(number_a), sb = significant(number_b);
      if (sa.size() != sb.size()) return sa.size() < sb.size();
      if (sa != sb) return sa < sb;
      i = end_a;
      j = end_b;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

namespace {

// "val_dice_12" -> ("val_dice", true); names without a trailing _NUMBER are not per-class.
std::pair<std::string, bool> class_family(const std::string& name) {
  const std::size_t underscore = name.rfind('_');
  if (underscore == std::string::npos || underscore + 1 == name.size()) return {name, false};
  for (std::size_t k = underscore + 1; k < name.size(); ++k) {
    if (!std::isdigit(static_cast<unsigned char>(name[k]))) return {name, false};
  }
  return {name.substr(0, underscore), true};
}

std::string format_metric(const std::string& separator, const std::string& name, double value) {
  char text[32];
  std::snprintf(text, sizeof(text), " %.4f", value);
  return separator + name + text;
}

}  // namespace

std::string metrics_summary(const std::map<std::string, double>& metrics, std::size_t shown) {
  std::vector<std::string> names;
  std::map<std::string, std::vector<std::string>> families;
  for (const auto& [name, value] : metrics) {
    if (name.rfind("val_", 0) != 0) continue;
    names.push_back(name);
    const auto [family, per_class] = class_family(name);
    if (per_class) families[family].push_back(name);
  }
  std::sort(names.begin(), names.end(), metric_order);
  std::string line;
  std::set<std::string> summarised;
  for (const std::string& name : names) {
    const auto [family, per_class] = class_family(name);
    if (!per_class || families[family].size() <= shown) {
      line += format_metric("  ", name, metrics.at(name));
      continue;
    }
    if (!summarised.insert(family).second) continue;
    std::vector<std::string> members = families[family];
    // Worst first; ties keep numeric order, so the listing is the same from run to run.
    std::stable_sort(members.begin(), members.end(), metric_order);
    std::stable_sort(members.begin(), members.end(),
                     [&](const std::string& x, const std::string& y) { return metrics.at(x) < metrics.at(y); });
    const std::size_t each = std::max<std::size_t>(1, shown / 2);
    std::vector<std::string> worst(members.begin(), members.begin() + each);
    std::vector<std::string> best(members.end() - each, members.end());
    std::sort(worst.begin(), worst.end(), metric_order);
    std::sort(best.begin(), best.end(), metric_order);
    line += "  worst:";
    for (const std::string& member : worst) line += format_metric(" ", member, metrics.at(member));
    line += "  best:";
    for (const std::string& member : best) line += format_metric(" ", member, metrics.at(member));
  }
  return line;
}

TrainEventSink metrics_table_sink(const std::string& folder, const std::string& metric,
                                  bool resume) {
  const std::string path = folder + "/metrics.csv";
  // Columns after the fixed ones: from the header of the table being continued, or else from the
  // first epoch's metrics, when the header is written.
  auto extra_columns = std::make_shared<std::vector<std::string>>();
  auto header_written = std::make_shared<bool>(false);
  if (resume) {
    std::ifstream existing(path);
    std::string header;
    if (std::getline(existing, header) && !header.empty()) {
      const std::vector<std::string> cells = io::split_csv_line(header);
      if (cells.size() > 5) extra_columns->assign(cells.begin() + 5, cells.end());
      *header_written = true;
    }
  }
  auto file = open_log(path, resume);
  return [file, metric, extra_columns, header_written](const TrainEvent& event) {
    if (event.kind != "epoch_end") return;
    if (!*header_written) {
      for (const auto& entry : event.metrics) {
        if (entry.first != metric && entry.first != "train_loss") extra_columns->push_back(entry.first);
      }
      std::sort(extra_columns->begin(), extra_columns->end(), metric_order);
      *file << "epoch,train_loss," << metric << ",learning_rate,seconds";
      for (const std::string& column : *extra_columns) *file << "," << column;
      *file << "\n";
      *header_written = true;
    }
    const auto cell = [&](const std::string& name) {
      const auto value = event.metrics.find(name);
      return value != event.metrics.end() ? std::to_string(value->second) : std::string();
    };
    *file << event.epoch << "," << event.loss << "," << cell(metric) << "," << event.learning_rate << ","
          << event.seconds;
    for (const std::string& column : *extra_columns) *file << "," << cell(column);
    *file << "\n" << std::flush;
  };
}

TrainEventSink training_plot_sink(const std::string& folder, const std::string& metric,
                                  const std::string& metric_label,
                                  std::vector<double> loss_per_epoch,
                                  std::vector<double> metric_per_epoch) {
  struct Curves {
    std::vector<double> losses, metrics;
  };
  auto curves =
      std::make_shared<Curves>(Curves{std::move(loss_per_epoch), std::move(metric_per_epoch)});
  return [curves, folder, metric, metric_label](const TrainEvent& event) {
    if (event.kind != "epoch_end") return;
    const auto value = event.metrics.find(metric);
    const bool validated = value != event.metrics.end();
    curves->losses.push_back(event.loss);
    curves->metrics.push_back(validated ? value->second : NAN);
    std::vector<double> epochs;
    for (std::size_t e = 0; e < curves->losses.size(); ++e) epochs.push_back(e + 1.0);
    std::vector<PlotPanel> panels{
        {"training loss", "epoch", "loss", {{"train", epochs, curves->losses}}}};
    if (validated)
      panels.push_back({metric_label, "epoch", metric, {{"val", epochs, curves->metrics}}});
    write_plot_svg(panels, folder + "/training.svg");
  };
}

}  // namespace graft::finetune
