// The desktop app driven through its real widgets on Qt's offscreen platform: opening files
// shows the voxel values at known points, a scripted session trains, cancels, resumes, predicts
// and saves, and screenshots of each state land in the build folder.
#include <QApplication>
#include <QChartView>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QElapsedTimer>
#include <QLabel>
#include <QLineEdit>
#include <QMimeData>
#include <QMouseEvent>
#include <QSettings>
#include <QUrl>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTabWidget>
#include <QTableWidget>
#include <QTextEdit>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backbones/registry.h"
#include "datasets/synthetic_volumes.h"
#include "finetune/blas_kernels.h"
#include "gui/main_window.h"
#include "io/dicom/dicom_seg.h"
#include "io/image_file.h"
#include "tests/support/nnunet_reference.h"
#include "tests/support/test_support.h"

namespace graft::gui {

namespace fs = std::filesystem;

class MainWindowTest : public QObject {
  Q_OBJECT

 private:
  static void screenshot(QWidget& window, const QString& name) {
    QDir().mkpath(GRAFT_GUI_SCREENSHOT_DIR);
    QVERIFY(window.grab().save(QString(GRAFT_GUI_SCREENSHOT_DIR) + "/" + name + ".png"));
  }

  // Waits for a running job while a 10 ms timer measures the longest the UI thread went without
  // serving it; returns that gap in milliseconds.
  static double longest_ui_stall_ms(const std::function<bool()>& running, int timeout_ms) {
    QElapsedTimer clock, since_tick;
    clock.start();
    since_tick.start();
    double longest = 0.0;
    QTimer tick;
    QObject::connect(&tick, &QTimer::timeout, [&] {
      longest = std::max(longest, static_cast<double>(since_tick.nsecsElapsed()) / 1e6);
      since_tick.restart();
    });
    tick.start(10);
    while (running() && clock.elapsed() < timeout_ms) QTest::qWait(5);
    return longest;
  }

  template <typename Widget>
  static Widget* child(MainWindow& window, const char* name) {
    auto* widget = window.findChild<Widget*>(name);
    if (!widget) qFatal("no widget named %s", name);
    return widget;
  }

