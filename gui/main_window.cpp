#include "gui/main_window.h"

#include <QAction>
#include <QApplication>
#include <QChart>
#include <QChartView>
#include <QCloseEvent>
#include <QComboBox>
#include <QDockWidget>
#include <QDoubleSpinBox>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QSlider>
#include <QSpinBox>
#include <QStatusBar>
#include <QTabWidget>
#include <QTableWidget>
#include <QTextEdit>
#include <QToolBar>
#include <QValueAxis>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include "backbones/registry.h"
#include "datasets/manifest.h"
#include "finetune/run_config.h"
#include "io/dicom/dicom_seg.h"
#include "io/error.h"
#include "io/hdf5/hdf5_file.h"
#include "io/image_file.h"
#include "io/text.h"
#include "preprocess/contract.h"
#include "preprocess/plan.h"

namespace graft::gui {
namespace {

QString text_of(const std::string& value) { return QString::fromStdString(value); }

// The validation metric a run reports, in the order the tasks choose theirs.
std::optional<std::pair<std::string, double>> headline_metric(const std::map<std::string, double>& metrics) {
  for (const char* name : {"val_dice", "val_froc", "val_map_50", "val_accuracy", "val_f1_micro"}) {
    const auto found = metrics.find(name);
    if (found != metrics.end()) return *found;
  }
  return std::nullopt;
}

QString duration_text(double seconds) {
  const int total = static_cast<int>(std::lround(std::max(0.0, seconds)));
  return total >= 3600 ? QString("%1 h %2 min").arg(total / 3600).arg(total % 3600 / 60)
                       : QString("%1 min %2 s").arg(total / 60).arg(total % 60);
}

}  // namespace

const std::vector<WindowPreset>& ct_window_presets() {
  static const std::vector<WindowPreset> presets{
      {"CT lung", {-600.0, 1500.0}}, {"CT soft tissue", {40.0, 400.0}}, {"CT bone", {400.0, 1800.0}}};
  return presets;
}

Window automatic_window(const io::Image& image) {
  const std::int64_t count = image.voxels_per_channel();
  const std::int64_t stride = std::max<std::int64_t>(1, count / 200000);
  std::vector<double> sample;
  for (std::int64_t i = 0; i < count; i += stride) {
    const double value = image.value_at(i);
    if (std::isfinite(value)) sample.push_back(value);
  }
  if (sample.empty()) return {0.0, 1.0};
  auto at = [&](double fraction) {
    const auto k = static_cast<std::size_t>(fraction * static_cast<double>(sample.size() - 1));
    std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(k), sample.end());
    return sample[k];
  };
  const double low = at(0.005), high = at(0.995);
  return {(low + high) / 2, std::max(high - low, 1e-6)};
}

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  qRegisterMetaType<finetune::TrainEvent>();
  qRegisterMetaType<PredictionResult>();
  qRegisterMetaType<RankedBackbone>();
  qRegisterMetaType<QList<RankedBackbone>>();
  setWindowTitle("graft");
  setAcceptDrops(true);
  resize(1500, 950);
  choose_item = [this](const QString& title, const QStringList& items) {
    bool ok = false;
    const QString item = QInputDialog::getItem(this, title, title, items, 0, false, &ok);
    return ok ? item : QString();
  };

  // Views: axial | sagittal over coronal | (hover readout), linked through one crosshair.
  auto* central = new QWidget;
  auto* grid = view_grid_ = new QGridLayout(central);
  grid->setContentsMargins(2, 2, 2, 2);
  grid->setSpacing(2);
  axial_ = new SliceView(Plane::kAxial);
  coronal_ = new SliceView(Plane::kCoronal);
  sagittal_ = new SliceView(Plane::kSagittal);
  grid->addWidget(axial_, 0, 0);
  grid->addWidget(sagittal_, 0, 1);
  grid->addWidget(coronal_, 1, 0);
  hover_ = new QLabel("Open a scan: File > Open, or drop a file here.");
  hover_->setObjectName("hover");
  hover_->setWordWrap(true);
  hover_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  hover_->setMargin(8);
  grid->addWidget(hover_, 1, 1);
  for (SliceView* view : views()) {
    connect(view, &SliceView::crosshair_requested, this, &MainWindow::set_crosshair);
    connect(view, &SliceView::hovered, this, &MainWindow::show_hover);
    connect(view, &SliceView::window_dragged, this, &MainWindow::apply_window);
  }
  setCentralWidget(central);

  // File menu and toolbar.
  QMenu* file = menuBar()->addMenu("&File");
  QAction* open_file = file->addAction("&Open file...", this, [this] {
    const QString path = QFileDialog::getOpenFileName(
        this, "Open an image", {}, "Images (*.nii *.nii.gz *.nrrd *.nhdr *.dcm *.tif *.tiff *.h5 *.hdf5 *.nc *.nc4 *.npy *.png *.jpg);;All files (*)");
    if (!path.isEmpty()) open_path(path);
  });
  open_file->setShortcut(QKeySequence::Open);
  QAction* open_folder = file->addAction("Open &DICOM folder...", this, [this] {
    const QString path = QFileDialog::getExistingDirectory(this, "Open a DICOM folder");
    if (!path.isEmpty()) open_path(path);
  });
  recent_menu_ = file->addMenu("Open &recent");
  rebuild_recent_menu();
  file->addAction("&Save prediction...", this, [this] {
    if (!image_) return;
    const QString path = QFileDialog::getSaveFileName(this, "Save the prediction", {});
    if (!path.isEmpty()) save_prediction(path);
  });
  file->addSeparator();
  file->addAction("&Quit", this, &QWidget::close);

  QToolBar* tools = addToolBar("View");
  tools->setObjectName("view_toolbar");
  tools->addAction(open_file);
  tools->addAction(open_folder);
  tools->addSeparator();
  tools->addWidget(new QLabel(" Window "));
  window_presets_ = new QComboBox;
  window_presets_->setObjectName("window_presets");
  window_presets_->addItem("Automatic");
  for (const auto& preset : ct_window_presets()) window_presets_->addItem(preset.name);
  connect(window_presets_, &QComboBox::currentIndexChanged, this, [this](int index) {
    if (!image_) return;
    apply_window(index == 0 ? automatic_window(*image_) : ct_window_presets()[index - 1].window);
  });
  tools->addWidget(window_presets_);
  tools->addWidget(new QLabel("  Overlay "));
  opacity_ = new QSlider(Qt::Horizontal);
  opacity_->setObjectName("overlay_opacity");
  opacity_->setRange(0, 100);
  opacity_->setValue(40);
  opacity_->setMaximumWidth(140);
  connect(opacity_, &QSlider::valueChanged, this, [this](int value) {
    for (SliceView* view : views()) view->set_overlay_opacity(value / 100.0);
  });
  tools->addWidget(opacity_);
  tools->addSeparator();
  tools->addAction("Reset zoom", this, [this] {
    for (SliceView* view : views()) view->reset_zoom();
  });

  // The workflow, left to right: backbone, dataset, training, prediction.
  auto* tabs = new QTabWidget;
  tabs->setObjectName("workflow");
  tabs->addTab(build_backbone_tab(), "Backbone");
  tabs->addTab(build_dataset_tab(), "Dataset");
  tabs->addTab(build_training_tab(), "Training");
  tabs->addTab(build_predict_tab(), "Predict");
  auto* dock = new QDockWidget("Workflow");
  dock->setObjectName("workflow_dock");
  dock->setWidget(tabs);
  dock->setFeatures(QDockWidget::DockWidgetMovable | QDockWidget::DockWidgetFloatable);
  dock->setMinimumWidth(480);
  addDockWidget(Qt::RightDockWidgetArea, dock);
  apply_contract_defaults();
  statusBar()->showMessage("Ready");
}

