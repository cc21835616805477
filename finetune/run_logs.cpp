#include "finetune/run_logs.h"

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "finetune/training_plot.h"
#include "io/error.h"

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

TrainEventSink metrics_table_sink(const std::string& folder, const std::string& metric,
                                  bool resume) {
  auto file = open_log(folder + "/metrics.csv", resume);
  if (!resume) *file << "epoch,train_loss," << metric << ",learning_rate,seconds\n";
  return [file, metric](const TrainEvent& event) {
    if (event.kind != "epoch_end") return;
    const auto value = event.metrics.find(metric);
    *file << event.epoch << "," << event.loss << ","
          << (value != event.metrics.end() ? std::to_string(value->second) : std::string()) << ","
          << event.learning_rate << "," << event.seconds << "\n"
          << std::flush;
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