  // Four synthetic CT cases labelled with their brighter organ (120-140 HU), a manifest, and a
  // run file for what the form does not show: a 2 mm grid and a CT window keep runs short.
  static void write_synthetic_ct_dataset(const std::string& root) {
    std::ofstream manifest(root + "/cases.csv");
    manifest << "image,label\n";
    for (int i = 0; i < 4; ++i) {
      const auto synthetic = datasets::make_synthetic_ct(400 + i, datasets::random_ct_geometry(400 + i));
      const std::string image = root + "/case" + std::to_string(i) + ".nii.gz";
      const std::string label = root + "/case" + std::to_string(i) + "_organs.nii.gz";
      io::write(synthetic.image, image);
      io::Image organ2 = synthetic.labels;  // the brighter organ (120-140 HU)
      for (std::int64_t v = 0; v < organ2.element_count(); ++v) organ2.data<std::uint8_t>()[v] = organ2.data<std::uint8_t>()[v] == 2;
      io::write(organ2, label);
      manifest << image << "," << label << "\n";
    }
    manifest.close();
    // The run file supplies what the form does not show: a 2 mm grid keeps the run short.
    std::ofstream run(root + "/run.json");
    run << R"({"head": "unet", "data": {"foreground_fraction": 0.7, "contract": {"resize": "spacing", "target_spacing_mm": [2, 2, 2], "crop_nonzero": false,
               "intensity": [{"kind": "window", "center": 80, "width": 160}]}},
               "train": {"optimizer": "adamw", "lr": 0.002},
               "detection": {"score_threshold": 0.001, "max_detections": 20}})";
    run.close();

  }

  // A window at the screenshots' size whose errors go to its log, not to modal dialogs.
  static void show_for_test(MainWindow& window) {
    window.error_dialogs = false;
    window.resize(1500, 950);
    window.show();
  }

  // The synthetic dataset written into `root`, and the window shown on its first case.
  static bool start_session_on_synthetic_ct(MainWindow& window, const std::string& root) {
    write_synthetic_ct_dataset(root);
    show_for_test(window);
    return window.open_path(QString::fromStdString(root + "/case0.nii.gz"));
  }

  // The form's settings for a short run into `output`.
  static void fill_training_form(MainWindow& window, const std::string& root, const std::string& output, int epochs,
                                 int batches) {
    child<QLineEdit>(window, "manifest")->setText(QString::fromStdString(root + "/cases.csv"));
    child<QLineEdit>(window, "run_config")->setText(QString::fromStdString(root + "/run.json"));
    child<QSpinBox>(window, "epochs")->setValue(epochs);
    child<QSpinBox>(window, "batches_per_epoch")->setValue(batches);
    child<QDoubleSpinBox>(window, "learning_rate")->setValue(0.002);
    for (const char* axis : {"patch_x", "patch_y", "patch_z"}) child<QSpinBox>(window, axis)->setValue(32);
    child<QLineEdit>(window, "output")->setText(QString::fromStdString(output));
  }

 private Q_SLOTS:
  // A float volume whose voxel (x, y, z) holds x + 100 y + 10000 z, stored RAS-like (x and y
  // axes pointing to the patient's right and anterior) with anisotropic spacing.
  void views_show_the_voxel_values_at_known_points() {
    QTemporaryDir folder;
    io::Geometry grid;
    grid.size_xyz = {20, 24, 12};
    grid.spacing_xyz = {0.8, 1.2, 2.5};
    grid.origin_world = {30.0, -40.0, 10.0};
    grid.direction = {{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}};
    io::Image image(io::DType::kF32, 1, grid);
    float* values = image.data<float>();
    for (int z = 0; z < 12; ++z)
      for (int y = 0; y < 24; ++y)
        for (int x = 0; x < 20; ++x) values[(z * 24 + y) * 20 + x] = static_cast<float>(x + 100 * y + 10000 * z);
    const QString path = folder.filePath("known.nii.gz");
    io::write(image, path.toStdString());

    MainWindow window;
    window.error_dialogs = false;
    window.resize(1400, 900);
    window.show();
    QVERIFY(window.open_path(path));
    const std::array<std::int64_t, 3> voxel{3, 5, 7};
    // Move the crosshair there with a click in the axial view, then hover each view over it.
    SliceView* axial = window.view(Plane::kAxial);
    QTest::mouseClick(axial, Qt::LeftButton, {}, axial->widget_point_of({3, 5, axial->slice_index()}).toPoint());
    QCOMPARE(axial->slice_index(), 6);  // the middle slice: a click in a plane keeps its depth
    window.view(Plane::kCoronal)->set_crosshair({3, 5, 7});
    for (Plane plane : {Plane::kAxial, Plane::kCoronal, Plane::kSagittal}) {
      SliceView* view = window.view(plane);
      view->set_crosshair({3, 5, 7});
      const QPoint point = view->widget_point_of(voxel).toPoint();
      // QTest::mouseMove moves the platform cursor, which the offscreen platform lacks.
      QMouseEvent move(QEvent::MouseMove, point, view->mapToGlobal(point), Qt::NoButton, Qt::NoButton, Qt::NoModifier);
      QApplication::sendEvent(view, &move);
      QTRY_VERIFY(window.hover_text().contains("voxel (3, 5, 7)"));
      QVERIFY2(window.hover_text().contains("value 70503"), qPrintable(window.hover_text()));
      const io::Vec3 world = grid.index_to_world({3, 5, 7});
      QVERIFY(window.hover_text().contains(QString("(%1, %2, %3) mm").arg(world[0], 0, 'f', 2)
                                               .arg(world[1], 0, 'f', 2).arg(world[2], 0, 'f', 2)));
      // A pixel of the slice away from the crosshair lines has the grey the window gives its value.
      const PlaneAxes axes = plane_axes(grid, plane);
      std::array<std::int64_t, 3> probe = voxel;
      probe[axes.horizontal] = (probe[axes.horizontal] + 7) % grid.size_xyz[axes.horizontal];
      probe[axes.vertical] = (probe[axes.vertical] + 4) % grid.size_xyz[axes.vertical];
      const QImage drawn = view->grab().toImage();
      const double probe_value = probe[0] + 100.0 * probe[1] + 10000.0 * probe[2];
      QCOMPARE(qGray(drawn.pixel(view->widget_point_of(probe).toPoint())), grey_level(probe_value, view->window()));
    }
    // Radiological layout: index x runs to the patient's right, which is the screen's left.
    QVERIFY(axial->widget_point_of({4, 5, 7}).x() < axial->widget_point_of({3, 5, 7}).x());
    // Index y runs anterior, which is up in the axial view; index z runs superior, up in coronal.
    QVERIFY(axial->widget_point_of({3, 6, 7}).y() < axial->widget_point_of({3, 5, 7}).y());
    SliceView* coronal = window.view(Plane::kCoronal);
    QVERIFY(coronal->widget_point_of({3, 5, 8}).y() < coronal->widget_point_of({3, 5, 7}).y());
    // Pixels keep their physical aspect: 2.5 mm slices are drawn 2.5 / 0.8 times a 0.8 mm column.
    const double dx = std::abs(coronal->widget_point_of({4, 5, 7}).x() - coronal->widget_point_of({3, 5, 7}).x());
    const double dz = std::abs(coronal->widget_point_of({3, 5, 8}).y() - coronal->widget_point_of({3, 5, 7}).y());
    QVERIFY(std::abs(dz / dx - 2.5 / 0.8) < 0.01);
    // A right-drag to the right and down widens the window and raises the level, in every view;
    // a middle-drag pans without changing it.
    const Window before_drag = axial->window();
    const QPointF start = axial->widget_point_of(voxel);
    auto mouse = [&](QEvent::Type type, QPointF at, Qt::MouseButton button, Qt::MouseButtons held) {
      QMouseEvent event(type, at, axial->mapToGlobal(at), button, held, Qt::NoModifier);
      QApplication::sendEvent(axial, &event);
    };
    mouse(QEvent::MouseButtonPress, start, Qt::RightButton, Qt::RightButton);
    mouse(QEvent::MouseMove, start + QPointF(40, 20), Qt::NoButton, Qt::RightButton);
    mouse(QEvent::MouseButtonRelease, start + QPointF(40, 20), Qt::RightButton, Qt::NoButton);
    QVERIFY(axial->window().width > before_drag.width);
    QVERIFY(axial->window().centre > before_drag.centre);
    QCOMPARE(window.view(Plane::kCoronal)->window().width, axial->window().width);
    const Window after_drag = axial->window();
    mouse(QEvent::MouseButtonPress, start, Qt::MiddleButton, Qt::MiddleButton);
    mouse(QEvent::MouseMove, start + QPointF(30, 0), Qt::NoButton, Qt::MiddleButton);
    mouse(QEvent::MouseButtonRelease, start + QPointF(30, 0), Qt::MiddleButton, Qt::NoButton);
    QCOMPARE(axial->window().width, after_drag.width);
    QVERIFY(std::abs(axial->widget_point_of(voxel).x() - start.x() - 30) < 1.0);
    axial->reset_zoom();
    // Zoom about the pointer keeps the voxel under it.
    const QPointF before = axial->widget_point_of(voxel);
    QWheelEvent wheel(before, axial->mapToGlobal(before), {}, {0, 240}, Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(axial, &wheel);
    QVERIFY(axial->zoom() > 1.3);
    QCOMPARE(axial->voxel_at(before).value(), voxel);
    // A label overlay blends each label's colour over the grey at the chosen opacity.
    io::Image labels(io::DType::kU8, 1, grid);
    labels.data<std::uint8_t>()[labels.offset(0, 6, 10, 12)] = 2;
    axial->set_labels(&labels);
    axial->set_overlay_opacity(0.5);
    axial->set_crosshair({12, 10, 6});
    const PlaneAxes axial_axes = plane_axes(grid, Plane::kAxial);
    auto column_of = [&](int x) { return axial_axes.flip_horizontal ? 20 - 1 - x : x; };
    const int u = column_of(12), v = axial_axes.flip_vertical ? 24 - 1 - 10 : 10;
    const int grey = grey_level(12 + 100 * 10 + 10000 * 6, axial->window());
    const QColor tint = label_colour(2);
    const QColor drawn(axial->slice_image().pixel(u, v));
    QVERIFY(std::abs(drawn.red() - (grey + tint.red()) / 2) <= 1);
    QVERIFY(std::abs(drawn.green() - (grey + tint.green()) / 2) <= 1);
    QVERIFY(std::abs(drawn.blue() - (grey + tint.blue()) / 2) <= 1);
    QCOMPARE(QColor(axial->slice_image().pixel(column_of(13), v)).red(), grey_level(13 + 100 * 10 + 10000 * 6, axial->window()));
    // A detection box crossing the slice is outlined in its label's colour.
    io::Box box;
    box.start_xyz = {5, 8, 5};
    box.end_xyz = {15, 20, 9};
    box.label = 3;
    box.score = 0.9;
    axial->set_boxes({box});
    const QImage with_box = axial->grab().toImage();
    const QPoint edge = axial->widget_point_of({5, 14, 6}).toPoint();
    bool outlined = false;
    for (int dx = -1; dx <= 1; ++dx) outlined |= QColor(with_box.pixel(edge + QPoint(dx, 0))) == label_colour(3);
    QVERIFY2(outlined, "the box's edge at x = 5 is drawn");
    screenshot(window, "01_known_volume");

    // A file dropped on the window opens, and opened files are listed as recent.
    const QString dropped = folder.filePath("dropped.nii.gz");
    io::Image small(io::DType::kU8, 1, io::Geometry{});
    io::write(small, dropped.toStdString());
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(dropped)});
    QDragEnterEvent enter(QPoint(400, 300), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&window, &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(400, 300), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&window, &drop);
    QVERIFY2(window.image()->geometry().size_xyz == small.geometry().size_xyz, qPrintable(window.last_message()));
    const QStringList recent = QSettings().value("recent_files").toStringList();
    QVERIFY(recent.size() >= 2);
    QCOMPARE(recent[0], dropped);
    QCOMPARE(recent[1], path);
  }

  void opens_every_shared_data_format() {
    const std::string data = graft::testing::shared_data_dir();
    if (data.empty()) QSKIP("../shared/data is absent (a fresh clone): nothing to open");
    MainWindow window;
    window.error_dialogs = false;
    window.resize(1400, 900);
    window.show();
    QStringList offered;
    window.choose_item = [&](const QString&, const QStringList& items) {
      offered = items;
      return items.first();
    };
    const std::vector<std::string> files{
        "nifti/example_ct_sm.nii.gz", "nifti/example_mr_sm.nii.gz", "nrrd/brain1_image.nrrd",
        "dicom/ct-j2k-series", "dicom/mr-oblique-3d", "dicom/transfer-syntaxes/9.dcm",
        "geotiff/rasterio/RGB.byte.tif", "geotiff/rasterio/float_raster_with_nodata.tif",
        "geotiff/landsat8/l8_B1.tif", "hdf5/f16_ssmis_20200102v7.nc", "hdf5/ABoVE_TVPRM_bbox.nc4"};
    for (const std::string& file : files) {
      const QString path = QString::fromStdString(data + "/" + file);
      QVERIFY2(window.open_path(path), qPrintable(path + ": " + window.last_message()));
      const io::Image* image = window.image();
      QVERIFY(image);
      const SliceView* axial = window.view(Plane::kAxial);
      QCOMPARE(axial->slice_image().width(), static_cast<int>(image->geometry().size_xyz[plane_axes(image->geometry(), Plane::kAxial).horizontal]));
      // The view holds the voxel values: the hover readout at the centre matches the image.
      const auto& n = image->geometry().size_xyz;
      QVERIFY(window.hover_text().contains(QString("voxel (%1, %2, %3)").arg(n[0] / 2).arg(n[1] / 2).arg(n[2] / 2)));
      const double centre = image->value_at(image->offset(0, n[2] / 2, n[1] / 2, n[0] / 2));
      QVERIFY2(window.hover_text().contains("value " + QString::number(centre, 'g', 6)), qPrintable(window.hover_text()));
      if (file == "dicom/ct-j2k-series") {
        // The 20 slices make a thin coronal strip; it sits centred in its pane, not at an edge.
        const SliceView* coronal = window.view(Plane::kCoronal);
        const double first = coronal->widget_point_of({n[0] / 2, n[1] / 2, 0}).y();
        const double last = coronal->widget_point_of({n[0] / 2, n[1] / 2, n[2] - 1}).y();
        QVERIFY2(std::abs((first + last) / 2 - coronal->height() / 2.0) < 0.05 * coronal->height(),
                 qPrintable(QString("strip rows at %1 and %2 in a pane %3 high").arg(first).arg(last).arg(coronal->height())));
        screenshot(window, "02_ct_dicom");
      }
      if (file == "geotiff/rasterio/RGB.byte.tif") {
        // A 3D backbone cannot take a 2D raster: the app picks a 2D one that takes its 3 bands.
        const QString chosen = child<QComboBox>(window, "backbone")->currentText();
        const auto& contract = backbones::find_backbone(chosen.toStdString()).contract;
        QCOMPARE(contract.spatial_dims, 2);
        QVERIFY2(window.last_message().contains("backbone " + chosen + " chosen"), qPrintable(window.last_message()));
        QVERIFY2(!child<QPlainTextEdit>(window, "plan_warnings")->toPlainText().contains("No Plan"),
                 qPrintable(child<QPlainTextEdit>(window, "plan_warnings")->toPlainText()));
        screenshot(window, "03_geotiff");
        child<QComboBox>(window, "backbone")->setCurrentText("med3d-resnet10");
        QVERIFY(child<QPlainTextEdit>(window, "plan_warnings")->toPlainText().contains("3D and the image is 2D"));
      }
    }
    QVERIFY2(offered.size() >= 2, "the NetCDF file offers its variables");
    // The whole DICOM folder holds several series: the chooser offers each, and the one picked opens.
    offered.clear();
    QVERIFY(window.open_path(QString::fromStdString(data + "/dicom")));
    QVERIFY2(offered.size() >= 3, qPrintable(offered.join("; ")));
    // A Sentinel-2 backbone on an RGB raster: the picker says which bands are missing.
    QVERIFY(window.open_path(QString::fromStdString(data + "/geotiff/rasterio/RGB.byte.tif")));
    auto* backbone = child<QComboBox>(window, "backbone");
    backbone->setCurrentText("geo-resnet18-s2");
    QCOMPARE(backbone->currentText(), QString("geo-resnet18-s2"));
    QVERIFY2(child<QPlainTextEdit>(window, "plan_warnings")->toPlainText().contains("No Plan"),
             qPrintable(child<QPlainTextEdit>(window, "plan_warnings")->toPlainText()));
    // A broken file is refused with a message naming it, and the open image stays.
    const io::Image* kept = window.image();
    QVERIFY(!window.open_path(QString::fromStdString(data + "/geotiff/rasterio/corrupt.tif")));
    QVERIFY(window.last_message().contains("corrupt.tif"));
    QCOMPARE(window.image(), kept);
  }

  // A sheared CT series is refused unless the user agrees to resample it, as --correct-tilt does;
  // the Plan then says so.
  void asks_before_correcting_a_tilted_ct_series() {
    const std::string data = graft::testing::shared_data_dir();
    if (data.empty()) QSKIP("../shared/data is absent (a fresh clone): no CT series to tilt");
    const std::string series =
        graft::testing::tilted_dicom_series(data + "/dicom/ct-j2k-series", 15.0, graft::testing::temp_dir());
    QVERIFY2(!series.empty(), "dcmodify (Debian dcmtk) writes the tilted series");
    MainWindow window;
    window.error_dialogs = false;
    QString asked;
    QString answer = "Cancel";
    window.choose_item = [&](const QString& title, const QStringList& items) {
      asked = title + ": " + items.join(" | ");
      return items.contains(answer) ? answer : items.first();
    };
    QVERIFY(!window.open_path(QString::fromStdString(series)));
    QVERIFY2(asked.contains("gantry tilt of 15.00 degrees"), qPrintable(asked));
    QVERIFY(!window.image());
    answer = "";
    QVERIFY2(window.open_path(QString::fromStdString(series)), qPrintable(window.last_message()));
    QVERIFY(window.image());
    QVERIFY(std::abs(window.image()->metadata().gantry_tilt_corrected_degrees.value_or(0.0) - 15.0) < 1e-3);
    const QString plan = child<QTextEdit>(window, "plan_report")->toPlainText();
    QVERIFY2(plan.contains("gantry tilt of 15.00 degrees corrected"), qPrintable(plan));
  }

  // A model folder from `graft import nnunet` predicts on the open CT like any graft model.
  void predicts_with_an_imported_nnunet_model() {
    const std::string data = graft::testing::shared_data_dir();
    if (data.empty()) QSKIP("../shared/data is absent (a fresh clone): no CT to segment");
    if (graft::testing::python_with("torch").empty()) QSKIP("Debian python3-torch is not installed");
    const std::string root = graft::testing::temp_dir();
    const std::string nnunet = root + "/nnUNetTrainer__nnUNetPlans__3d_fullres";
    std::string output;
    QVERIFY2(graft::testing::run_nnunet_reference(nnunet + " plain --spacing 3.0,3.0,3.0", &output) == 0,
             output.c_str());
    QVERIFY2(graft::testing::run_command(graft::testing::graft_executable() + " import nnunet " + nnunet +
                                             " --output " + root + "/model",
                                         &output) == 0,
             output.c_str());
    MainWindow window;
    window.error_dialogs = false;
    QVERIFY2(window.open_path(QString::fromStdString(data + "/nifti/example_ct_sm.nii.gz")),
             qPrintable(window.last_message()));
    child<QLineEdit>(window, "model_folder")->setText(QString::fromStdString(root + "/model"));
    QTest::mouseClick(child<QPushButton>(window, "predict"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.prediction_job() == nullptr, 300000);
    QVERIFY2(window.prediction_labels(), qPrintable(window.last_message()));
    QVERIFY(window.prediction_labels()->geometry().same_grid(window.image()->geometry(), 1e-6));
  }

  // Open, train one epoch, cancel a second run and resume it, predict, overlay, save.
  // "Rank the backbones on this dataset": LogME of each candidate on the Dataset tab's cases, best
  // first, off the UI thread; a click on a row chooses that backbone.
  void ranks_the_backbones_on_the_dataset() {
    QTemporaryDir folder;
    const std::string root = folder.path().toStdString();
    MainWindow window;
    QVERIFY(start_session_on_synthetic_ct(window, root));
    child<QComboBox>(window, "backbone")->setCurrentText("med3d-resnet10");
    fill_training_form(window, root, root + "/model", 1, 1);
    auto* candidates = child<QLineEdit>(window, "rank_candidates");
    QVERIFY2(candidates->text().contains("med3d-resnet18"), qPrintable(candidates->text()));
    QVERIFY2(!candidates->text().contains("vit"), "2D backbones do not take a CT volume");
    // name=checkpoint gives a candidate its weights: a checkpoint that is not there is reported by name.
    candidates->setText(QString::fromStdString("med3d-resnet10=" + root + "/missing_resnet10.pth"));
    QTest::mouseClick(child<QPushButton>(window, "rank_backbones"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.rank_job() == nullptr, 120000);
    QVERIFY2(window.last_message().contains("missing_resnet10.pth"), qPrintable(window.last_message()));
    candidates->setText("med3d-resnet10, med3d-resnet18");
    QTest::mouseClick(child<QPushButton>(window, "rank_backbones"), Qt::LeftButton);
    QVERIFY(window.rank_job());
    const double stall_ms = longest_ui_stall_ms([&] { return window.rank_job() != nullptr; }, 300000);
    QVERIFY2(!window.rank_job(), "ranking finished within 5 minutes");
    QVERIFY2(stall_ms < 100.0, qPrintable(QString("the UI thread stalled %1 ms").arg(stall_ms)));
    QVERIFY2(window.last_message().startsWith("ranked"), qPrintable(window.last_message()));
    auto* table = child<QTableWidget>(window, "rank_table");
    QCOMPARE(table->rowCount(), 2);
    QVERIFY(table->item(0, 1)->text().toDouble() >= table->item(1, 1)->text().toDouble());
    QVERIFY(table->item(0, 2)->text().toLongLong() > 0);
    screenshot(window, "03_ranked_backbones");
    const QString second = table->item(1, 0)->text();
    QTest::mouseClick(table->viewport(), Qt::LeftButton, {}, table->visualItemRect(table->item(1, 0)).center());
    QCOMPARE(child<QComboBox>(window, "backbone")->currentText(), second);
  }

  void scripted_session() {
    QTemporaryDir folder;
    const std::string root = folder.path().toStdString();
    MainWindow window;
    QVERIFY(start_session_on_synthetic_ct(window, root));
    child<QComboBox>(window, "backbone")->setCurrentText("med3d-resnet10");
    QVERIFY(!window.findChild<QTextEdit*>("plan_report")->toPlainText().isEmpty());
    child<QLineEdit>(window, "manifest")->setText(QString::fromStdString(root + "/cases.csv"));
    QTest::mouseClick(child<QPushButton>(window, "check_cases"), Qt::LeftButton);
    auto* cases = child<QTableWidget>(window, "cases");
    QCOMPARE(cases->rowCount(), 4);
    for (int row = 0; row < 4; ++row) QCOMPARE(cases->item(row, 3)->text(), QString("ok"));
    // 90 steps: after 60, this run's Dice on case0 ranged 0.23-0.90 over seeds; after 90, 0.80-0.89.
    fill_training_form(window, root, root + "/model", 3, 30);

    // Train one epoch; the UI thread keeps serving events while the worker computes.
    QTest::mouseClick(child<QPushButton>(window, "train"), Qt::LeftButton);
    QVERIFY(window.training_job());
    const double stall_ms = longest_ui_stall_ms([&] { return window.training_job() != nullptr; }, 300000);
    QVERIFY2(!window.training_job(), "training finished within 5 minutes");
    std::printf("gui: longest UI stall during training %.1f ms\n", stall_ms);
    QVERIFY2(stall_ms < 100.0, qPrintable(QString("the UI thread stalled %1 ms").arg(stall_ms)));
    QVERIFY2(window.last_message().startsWith("done"), qPrintable(window.last_message()));
    QCOMPARE(window.loss_points(), 90);
    QCOMPARE(window.metric_points(), 3);
    QVERIFY(fs::exists(root + "/model/model.safetensors"));
    child<QTabWidget>(window, "workflow")->setCurrentIndex(2);
    screenshot(window, "04_trained");

    // A second run (one epoch) is cancelled after its first step, leaves a checkpoint, and resumes to the end.
    child<QLineEdit>(window, "output")->setText(QString::fromStdString(root + "/cancelled"));
    child<QSpinBox>(window, "epochs")->setValue(1);
    child<QSpinBox>(window, "batches_per_epoch")->setValue(4);
    QTest::mouseClick(child<QPushButton>(window, "train"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.loss_points() >= 1, 120000);
    QTest::mouseClick(child<QPushButton>(window, "cancel"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.training_job() == nullptr, 120000);
    QVERIFY2(window.last_message().startsWith("cancelled"), qPrintable(window.last_message()));
    QVERIFY(fs::exists(root + "/cancelled/checkpoint.pt"));
    QVERIFY(!fs::exists(root + "/cancelled/model.safetensors"));
    screenshot(window, "05_cancelled");
    QTest::mouseClick(child<QPushButton>(window, "resume"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.training_job() == nullptr, 300000);
    QVERIFY2(window.last_message().startsWith("done"), qPrintable(window.last_message()));
    QVERIFY(fs::exists(root + "/cancelled/model.safetensors"));

    // Predict with the first model on the open image: the overlay lies on the image's grid.
    child<QLineEdit>(window, "model_folder")->setText(QString::fromStdString(root + "/model"));
    QTest::mouseClick(child<QPushButton>(window, "predict"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.prediction_job() == nullptr, 300000);
    QVERIFY2(window.prediction_labels(), qPrintable(window.last_message()));
    QVERIFY(window.prediction_labels()->geometry().same_grid(window.image()->geometry(), 1e-6));
    const io::Image reference = io::read(root + "/case0_organs.nii.gz");
    std::int64_t both = 0, predicted = 0, expected = 0;
    for (std::int64_t v = 0; v < reference.element_count(); ++v) {
      const bool p = window.prediction_labels()->value_at(v) > 0, r = reference.value_at(v) > 0;
      both += p && r;
      predicted += p;
      expected += r;
    }
    const double dice = 2.0 * both / std::max<std::int64_t>(predicted + expected, 1);
    std::printf("gui: prediction on case0 after 3 short epochs: Dice %.3f (%lld voxels predicted, %lld labelled)\n",
                dice, static_cast<long long>(predicted), static_cast<long long>(expected));
    QVERIFY2(dice > 0.5, "the short run learns the bright organ");
    // The overlay is drawn: with the crosshair on the predicted organ, the axial slice is tinted.
    std::array<double, 3> centre{0, 0, 0};
    const auto& n = reference.geometry().size_xyz;
    for (std::int64_t z = 0; z < n[2]; ++z)
      for (std::int64_t y = 0; y < n[1]; ++y)
        for (std::int64_t x = 0; x < n[0]; ++x)
          if (window.prediction_labels()->value_at(window.prediction_labels()->offset(0, z, y, x)) > 0) {
            centre[0] += x;
            centre[1] += y;
            centre[2] += z;
          }
    window.set_crosshair({static_cast<std::int64_t>(centre[0] / predicted), static_cast<std::int64_t>(centre[1] / predicted),
                          static_cast<std::int64_t>(centre[2] / predicted)});
    QVERIFY(window.hover_text().contains("label 1"));
    const QImage& slice = window.view(Plane::kAxial)->slice_image();
    int tinted = 0;
    for (int v = 0; v < slice.height(); ++v)
      for (int u = 0; u < slice.width(); ++u) tinted += qRed(slice.pixel(u, v)) > qGreen(slice.pixel(u, v)) + 40;
    QVERIFY2(tinted > 20, qPrintable(QString("%1 tinted pixels").arg(tinted)));
    child<QTabWidget>(window, "workflow")->setCurrentIndex(3);
    screenshot(window, "06_prediction_overlay");

    // Saved in the input's format (NIfTI), on its grid, voxel for voxel.
    const QStringList written = window.save_prediction(QString::fromStdString(root + "/case0_prediction.nii.gz"));
    QCOMPARE(written.size(), 1);
    const io::Image saved = io::read(written[0].toStdString());
    QVERIFY(saved.geometry().same_grid(window.image()->geometry(), 1e-4));
    QCOMPARE(saved.byte_count(), window.prediction_labels()->byte_count());
    QVERIFY(std::memcmp(saved.bytes(), window.prediction_labels()->bytes(), saved.byte_count()) == 0);

    // A DICOM series' prediction is saved as a DICOM SEG that references the series.
    const std::string data = graft::testing::shared_data_dir();
    if (data.empty()) QSKIP("../shared/data is absent: the DICOM SEG output is not checked");
    // The shared series is anonymised down to no StudyInstanceUID; a copy gets test UIDs.
    const std::string series_folder = graft::testing::dicom_series_with_uids(data + "/dicom/ct-j2k-series");
    QVERIFY(!series_folder.empty());
    QVERIFY(window.open_path(QString::fromStdString(series_folder)));
    QTest::mouseClick(child<QPushButton>(window, "predict"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.prediction_job() == nullptr, 300000);
    QVERIFY2(window.prediction_labels(), qPrintable(window.last_message()));
    const QStringList seg = window.save_prediction(QString::fromStdString(root + "/ct_seg.dcm"));
    QVERIFY2(seg.size() == 1, qPrintable(window.last_message()));
    const io::DicomSegContents contents = io::read_dicom_seg(seg[0].toStdString());
    const io::DicomVolume series = io::read_dicom(series_folder);
    QCOMPARE(contents.referenced_series_instance_uid, series.source.series_instance_uid);
    if (!contents.segments.empty()) QVERIFY(contents.labels.geometry().same_grid(window.image()->geometry(), 1e-3));
  }

  // task: detection from the form: train one short epoch, predict boxes on the open image, draw
  // them, and save them as graft JSON plus Slicer markups beside the image. One epoch teaches a
  // detector little, so the run file's score threshold (0.001) lets its weak boxes through.
  void detection_session() {
    QTemporaryDir folder;
    const std::string root = folder.path().toStdString();
    MainWindow window;
    QVERIFY(start_session_on_synthetic_ct(window, root));
    child<QComboBox>(window, "task")->setCurrentText("detection");
    fill_training_form(window, root, root + "/detector", 1, 6);
    QTest::mouseClick(child<QPushButton>(window, "train"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.training_job() == nullptr, 300000);
    QVERIFY2(window.last_message().startsWith("done: best val_froc"), qPrintable(window.last_message()));
    QCOMPARE(window.metric_points(), 1);
    // Training fills in the model folder; predict with it.
    QCOMPARE(child<QLineEdit>(window, "model_folder")->text(), QString::fromStdString(root + "/detector"));
    QTest::mouseClick(child<QPushButton>(window, "predict"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window.prediction_job() == nullptr, 300000);
    QVERIFY2(window.last_message().contains("detection:"), qPrintable(window.last_message()));
    QVERIFY(!window.prediction_labels());
    QVERIFY(!window.prediction_boxes().empty());
    QVERIFY(window.prediction_boxes().size() <= 20);
    // The threshold control starts at the model's own (the run file's 0.001) and hides the boxes
    // scoring below it.
    auto* threshold = child<QDoubleSpinBox>(window, "box_threshold");
    QCOMPARE(threshold->value(), 0.001);
    const std::vector<io::Box> all = window.prediction_boxes();
    double middle = 0.0;
    for (const io::Box& box : all) middle += box.score / all.size();
    threshold->setValue(middle);
    std::size_t expected = 0;
    for (const io::Box& box : all) expected += box.score >= threshold->value();
    QCOMPARE(window.prediction_boxes().size(), expected);
    for (const io::Box& box : window.prediction_boxes()) QVERIFY(box.score >= threshold->value());
    QVERIFY2(child<QLabel>(window, "prediction_summary")->text().contains(QString("%1 of %2 boxes").arg(expected).arg(all.size())),
             qPrintable(child<QLabel>(window, "prediction_summary")->text()));
    threshold->setValue(0.001);
    QCOMPARE(window.prediction_boxes().size(), all.size());
    const QStringList written = window.save_prediction({});
    QCOMPARE(written.size(), 2);
    QCOMPARE(written[0], QString::fromStdString(root + "/case0_boxes.json"));
    QCOMPARE(written[1], QString::fromStdString(root + "/case0_boxes.mrk.json"));
    std::ifstream boxes_file(written[0].toStdString()), markups_file(written[1].toStdString());
    const nlohmann::json boxes = nlohmann::json::parse(boxes_file), markups = nlohmann::json::parse(markups_file);
    QCOMPARE(boxes["boxes"].size(), window.prediction_boxes().size());
    QCOMPARE(markups["markups"].size(), window.prediction_boxes().size());
    std::printf("gui: detector after one short epoch: %zu boxes on case0\n", window.prediction_boxes().size());
    const io::Vec3 centre = io::box_centre(window.prediction_boxes()[0]);
    window.set_crosshair({std::llround(centre[0]), std::llround(centre[1]), std::llround(centre[2])});
    child<QTabWidget>(window, "workflow")->setCurrentIndex(3);
    screenshot(window, "07_detection_boxes");
  }
};

}  // namespace graft::gui

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QApplication::setOrganizationName("graft-tests");  // recent files go to their own settings
  graft::gui::MainWindowTest test;
  return QTest::qExec(&test, argc, argv);
}

#include "main_window_test.moc"
