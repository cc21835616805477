#pragma once

// graft's desktop window: open a scan, look at it in three linked planes, see what a backbone's
// Plan will do to it, point at a dataset, train with a live chart, predict and save the result
// in the input's own format. Every action calls the library, the same calls the CLI makes.
#include <QMainWindow>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "gui/jobs.h"
#include "gui/slice_view.h"
#include "io/boxes.h"
#include "io/dicom/dicom_series.h"
#include "io/image.h"

class QChart;
class QComboBox;
class QDoubleSpinBox;
class QGridLayout;
class QLabel;
class QLineEdit;
class QLineSeries;
class QMenu;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QSlider;
class QSpinBox;
class QTableWidget;
class QTextEdit;
class QValueAxis;

namespace graft::gui {

// Window / level presets for CT, in Hounsfield units.
struct WindowPreset {
  QString name;
  Window window;
};
const std::vector<WindowPreset>& ct_window_presets();
// A window spanning the 0.5th to 99.5th percentile of the first channel (a sample of voxels).
Window automatic_window(const io::Image& image);

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // Opens a file or a folder (DICOM). A folder with several series, or an HDF5 file with several
  // datasets, asks `choose_item`, a dialog unless a caller (a test) replaces it. Errors are shown
  // and returned false; the current image stays.
  bool open_path(const QString& path);
  std::function<QString(const QString& title, const QStringList& items)> choose_item;
  // Errors go to the status bar and the log, and to a message box unless this is off (tests).
  bool error_dialogs = true;

  // Saves the prediction shown on the open image beside it in the input's format: a label map
  // (NIfTI, NRRD, GeoTIFF, HDF5; DICOM SEG for a DICOM series) or boxes (graft JSON plus Slicer
  // markups, or GeoJSON for a raster). Returns the files written.
  QStringList save_prediction(const QString& path);
  // Moves the crosshair of every view to a voxel (a click in any view does the same).
  void set_crosshair(const std::array<std::int64_t, 3>& voxel);

  const io::Image* image() const { return image_.get(); }
  const io::Image* prediction_labels() const { return prediction_labels_.get(); }
  const std::vector<io::Box>& prediction_boxes() const { return prediction_boxes_; }
  SliceView* view(Plane plane) const;
  QString hover_text() const;
  int loss_points() const;
  int metric_points() const;
  TrainingJob* training_job() const { return training_job_; }
  PredictionJob* prediction_job() const { return prediction_job_; }
  RankJob* rank_job() const { return rank_job_; }
  QString last_message() const { return last_message_; }

 protected:
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;
  void closeEvent(QCloseEvent* event) override;

 private:
  QWidget* build_backbone_tab();
  QWidget* build_dataset_tab();
  QWidget* build_training_tab();
  QWidget* build_predict_tab();
  void show_image(std::shared_ptr<io::Image> image, const QString& source);
  std::array<SliceView*, 3> views() const;
  void show_hover(const std::array<std::int64_t, 3>& voxel);
  void apply_window(const Window& window);
  void update_plan_report();
  // When the chosen backbone cannot take the open image (a 3D one on a 2D image, or bands it
  // lacks), picks the first registered backbone that can, and says so.
  void choose_fitting_backbone();
  void apply_contract_defaults();
  void load_cases();
  // The run settings the form describes (over the run file's, when one is named).
  finetune::RunConfig form_run_config() const;
  void start_training(bool resume);
  // Ranks the backbones listed beside the button on the Dataset tab's manifest (finetune/transferability.h).
  void start_ranking();
  // The registered backbones that take the chosen backbone's inputs (dimensions and channels).
  QString fitting_backbones() const;
  void on_training_progress(const finetune::TrainEvent& event);
  void start_prediction();
  void report(const QString& message, bool error = false);
  void remember_recent(const QString& path);
  void rebuild_recent_menu();

  std::shared_ptr<io::Image> image_;
  QString source_;
  std::optional<io::DicomVolumeSource> dicom_source_;  // for DICOM SEG output
  std::shared_ptr<io::Image> prediction_labels_;
  std::vector<io::Box> prediction_boxes_;      // those scoring at least box_threshold_
  std::vector<io::Box> all_prediction_boxes_;  // every box the detector kept
  QDoubleSpinBox* box_threshold_ = nullptr;
  void show_boxes_above_threshold();
  bool boxes_predicted_ = false;
  std::vector<std::string> prediction_classes_;
  std::array<std::int64_t, 3> crosshair_{0, 0, 0};

  SliceView* axial_ = nullptr;
  SliceView* coronal_ = nullptr;
  SliceView* sagittal_ = nullptr;
  QLabel* hover_ = nullptr;
  QGridLayout* view_grid_ = nullptr;
  QComboBox* window_presets_ = nullptr;
  QSlider* opacity_ = nullptr;
  QMenu* recent_menu_ = nullptr;

  QComboBox* backbone_ = nullptr;
  QTextEdit* plan_report_ = nullptr;
  QLineEdit* rank_candidates_ = nullptr;
  QPushButton* rank_ = nullptr;
  QTableWidget* rank_table_ = nullptr;
  RankJob* rank_job_ = nullptr;
  QPlainTextEdit* plan_warnings_ = nullptr;

  QLineEdit* manifest_ = nullptr;
  QTableWidget* cases_ = nullptr;

  QComboBox* task_ = nullptr;
  QSpinBox* epochs_ = nullptr;
  QDoubleSpinBox* learning_rate_ = nullptr;
  QSpinBox* freeze_epochs_ = nullptr;
  QSpinBox* batches_per_epoch_ = nullptr;
  std::array<QSpinBox*, 3> patch_{};
  QLineEdit* run_config_ = nullptr;
  QLineEdit* output_ = nullptr;
  QPushButton* train_ = nullptr;
  QPushButton* resume_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* eta_ = nullptr;
  QChart* chart_ = nullptr;
  QLineSeries* loss_series_ = nullptr;
  QLineSeries* metric_series_ = nullptr;
  QValueAxis* epoch_axis_ = nullptr;
  QValueAxis* loss_axis_ = nullptr;
  QPlainTextEdit* log_ = nullptr;
  TrainingJob* training_job_ = nullptr;
  double max_loss_ = 0.0;

  QLineEdit* model_folder_ = nullptr;
  QPushButton* predict_ = nullptr;
  QPushButton* save_ = nullptr;
  QLabel* prediction_summary_ = nullptr;
  PredictionJob* prediction_job_ = nullptr;

  QString last_message_;
};

}  // namespace graft::gui