MainWindow::~MainWindow() {
  // A window closed mid-run stops its jobs first: training leaves a checkpoint to resume from.
  if (training_job_) {
    training_job_->cancel();
    training_job_->wait();
  }
  if (prediction_job_) prediction_job_->wait();
  if (rank_job_) rank_job_->wait();
}

QWidget* MainWindow::build_backbone_tab() {
  auto* tab = new QWidget;
  auto* layout = new QVBoxLayout(tab);
  backbone_ = new QComboBox;
  backbone_->setObjectName("backbone");
  for (const auto& info : backbones::registered_backbones()) {
    // Contract-only test entries have no network; an imported nnU-Net is trained through init_from.
    if (info.architecture.empty() || info.needs_model_folder) continue;
    backbone_->addItem(text_of(info.name));
    backbone_->setItemData(backbone_->count() - 1, text_of(info.summary), Qt::ToolTipRole);
  }
  connect(backbone_, &QComboBox::currentIndexChanged, this, [this] {
    update_plan_report();
    apply_contract_defaults();
  });
  layout->addWidget(new QLabel("The backbone's pretraining decides how your image is prepared:"));
  layout->addWidget(backbone_);
  // Warnings in a box of their own that scrolls, so a long list never squeezes the report.
  plan_warnings_ = new QPlainTextEdit;
  plan_warnings_->setObjectName("plan_warnings");
  plan_warnings_->setReadOnly(true);
  plan_warnings_->setMaximumHeight(110);
  plan_warnings_->setStyleSheet("color: #b00020; font-weight: bold;");
  plan_warnings_->setVisible(false);
  layout->addWidget(plan_warnings_);
  plan_report_ = new QTextEdit;
  plan_report_->setObjectName("plan_report");
  plan_report_->setReadOnly(true);
  plan_report_->setLineWrapMode(QTextEdit::WidgetWidth);
  plan_report_->setFontFamily("monospace");
  layout->addWidget(plan_report_, 1);

  // Which backbone to fine-tune: LogME of each candidate's frozen features on the Dataset tab's
  // cases, in minutes rather than a training run per backbone.
  layout->addWidget(new QLabel("Candidates to rank on the Dataset tab's cases (comma-separated; name=checkpoint for "
                              "pretrained weights):"));
  auto* rank_row = new QHBoxLayout;
  rank_candidates_ = new QLineEdit;
  rank_candidates_->setObjectName("rank_candidates");
  rank_candidates_->setText(fitting_backbones());
  rank_row->addWidget(rank_candidates_, 1);
  rank_ = new QPushButton("Rank the backbones on this dataset");
  rank_->setObjectName("rank_backbones");
  connect(rank_, &QPushButton::clicked, this, &MainWindow::start_ranking);
  rank_row->addWidget(rank_);
  layout->addLayout(rank_row);
  rank_table_ = new QTableWidget(0, 4);
  rank_table_->setObjectName("rank_table");
  rank_table_->setHorizontalHeaderLabels({"backbone", "LogME", "samples", "seconds"});
  rank_table_->horizontalHeader()->setStretchLastSection(true);
  rank_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  rank_table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  rank_table_->setMaximumHeight(160);
  // Choosing a row chooses that backbone.
  connect(rank_table_, &QTableWidget::cellClicked, this, [this](int row, int) {
    const int index = backbone_->findText(rank_table_->item(row, 0)->text());
    if (index >= 0) backbone_->setCurrentIndex(index);
  });
  layout->addWidget(rank_table_);
  return tab;
}

QString MainWindow::fitting_backbones() const {
  if (backbone_ == nullptr || backbone_->currentText().isEmpty()) return {};
  const preprocess::Contract& chosen = backbones::find_backbone(backbone_->currentText().toStdString()).contract;
  QStringList names;
  for (int i = 0; i < backbone_->count(); ++i) {
    const preprocess::Contract& contract = backbones::find_backbone(backbone_->itemText(i).toStdString()).contract;
    if (contract.spatial_dims == chosen.spatial_dims && contract.channel_count() == chosen.channel_count()) {
      names.push_back(backbone_->itemText(i));
    }
  }
  return names.join(",");
}

