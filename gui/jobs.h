#pragma once

// Long work off the UI thread: training, prediction and backbone ranking run in their own QThread and report
// through queued signals, so the window keeps drawing. This header keeps LibTorch out of the
// widgets' translation units; only jobs.cpp includes it.
#include <QList>
#include <QString>
#include <QThread>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "finetune/model_folder.h"
#include "finetune/run_config.h"
#include "finetune/train_events.h"
#include "io/boxes.h"
#include "io/image.h"

namespace graft::gui {

class TrainingJob : public QThread {
  Q_OBJECT

 public:
  TrainingJob(finetune::RunConfig config, bool resume, QObject* parent = nullptr);
  // Thread-safe: the run stops after its current step and leaves a checkpoint to resume from.
  void cancel() { cancel_requested_ = true; }

 Q_SIGNALS:
  void progress(const graft::finetune::TrainEvent& event);
  void succeeded(const QString& summary);
  void failed(const QString& message);

 protected:
  void run() override;

 private:
  finetune::RunConfig config_;
  bool resume_;
  std::atomic<bool> cancel_requested_{false};
};

struct PredictionResult {
  finetune::Task task = finetune::Task::kSegmentation;  // segmentation or detection
  std::shared_ptr<io::Image> labels;    // segmentation: on the input's grid
  std::vector<io::Box> boxes;           // detection: on the input's grid
  double score_threshold = 0.0;         // detection: the model's detection.score_threshold
  std::vector<std::string> class_names;
};

class PredictionJob : public QThread {
  Q_OBJECT

 public:
  PredictionJob(QString model_folder, std::shared_ptr<const io::Image> image, QString source, QObject* parent = nullptr);

 Q_SIGNALS:
  void succeeded(const graft::gui::PredictionResult& result);
  void failed(const QString& message);

 protected:
  void run() override;

 private:
  QString model_folder_;
  std::shared_ptr<const io::Image> image_;
  QString source_;
};

// One backbone's LogME score on the dataset (finetune/transferability.h), best first.
struct RankedBackbone {
  QString backbone;
  double logme = 0.0;
  qint64 samples = 0;
  double seconds = 0.0;
};

// `graft rank` off the UI thread: each backbone in `backbones`, with its checkpoint in `weights`
// ("" for random weights), embeds the dataset `settings` names through its own Contract, and LogME
// scores it.
class RankJob : public QThread {
  Q_OBJECT

 public:
  RankJob(finetune::RunConfig settings, std::vector<std::string> backbones, std::vector<std::string> weights,
          QObject* parent = nullptr);

 Q_SIGNALS:
  void progress(const QString& step);
  void succeeded(const QList<graft::gui::RankedBackbone>& ranking);
  void failed(const QString& message);

 protected:
  void run() override;

 private:
  finetune::RunConfig settings_;
  std::vector<std::string> backbones_, weights_;
};

}  // namespace graft::gui

Q_DECLARE_METATYPE(graft::finetune::TrainEvent)
Q_DECLARE_METATYPE(graft::gui::PredictionResult)
Q_DECLARE_METATYPE(graft::gui::RankedBackbone)
