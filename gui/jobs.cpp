#include "gui/jobs.h"

#include "finetune/tasks/detection/detection_training.h"
#include "finetune/inference/predictor.h"
#include "finetune/run_config.h"
#include "finetune/run_task.h"
#include "finetune/transferability.h"
#include "io/segment_names.h"

namespace graft::gui {

TrainingJob::TrainingJob(finetune::RunConfig config, bool resume, QObject* parent)
    : QThread(parent), config_(std::move(config)), resume_(resume) {}

void TrainingJob::run() {
  const finetune::TrainEventSink forward = [this](const finetune::TrainEvent& event) {
    Q_EMIT progress(event);
    if (event.kind == "step" && cancel_requested_) throw finetune::TrainingCancelled{};
  };
  try {
    const finetune::TrainResult result = finetune::train_task(config_, {forward}, resume_);
    const QString output = QString::fromStdString(config_.output);
    if (result.cancelled) {
      Q_EMIT succeeded(QString("cancelled: checkpoint %1/checkpoint.pt; Resume continues from the next batch").arg(output));
    } else {
      Q_EMIT succeeded(QString("done: best %1 %2 at epoch %3; model folder %4")
                         .arg(QString::fromStdString(result.metric))
                         .arg(result.best_val_metric, 0, 'f', 4)
                         .arg(result.best_epoch + 1)
                         .arg(output));
    }
  } catch (const std::exception& error) {
    Q_EMIT failed(QString::fromStdString(error.what()));
  }
}

PredictionJob::PredictionJob(QString model_folder, std::shared_ptr<const io::Image> image, QString source,
                             QObject* parent)
    : QThread(parent), model_folder_(std::move(model_folder)), image_(std::move(image)), source_(std::move(source)) {}

void PredictionJob::run() {
  try {
    const finetune::ModelFolder model(model_folder_.toStdString());
    PredictionResult result;
    result.task = model.task();
    result.class_names = model.class_names();
    // Segmentation names label values 1, 2, ...; an imported nnU-Net lists background first.
    if (model.task() == finetune::Task::kSegmentation) {
      result.class_names = io::foreground_class_names(model.class_names(), model.config().classes);
    }
    switch (model.task()) {
      case finetune::Task::kDetection:
        result.boxes = finetune::Detector(model).detect(*image_, source_.toStdString());
        result.score_threshold = model.config().detection.score_threshold;
        break;
      case finetune::Task::kSegmentation:
        result.labels = std::make_shared<io::Image>(finetune::Predictor(model).predict(*image_).labels);
        break;
      default:
        throw std::runtime_error(model.path() + ": a " + finetune::task_name(model.task()) +
                                 " model gives no overlay; `graft predict` writes its probability table");
    }
    Q_EMIT succeeded(result);
  } catch (const std::exception& error) {
    Q_EMIT failed(QString::fromStdString(error.what()));
  }
}

RankJob::RankJob(finetune::RunConfig settings, std::vector<std::string> backbones, std::vector<std::string> weights,
                 QObject* parent)
    : QThread(parent), settings_(std::move(settings)), backbones_(std::move(backbones)), weights_(std::move(weights)) {}

void RankJob::run() {
  try {
    finetune::RankRequest request;
    request.settings = settings_;
    request.task = settings_.task;
    request.backbones = backbones_;
    request.weights = weights_;
    const auto rows = finetune::rank_backbones(
        request, [this](const std::string& step) { Q_EMIT progress(QString::fromStdString(step)); });
    QList<RankedBackbone> ranking;
    for (const auto& row : rows) {
      ranking.push_back({QString::fromStdString(row.backbone), row.logme, row.samples, row.seconds});
    }
    Q_EMIT succeeded(ranking);
  } catch (const std::exception& error) {
    Q_EMIT failed(QString::fromStdString(error.what()));
  }
}

}  // namespace graft::gui