void MainWindow::start_ranking() {
  if (rank_job_) return;
  // "name" (random weights) or "name=checkpoint", comma-separated.
  std::vector<std::string> candidates, weights;
  for (const QString& entry : rank_candidates_->text().split(',', Qt::SkipEmptyParts)) {
    const QStringList parts = entry.split('=');
    candidates.push_back(parts.front().trimmed().toStdString());
    weights.push_back(parts.size() > 1 ? parts.mid(1).join('=').trimmed().toStdString() : "");
  }
  finetune::RunConfig settings;
  try {
    settings = form_run_config();
    if (settings.data.manifest.empty()) throw UsageError("choose the cases on the Dataset tab first");
    if (candidates.empty()) throw UsageError("name at least one backbone to rank");
  } catch (const std::exception& error) {
    report(QString::fromStdString(error.what()), true);
    return;
  }
  rank_table_->setRowCount(0);
  rank_job_ = new RankJob(settings, candidates, weights, this);
  connect(rank_job_, &RankJob::progress, this, [this](const QString& step) { report("ranking: " + step); });
  connect(rank_job_, &RankJob::succeeded, this, [this](const QList<RankedBackbone>& ranking) {
    rank_table_->setRowCount(static_cast<int>(ranking.size()));
    for (int row = 0; row < ranking.size(); ++row) {
      const RankedBackbone& ranked = ranking[row];
      rank_table_->setItem(row, 0, new QTableWidgetItem(ranked.backbone));
      rank_table_->setItem(row, 1, new QTableWidgetItem(QString::number(ranked.logme, 'f', 4)));
      rank_table_->setItem(row, 2, new QTableWidgetItem(QString::number(ranked.samples)));
      rank_table_->setItem(row, 3, new QTableWidgetItem(QString::number(ranked.seconds, 'f', 1)));
    }
    if (!ranking.isEmpty()) report("ranked: " + ranking.front().backbone + " scores best; click a row to choose it");
  });
  connect(rank_job_, &RankJob::failed, this, [this](const QString& message) { report(message, true); });
  connect(rank_job_, &QThread::finished, this, [this] {
    rank_job_->deleteLater();
    rank_job_ = nullptr;
    rank_->setEnabled(true);
  });
  rank_->setEnabled(false);
  report("ranking " + QString::number(candidates.size()) + " backbones...");
  rank_job_->start();
}

QWidget* MainWindow::build_dataset_tab() {
  auto* tab = new QWidget;
  auto* layout = new QVBoxLayout(tab);
  layout->addWidget(new QLabel("A manifest (CSV or JSON of image,label) or an nnU-Net folder (imagesTr, labelsTr):"));
  auto* row = new QHBoxLayout;
  manifest_ = new QLineEdit;
  manifest_->setObjectName("manifest");
  row->addWidget(manifest_, 1);
  auto* browse_file = new QPushButton("Manifest...");
  connect(browse_file, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getOpenFileName(this, "Choose a manifest", {}, "Manifests (*.csv *.json)");
    if (!path.isEmpty()) {
      manifest_->setText(path);
      load_cases();
    }
  });
  auto* browse_folder = new QPushButton("Folder...");
  connect(browse_folder, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getExistingDirectory(this, "Choose an nnU-Net dataset folder");
    if (!path.isEmpty()) {
      manifest_->setText(path);
      load_cases();
    }
  });
  row->addWidget(browse_file);
  row->addWidget(browse_folder);
  layout->addLayout(row);
  auto* check = new QPushButton("Check cases");
  check->setObjectName("check_cases");
  connect(check, &QPushButton::clicked, this, &MainWindow::load_cases);
  layout->addWidget(check);
  cases_ = new QTableWidget(0, 5);
  cases_->setObjectName("cases");
  cases_->setHorizontalHeaderLabels({"case", "split", "image grid", "check", "image"});
  cases_->horizontalHeader()->setStretchLastSection(true);
  cases_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  cases_->setSelectionBehavior(QAbstractItemView::SelectRows);
  connect(cases_, &QTableWidget::cellDoubleClicked, this, [this](int row, int) {
    open_path(cases_->item(row, 4)->text());
  });
  layout->addWidget(cases_, 1);
  return tab;
}

