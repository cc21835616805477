#pragma once

// One slice of an image through the crosshair, in one of three anatomical planes, with window /
// level (presets, or a right-drag), a label overlay, detection boxes, zoom (wheel) and pan
// (middle-drag). Pixels are drawn at their physical aspect (spacing), and the planes are laid
// out as radiologists read them: axial with the patient's left on the screen's right and
// anterior up, coronal and sagittal with superior up. A georeferenced raster is drawn north up.
#include <QImage>
#include <QWidget>
#include <array>
#include <optional>
#include <vector>

#include "io/boxes.h"
#include "io/image.h"

namespace graft::gui {

enum class Plane { kAxial, kCoronal, kSagittal };
QString plane_name(Plane plane);

// Which index axis runs along the screen's x and y and which one the plane cuts, and whether an
// axis runs against the screen's direction.
struct PlaneAxes {
  int horizontal = 0, vertical = 1, normal = 2;
  bool flip_horizontal = false, flip_vertical = false;
};
PlaneAxes plane_axes(const io::Geometry& grid, Plane plane);

struct Window {
  double centre = 0.0;
  double width = 1.0;
};
// The grey level (0..255) a value gets under a window, as the views draw it.
int grey_level(double value, const Window& window);

// Label colours, one per label value (0 is never drawn).
QColor label_colour(int label);

class SliceView : public QWidget {
  Q_OBJECT

 public:
  explicit SliceView(Plane plane, QWidget* parent = nullptr);

  // The views draw but never own: the main window keeps the images alive while they are shown.
  void set_image(const io::Image* image);
  void set_labels(const io::Image* labels);  // on the image's grid, or nullptr
  void set_boxes(std::vector<io::Box> boxes);  // on the image's grid
  void set_window(const Window& window);
  void set_overlay_opacity(double opacity);
  void set_crosshair(const io::Vec3& index_xyz);
  void reset_zoom();

  Plane plane() const { return plane_; }
  std::int64_t slice_index() const;
  // The voxel index under a widget point, if it lies on the image.
  std::optional<std::array<std::int64_t, 3>> voxel_at(const QPointF& widget_point) const;
  // The widget point at a voxel's centre (which must lie on the displayed slice's grid).
  QPointF widget_point_of(const std::array<std::int64_t, 3>& voxel) const;
  // The slice as drawn before scaling: grey (or RGB) pixels with the overlay blended in.
  const QImage& slice_image() const { return slice_; }
  double zoom() const { return zoom_; }
  const Window& window() const { return window_; }

 Q_SIGNALS:
  // A left click or drag: the crosshair moves to this voxel, in every view.
  void crosshair_requested(std::array<std::int64_t, 3> voxel);
  // The pointer moved over this voxel.
  void hovered(std::array<std::int64_t, 3> voxel);
  // A right-drag asks for this window / level, in every view.
  void window_dragged(graft::gui::Window window);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;

 private:
  void render_slice();
  QRectF image_rect() const;  // where the slice lands in the widget

  Plane plane_;
  const io::Image* image_ = nullptr;
  const io::Image* labels_ = nullptr;
  std::vector<io::Box> boxes_;
  PlaneAxes axes_;
  Window window_;
  double opacity_ = 0.4;
  io::Vec3 crosshair_{0, 0, 0};
  QImage slice_;
  double zoom_ = 1.0;
  QPointF pan_{0, 0};
  std::optional<QPointF> drag_from_;
  Qt::MouseButton drag_button_ = Qt::NoButton;  // right: window / level; middle: pan
};

}  // namespace graft::gui