QWidget* MainWindow::build_training_tab() {
  auto* tab = new QWidget;
  auto* layout = new QVBoxLayout(tab);
  auto* form = new QFormLayout;
  task_ = new QComboBox;
  task_->setObjectName("task");
  // The tasks the form trains; classification and MIL read chips and feature bags, not the open image.
  for (finetune::Task task : {finetune::Task::kSegmentation, finetune::Task::kDetection}) {
    task_->addItem(QString::fromStdString(finetune::task_name(task)));
  }
  form->addRow("Task", task_);
  epochs_ = new QSpinBox;
  epochs_->setObjectName("epochs");
  epochs_->setRange(1, 10000);
  form->addRow("Epochs", epochs_);
  batches_per_epoch_ = new QSpinBox;
  batches_per_epoch_->setObjectName("batches_per_epoch");
  batches_per_epoch_->setRange(1, 100000);
  form->addRow("Batches per epoch", batches_per_epoch_);
  learning_rate_ = new QDoubleSpinBox;
  learning_rate_->setObjectName("learning_rate");
  learning_rate_->setDecimals(6);
  learning_rate_->setRange(1e-6, 1.0);
  learning_rate_->setSingleStep(1e-4);
  form->addRow("Learning rate", learning_rate_);
  freeze_epochs_ = new QSpinBox;
  freeze_epochs_->setObjectName("freeze_epochs");
  freeze_epochs_->setRange(0, 10000);
  form->addRow("Frozen backbone epochs", freeze_epochs_);
  auto* patch_row = new QHBoxLayout;
  const char* names[] = {"patch_x", "patch_y", "patch_z"};
  for (int a = 0; a < 3; ++a) {
    patch_[a] = new QSpinBox;
    patch_[a]->setObjectName(names[a]);
    patch_[a]->setRange(1, 1024);
    patch_row->addWidget(patch_[a]);
  }
  form->addRow("Patch (x, y, z voxels)", patch_row);
  run_config_ = new QLineEdit;
  run_config_->setObjectName("run_config");
  run_config_->setPlaceholderText("optional YAML/JSON run file: the fields above override it");
  form->addRow("Run settings file", run_config_);
  output_ = new QLineEdit(QDir::home().filePath("graft-run"));
  output_->setObjectName("output");
  form->addRow("Model folder", output_);
  layout->addLayout(form);

  auto* buttons = new QHBoxLayout;
  train_ = new QPushButton("Train");
  train_->setObjectName("train");
  resume_ = new QPushButton("Resume");
  resume_->setObjectName("resume");
  cancel_ = new QPushButton("Cancel");
  cancel_->setObjectName("cancel");
  cancel_->setEnabled(false);
  connect(train_, &QPushButton::clicked, this, [this] { start_training(false); });
  connect(resume_, &QPushButton::clicked, this, [this] { start_training(true); });
  connect(cancel_, &QPushButton::clicked, this, [this] {
    if (training_job_) training_job_->cancel();
    cancel_->setEnabled(false);
    report("cancelling after the current step...");
  });
  buttons->addWidget(train_);
  buttons->addWidget(resume_);
  buttons->addWidget(cancel_);
  layout->addLayout(buttons);
  progress_ = new QProgressBar;
  progress_->setObjectName("training_progress");
  progress_->setRange(0, 1000);
  progress_->setValue(0);
  eta_ = new QLabel("not started");
  eta_->setObjectName("eta");
  auto* progress_row = new QHBoxLayout;
  progress_row->addWidget(progress_, 1);
  progress_row->addWidget(eta_);
  layout->addLayout(progress_row);

  chart_ = new QChart;
  chart_->setTitle("Training");
  loss_series_ = new QLineSeries;
  loss_series_->setName("training loss");
  metric_series_ = new QLineSeries;
  metric_series_->setName("validation");
  chart_->addSeries(loss_series_);
  chart_->addSeries(metric_series_);
  epoch_axis_ = new QValueAxis;
  epoch_axis_->setTitleText("epoch");
  epoch_axis_->setRange(0, 1);
  loss_axis_ = new QValueAxis;
  loss_axis_->setTitleText("loss");
  loss_axis_->setRange(0, 1);
  auto* metric_axis = new QValueAxis;
  metric_axis->setTitleText("validation metric");
  metric_axis->setRange(0, 1);
  chart_->addAxis(epoch_axis_, Qt::AlignBottom);
  chart_->addAxis(loss_axis_, Qt::AlignLeft);
  chart_->addAxis(metric_axis, Qt::AlignRight);
  loss_series_->attachAxis(epoch_axis_);
  loss_series_->attachAxis(loss_axis_);
  metric_series_->attachAxis(epoch_axis_);
  metric_series_->attachAxis(metric_axis);
  auto* chart_view = new QChartView(chart_);
  chart_view->setObjectName("chart");
  chart_view->setRenderHint(QPainter::Antialiasing);
  chart_view->setMinimumHeight(260);
  layout->addWidget(chart_view, 2);
  log_ = new QPlainTextEdit;
  log_->setObjectName("log");
  log_->setReadOnly(true);
  log_->setMaximumBlockCount(5000);
  layout->addWidget(log_, 1);
  return tab;
}

QWidget* MainWindow::build_predict_tab() {
  auto* tab = new QWidget;
  auto* layout = new QVBoxLayout(tab);
  layout->addWidget(new QLabel("A model folder written by training:"));
  auto* row = new QHBoxLayout;
  model_folder_ = new QLineEdit;
  model_folder_->setObjectName("model_folder");
  row->addWidget(model_folder_, 1);
  auto* browse = new QPushButton("Browse...");
  connect(browse, &QPushButton::clicked, this, [this] {
    const QString path = QFileDialog::getExistingDirectory(this, "Choose a model folder");
    if (!path.isEmpty()) model_folder_->setText(path);
  });
  row->addWidget(browse);
  layout->addLayout(row);
  predict_ = new QPushButton("Predict on the open image");
  predict_->setObjectName("predict");
  connect(predict_, &QPushButton::clicked, this, &MainWindow::start_prediction);
  layout->addWidget(predict_);
  save_ = new QPushButton("Save the prediction beside the image");
  save_->setObjectName("save_prediction");
  save_->setEnabled(false);
  connect(save_, &QPushButton::clicked, this, [this] {
    const QStringList written = save_prediction({});
    if (!written.isEmpty()) report("saved " + written.join(", "));
  });
  layout->addWidget(save_);
  // Boxes scoring below this are hidden and not saved; a prediction sets it to the model's own
  // detection.score_threshold, and raising it clears the low-scoring boxes of a weak detector.
  auto* threshold_row = new QHBoxLayout;
  threshold_row->addWidget(new QLabel("Show boxes scoring at least"));
  box_threshold_ = new QDoubleSpinBox;
  box_threshold_->setObjectName("box_threshold");
  box_threshold_->setRange(0.0, 1.0);
  box_threshold_->setDecimals(3);
  box_threshold_->setSingleStep(0.05);
  box_threshold_->setValue(finetune::default_run_config().detection.score_threshold);
  connect(box_threshold_, &QDoubleSpinBox::valueChanged, this, [this] { show_boxes_above_threshold(); });
  threshold_row->addWidget(box_threshold_);
  layout->addLayout(threshold_row);
  prediction_summary_ = new QLabel;
  prediction_summary_->setObjectName("prediction_summary");
  prediction_summary_->setWordWrap(true);
  layout->addWidget(prediction_summary_);
  layout->addStretch(1);
  return tab;
}

bool MainWindow::open_path(const QString& path) {
  namespace fs = std::filesystem;
  const std::string file = path.toStdString();
  try {
    std::shared_ptr<io::Image> image;
    std::optional<io::DicomVolumeSource> dicom_source;
    const io::FileFormat format = io::sniff_format(file);
    if (fs::is_directory(file) || format == io::FileFormat::kDicom) {
      const std::vector<io::DicomSeries> series = io::find_dicom_series(file);
      if (series.empty()) throw Error(file + ": no DICOM series found");
      std::string selector;
      if (series.size() > 1) {
        QStringList items;
        for (const auto& one : series) {
          items << QString("%1 %2 (%3 images, %4 x %5) [%6]")
                       .arg(text_of(one.modality), text_of(one.series_description))
                       .arg(one.frame_count).arg(one.columns).arg(one.rows)
                       .arg(text_of(io::dicom_series_selector(one)));
        }
        const QString chosen = choose_item("Choose a DICOM series", items);
        if (chosen.isEmpty()) return false;
        selector = io::dicom_series_selector(series[static_cast<std::size_t>(items.indexOf(chosen))]);
      }
      io::DicomReadOptions read_options;
      io::DicomVolume volume;
      try {
        volume = io::read_dicom(file, selector, read_options);
      } catch (const io::GantryTiltRefused& tilted) {
        // The reader never resamples silently; here the user decides, as with --correct-tilt.
        const QString correct = QString("Correct the gantry tilt of %1 degrees: resample the slices onto an "
                                        "orthogonal grid, as dcm2niix does").arg(tilted.tilt_degrees, 0, 'f', 2);
        if (choose_item("This series' slices are sheared", {correct, "Cancel"}) != correct) return false;
        read_options.correct_tilt = true;
        volume = io::read_dicom(file, selector, read_options);
      }
      dicom_source = volume.source;
      image = std::make_shared<io::Image>(std::move(volume.image));
    } else if (format == io::FileFormat::kHdf5) {
      QStringList items;
      for (const auto& dataset : io::list_hdf5(file).datasets) {
        if (dataset.shape.size() < 2 || dataset.dtype == "str" || dataset.dtype.rfind("|S", 0) == 0) continue;
        QStringList shape;
        for (const auto n : dataset.shape) shape << QString::number(n);
        items << QString("%1  (%2, %3)").arg(text_of(dataset.path), shape.join(" x "), text_of(dataset.dtype));
      }
      if (items.isEmpty()) throw Error(file + ": no dataset with two or more dimensions to show");
      const QString chosen = items.size() == 1 ? items[0] : choose_item("Choose an HDF5 dataset", items);
      if (chosen.isEmpty()) return false;
      image = std::make_shared<io::Image>(io::read_hdf5(file, chosen.section("  ", 0, 0).toStdString()));
    } else {
      image = std::make_shared<io::Image>(io::read(file));
    }
    dicom_source_ = std::move(dicom_source);
    show_image(std::move(image), path);
    remember_recent(path);
    return true;
  } catch (const std::exception& error) {
    report(QString::fromStdString(error.what()), true);
    return false;
  }
}

void MainWindow::show_image(std::shared_ptr<io::Image> image, const QString& source) {
  image_ = std::move(image);
  source_ = source;
  prediction_labels_.reset();
  prediction_boxes_.clear();
  all_prediction_boxes_.clear();
  boxes_predicted_ = false;
  save_->setEnabled(false);
  prediction_summary_->clear();
  const auto& n = image_->geometry().size_xyz;
  crosshair_ = {n[0] / 2, n[1] / 2, n[2] / 2};
  const bool planar = n[2] == 1;
  for (SliceView* view : views()) {
    view->set_image(image_.get());
    view->set_crosshair({static_cast<double>(crosshair_[0]), static_cast<double>(crosshair_[1]),
                         static_cast<double>(crosshair_[2])});
  }
  coronal_->setVisible(!planar);
  sagittal_->setVisible(!planar);
  // A 2D image gets one tall view and the readout beside it; a volume gets three equal views.
  view_grid_->removeWidget(axial_);
  view_grid_->addWidget(axial_, 0, 0, planar ? 2 : 1, 1);
  view_grid_->setColumnStretch(0, planar ? 3 : 1);
  view_grid_->setColumnStretch(1, 1);
  const bool ct = image_->metadata().modality == "CT";
  window_presets_->blockSignals(true);
  window_presets_->setCurrentIndex(ct ? 2 : 0);
  window_presets_->blockSignals(false);
  apply_window(ct ? ct_window_presets()[1].window : automatic_window(*image_));
  setWindowTitle("graft - " + QFileInfo(source).fileName());
  show_hover(crosshair_);
  report(QString("opened %1: %2 x %3 x %4, %5 channel(s), %6")
             .arg(source).arg(n[0]).arg(n[1]).arg(n[2]).arg(image_->channels())
             .arg(text_of(io::dtype_name(image_->dtype()))));
  choose_fitting_backbone();
  update_plan_report();
}

std::array<SliceView*, 3> MainWindow::views() const { return {axial_, coronal_, sagittal_}; }

SliceView* MainWindow::view(Plane plane) const {
  return plane == Plane::kAxial ? axial_ : plane == Plane::kCoronal ? coronal_ : sagittal_;
}

void MainWindow::set_crosshair(const std::array<std::int64_t, 3>& voxel) {
  crosshair_ = voxel;
  const io::Vec3 index{static_cast<double>(voxel[0]), static_cast<double>(voxel[1]), static_cast<double>(voxel[2])};
  for (SliceView* view : views()) view->set_crosshair(index);
  show_hover(voxel);
}

void MainWindow::show_hover(const std::array<std::int64_t, 3>& voxel) {
  if (!image_) return;
  const io::Geometry& grid = image_->geometry();
  const io::Vec3 world =
      grid.index_to_world({static_cast<double>(voxel[0]), static_cast<double>(voxel[1]), static_cast<double>(voxel[2])});
  QStringList values;
  for (std::int64_t c = 0; c < std::min<std::int64_t>(image_->channels(), 4); ++c) {
    values << QString::number(image_->value_at(image_->offset(c, voxel[2], voxel[1], voxel[0])), 'g', 6);
  }
  QString text = QString("voxel (%1, %2, %3)\n%4 (%5, %6, %7) %8\nvalue %9")
                     .arg(voxel[0]).arg(voxel[1]).arg(voxel[2])
                     .arg(grid.frame == io::Frame::kCRS ? "CRS" : "LPS")
                     .arg(world[0], 0, 'f', 2).arg(world[1], 0, 'f', 2).arg(world[2], 0, 'f', 2)
                     .arg(grid.frame == io::Frame::kCRS ? "" : "mm")
                     .arg(values.join(", "));
  if (prediction_labels_) {
    text += QString("\nlabel %1").arg(prediction_labels_->value_at(prediction_labels_->offset(0, voxel[2], voxel[1], voxel[0])));
  }
  hover_->setText(text);
}

QString MainWindow::hover_text() const { return hover_->text(); }

void MainWindow::apply_window(const Window& window) {
  for (SliceView* view : views()) view->set_window(window);
}

void MainWindow::show_boxes_above_threshold() {
  const double threshold = box_threshold_->value();
  prediction_boxes_.clear();
  for (const io::Box& box : all_prediction_boxes_) {
    if (box.score >= threshold) prediction_boxes_.push_back(box);
  }
  for (SliceView* view : views()) view->set_boxes(prediction_boxes_);
  if (boxes_predicted_) {
    prediction_summary_->setText(QString("detection: %1 of %2 boxes score at least %3")
                                     .arg(prediction_boxes_.size()).arg(all_prediction_boxes_.size())
                                     .arg(threshold, 0, 'f', 3));
  }
}

void MainWindow::choose_fitting_backbone() {
  const std::string current = backbone_->currentText().toStdString();
  if (current.empty() || !image_) return;
  const bool planar = image_->geometry().size_xyz[2] == 1;
  const auto fits = [&](const backbones::BackboneInfo& info) {
    if (info.contract.spatial_dims == 3 && planar) return false;
    try {
      preprocess::make_plan(info.contract, *image_, 0);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  };
  if (fits(backbones::find_backbone(current))) return;
  for (const auto& info : backbones::registered_backbones()) {
    const QString name = text_of(info.name);
    if (backbone_->findText(name) < 0 || !fits(info)) continue;
    backbone_->setCurrentText(name);
    const QString why = info.contract.spatial_dims == 2 && planar
                            ? QString("a 2D backbone for this 2D image with %1 band(s)").arg(image_->channels())
                            : QString("a backbone whose Contract takes this image");
    report(QString("backbone %1 chosen: %2 does not fit this image; %1 is %3").arg(name, text_of(current), why));
    return;
  }
}

void MainWindow::update_plan_report() {
  const std::string name = backbone_->currentText().toStdString();
  if (name.empty()) return;
  const auto& info = backbones::find_backbone(name);
  QString report_text = "Contract " + text_of(info.contract.name) + "\n" + text_of(preprocess::describe(info.contract));
  QStringList warnings;
  if (image_) {
    const io::Image& image = *image_;
    const bool planar = image.geometry().size_xyz[2] == 1;
    if (info.contract.spatial_dims == 3 && planar) warnings << "This backbone is 3D and the image is 2D.";
    if (info.contract.spatial_dims == 2 && !planar) {
      warnings << "This backbone is 2D and the image is a volume: training takes its slices or tiles.";
    }
    const bool windows_hounsfield = std::any_of(info.contract.intensity.begin(), info.contract.intensity.end(),
                                                [](const auto& step) { return step.kind == preprocess::IntensityKind::kWindow; });
    const std::string& modality = image.metadata().modality;
    if (windows_hounsfield && !modality.empty() && modality != "CT") {
      warnings << QString("The backbone windows CT Hounsfield units; this image's modality is %1.").arg(text_of(modality));
    }
    try {
      const preprocess::Plan plan = preprocess::make_plan(info.contract, image, 0);
      report_text += "\nPlan for the open image\n" + text_of(preprocess::to_text(plan));
      for (const auto& note : plan.notes) warnings << text_of(note);
    } catch (const std::exception& error) {
      warnings << QString("No Plan: %1").arg(error.what());
    }
  } else {
    report_text += "\nOpen an image to see its Plan.";
  }
  plan_report_->setPlainText(report_text);
  plan_warnings_->setPlainText(warnings.join("\n"));
  plan_warnings_->setVisible(!warnings.isEmpty());
}

void MainWindow::apply_contract_defaults() {
  // The form starts from the run defaults and the backbone's Contract: a 2D backbone trains on
  // patches of the size it was pretrained at, a 3D one on 64 x 64 x 32 voxels of the planned grid.
  const finetune::RunConfig defaults = finetune::default_run_config();
  epochs_->setValue(defaults.train.epochs);
  batches_per_epoch_->setValue(defaults.data.batches_per_epoch);
  learning_rate_->setValue(defaults.train.lr);
  freeze_epochs_->setValue(defaults.train.freeze_backbone_epochs);
  std::vector<int> patch(defaults.data.patch_size.begin(), defaults.data.patch_size.end());
  const std::string name = backbone_->currentText().toStdString();
  if (!name.empty()) {
    const auto& contract = backbones::find_backbone(name).contract;
    if (contract.spatial_dims == 2) {
      const bool sized = contract.resize == preprocess::ResizeRule::kSize;
      patch = {sized ? static_cast<int>(contract.target_size_xyz[0]) : 224,
               sized ? static_cast<int>(contract.target_size_xyz[1]) : 224, 1};
    }
  }
  for (int a = 0; a < 3; ++a) patch_[a]->setValue(patch[a]);
}

void MainWindow::load_cases() {
  cases_->setRowCount(0);
  try {
    std::vector<datasets::CaseEntry> entries = datasets::read_manifest(manifest_->text().toStdString());
    datasets::assign_folds(entries, 5, 0, 0);
    int problems = 0;
    for (const auto& entry : entries) {
      const datasets::CaseCheck check = datasets::check_case(entry);
      const int row = cases_->rowCount();
      cases_->insertRow(row);
      cases_->setItem(row, 0, new QTableWidgetItem(text_of(entry.id)));
      cases_->setItem(row, 1, new QTableWidgetItem(text_of(entry.split)));
      cases_->setItem(row, 2, new QTableWidgetItem(text_of(check.grid)));
      auto* verdict = new QTableWidgetItem(check.problem.empty() ? "ok" : text_of(check.problem));
      verdict->setForeground(check.problem.empty() ? QColor(0, 130, 0) : QColor(180, 0, 30));
      cases_->setItem(row, 3, verdict);
      cases_->setItem(row, 4, new QTableWidgetItem(text_of(entry.image)));
      problems += !check.problem.empty();
    }
    cases_->resizeColumnsToContents();
    report(QString("%1 cases, %2 with problems").arg(entries.size()).arg(problems), problems > 0);
  } catch (const std::exception& error) {
    report(QString::fromStdString(error.what()), true);
  }
}

finetune::RunConfig MainWindow::form_run_config() const {
  // The form's fields override a run file's (head, classes, contract overrides, ...).
  const std::string run_file = run_config_->text().trimmed().toStdString();
  finetune::RunConfig config = run_file.empty() ? finetune::default_run_config() : finetune::resolve_run_config(run_file, {});
  config.task = task_->currentText().toStdString();
  config.backbone = backbone_->currentText().toStdString();
  config.output = output_->text().toStdString();
  config.data.manifest = manifest_->text().toStdString();
  config.data.patch_size = {patch_[0]->value(), patch_[1]->value(), patch_[2]->value()};
  config.data.batches_per_epoch = batches_per_epoch_->value();
  config.train.epochs = epochs_->value();
  config.train.lr = learning_rate_->value();
  config.train.freeze_backbone_epochs = freeze_epochs_->value();
  // One core stays with the window, so it keeps drawing while the run computes.
  const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1);
  config.train.threads = threads;
  config.data.workers = 1;
  return config;
}

void MainWindow::start_training(bool resume) {
  if (training_job_) return;
  finetune::RunConfig config;
  try {
    if (resume) {
      // A resumed run continues under its own saved settings; only the epoch count may grow.
      config = finetune::read_run_folder_config(output_->text().toStdString());
      config.train.epochs = std::max(config.train.epochs, epochs_->value());
    } else {
      config = form_run_config();
    }
  } catch (const std::exception& error) {
    report(QString::fromStdString(error.what()), true);
    return;
  }
  loss_series_->clear();
  metric_series_->clear();
  max_loss_ = 0.0;
  progress_->setValue(0);
  eta_->setText("starting...");
  training_job_ = new TrainingJob(config, resume, this);
  connect(training_job_, &TrainingJob::progress, this, &MainWindow::on_training_progress);
  connect(training_job_, &TrainingJob::succeeded, this, [this](const QString& summary) {
    report(summary);
    if (!summary.startsWith("cancelled")) model_folder_->setText(output_->text());
  });
  connect(training_job_, &TrainingJob::failed, this, [this](const QString& message) { report(message, true); });
  connect(training_job_, &QThread::finished, this, [this] {
    training_job_->deleteLater();
    training_job_ = nullptr;
    train_->setEnabled(true);
    resume_->setEnabled(true);
    cancel_->setEnabled(false);
  });
  train_->setEnabled(false);
  resume_->setEnabled(false);
  cancel_->setEnabled(true);
  report(QString("%1 %2 on %3 into %4").arg(resume ? "resuming" : "training")
             .arg(text_of(config.backbone))
             .arg(text_of(config.data.manifest), text_of(config.output)));
  training_job_->start();
}

void MainWindow::on_training_progress(const finetune::TrainEvent& event) {
  if (event.kind == "step") {
    const double epoch_position = event.epoch + (event.step + 1.0) / std::max(event.steps_per_epoch, 1);
    loss_series_->append(epoch_position, event.loss);
    max_loss_ = std::max(max_loss_, event.loss);
    epoch_axis_->setRange(0, std::max(1, event.epochs));
    loss_axis_->setRange(0, max_loss_ * 1.05);
    const double fraction = epoch_position / std::max(event.epochs, 1);
    progress_->setValue(static_cast<int>(std::lround(fraction * 1000)));
    eta_->setText(QString("%1 left").arg(duration_text(event.seconds / std::max(fraction, 1e-9) * (1 - fraction))));
  } else if (event.kind == "epoch_end") {
    QString line = QString("epoch %1/%2  loss %3").arg(event.epoch + 1).arg(event.epochs).arg(event.loss, 0, 'f', 4);
    for (const auto& [name, value] : event.metrics) {
      if (name.rfind("val_", 0) == 0) line += QString("  %1 %2").arg(text_of(name)).arg(value, 0, 'f', 4);
    }
    log_->appendPlainText(line + QString("  (%1)").arg(duration_text(event.seconds)));
    if (const auto metric = headline_metric(event.metrics)) {
      metric_series_->setName(text_of(metric->first));
      metric_series_->append(event.epoch + 1, metric->second);
    }
  } else if (event.kind == "checkpoint" || event.kind == "cancelled") {
    log_->appendPlainText(QString("%1: %2").arg(text_of(event.kind), text_of(event.path)));
  } else if (event.kind == "done") {
    progress_->setValue(1000);
    eta_->setText("done");
  }
}

void MainWindow::start_prediction() {
  if (!image_) {
    report("open an image first", true);
    return;
  }
  if (prediction_job_) return;
  prediction_job_ = new PredictionJob(model_folder_->text(), image_, source_, this);
  const io::Image* predicted_on = image_.get();
  connect(prediction_job_, &PredictionJob::succeeded, this, [this, predicted_on](const PredictionResult& result) {
    if (image_.get() != predicted_on) {
      report("prediction dropped: another image was opened while it ran; predict again", true);
      return;
    }
    prediction_classes_ = result.class_names;
    if (result.labels) {
      prediction_labels_ = result.labels;
      for (SliceView* view : views()) view->set_labels(prediction_labels_.get());
      std::int64_t foreground = 0;
      for (std::int64_t i = 0; i < prediction_labels_->element_count(); ++i) foreground += prediction_labels_->value_at(i) > 0;
      prediction_summary_->setText(QString("segmentation: %1 voxels labelled").arg(foreground));
    } else {
      all_prediction_boxes_ = result.boxes;
      boxes_predicted_ = true;  // possibly none: "nothing found" is a result to save too
      box_threshold_->blockSignals(true);
      box_threshold_->setValue(result.score_threshold);
      box_threshold_->blockSignals(false);
      show_boxes_above_threshold();
    }
    save_->setEnabled(true);
    report("prediction shown; " + prediction_summary_->text());
  });
  connect(prediction_job_, &PredictionJob::failed, this, [this](const QString& message) { report(message, true); });
  connect(prediction_job_, &QThread::finished, this, [this] {
    prediction_job_->deleteLater();
    prediction_job_ = nullptr;
    predict_->setEnabled(true);
  });
  predict_->setEnabled(false);
  report("predicting with " + model_folder_->text() + "...");
  prediction_job_->start();
}

QStringList MainWindow::save_prediction(const QString& path) {
  if (!image_ || (!prediction_labels_ && !boxes_predicted_)) {
    report("nothing to save: predict first", true);
    return {};
  }
  try {
    const std::string source = source_.toStdString();
    const io::FileFormat format = dicom_source_ ? io::FileFormat::kDicom : io::sniff_format(source);
    std::string stem = path.isEmpty() ? std::string() : io::strip_image_extension(path.toStdString());
    if (stem.empty()) {
      const std::string folder = std::filesystem::is_directory(source) ? source : std::filesystem::path(source).parent_path().string();
      stem = folder + "/" + (dicom_source_ ? std::string("dicom") : io::image_stem(source));
    }
    if (!prediction_labels_) {
      if (io::ends_with(stem, ".json")) stem.resize(stem.size() - 5);
      if (path.isEmpty()) stem += "_boxes";
      QStringList written;
      for (const auto& file : io::write_box_files(prediction_boxes_, image_->geometry(), prediction_classes_, stem)) {
        written << text_of(file);
      }
      return written;
    }
    if (path.isEmpty()) stem += "_graft_seg";
    // The input's own format: a DICOM series gets a DICOM SEG that references it.
    if (format == io::FileFormat::kDicom) {
      const std::string out = stem + ".dcm";
      io::DicomSegOptions options;
      io::write_dicom_seg(*prediction_labels_, *dicom_source_, io::segments_for_labels(*prediction_labels_, prediction_classes_),
                          out, options);
      return {text_of(out)};
    }
    const std::string extension = format == io::FileFormat::kNrrd   ? ".nrrd"
                                  : format == io::FileFormat::kGdal  ? ".tif"
                                  : format == io::FileFormat::kHdf5  ? ".h5"
                                  : format == io::FileFormat::kNpy   ? ".npy"
                                                                     : ".nii.gz";
    const std::string out = path.isEmpty() || io::format_from_extension(path.toStdString()) == io::FileFormat::kUnknown
                                ? stem + extension
                                : path.toStdString();
    io::write(*prediction_labels_, out);
    return {text_of(out)};
  } catch (const std::exception& error) {
    report(QString::fromStdString(error.what()), true);
    return {};
  }
}

int MainWindow::loss_points() const { return static_cast<int>(loss_series_->count()); }
int MainWindow::metric_points() const { return static_cast<int>(metric_series_->count()); }

void MainWindow::report(const QString& message, bool error) {
  last_message_ = message;
  statusBar()->showMessage(message);
  log_->appendPlainText((error ? "error: " : "") + message);
  if (error && error_dialogs && isVisible()) {
    QMessageBox::warning(this, "graft", message);
  }
}

void MainWindow::remember_recent(const QString& path) {
  QSettings settings;  // the application's organisation and name
  QStringList recent = settings.value("recent_files").toStringList();
  recent.removeAll(path);
  recent.prepend(path);
  while (recent.size() > 10) recent.removeLast();
  settings.setValue("recent_files", recent);
  rebuild_recent_menu();
}

void MainWindow::rebuild_recent_menu() {
  recent_menu_->clear();
  const QStringList recent = QSettings().value("recent_files").toStringList();
  for (const QString& path : recent) {
    recent_menu_->addAction(path, this, [this, path] { open_path(path); });
  }
  recent_menu_->setEnabled(!recent.isEmpty());
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  if (event->mimeData()->hasUrls()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
  const QList<QUrl> urls = event->mimeData()->urls();
  if (!urls.isEmpty() && urls.first().isLocalFile()) open_path(urls.first().toLocalFile());
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (training_job_) {
    report("stopping training: a checkpoint is saved after the current step");
    training_job_->cancel();
    training_job_->wait();
  }
  event->accept();
}

}  // namespace graft::gui
