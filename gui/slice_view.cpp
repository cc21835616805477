#include "gui/slice_view.h"

#include <QMouseEvent>
#include <QPainter>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>

namespace graft::gui {

QString plane_name(Plane plane) {
  switch (plane) {
    case Plane::kAxial: return "axial";
    case Plane::kCoronal: return "coronal";
    case Plane::kSagittal: return "sagittal";
  }
  return {};
}

PlaneAxes plane_axes(const io::Geometry& grid, Plane plane) {
  const auto& d = grid.direction;  // column j: world direction of index axis j
  PlaneAxes axes;
  if (grid.size_xyz[2] == 1) {
    // A 2D image: one view of its pixels; a raster north up, anything else row 0 at the top.
    axes.flip_vertical = grid.frame == io::Frame::kCRS && d[1][1] > 0;
    return axes;
  }
  const int normal_world = plane == Plane::kAxial ? 2 : plane == Plane::kCoronal ? 1 : 0;
  const int horizontal_world = plane == Plane::kSagittal ? 1 : 0;
  auto closest = [&](int world, std::vector<int> candidates) {
    return *std::max_element(candidates.begin(), candidates.end(),
                             [&](int a, int b) { return std::abs(d[world][a]) < std::abs(d[world][b]); });
  };
  axes.normal = closest(normal_world, {0, 1, 2});
  std::vector<int> rest;
  for (int j = 0; j < 3; ++j) if (j != axes.normal) rest.push_back(j);
  axes.horizontal = closest(horizontal_world, rest);
  axes.vertical = rest[0] == axes.horizontal ? rest[1] : rest[0];
  // LPS: +x is the patient's left (screen right, radiological), +y posterior (screen down in
  // axial), +z superior (screen up in coronal and sagittal).
  axes.flip_horizontal = d[horizontal_world][axes.horizontal] < 0;
  axes.flip_vertical = plane == Plane::kAxial ? d[1][axes.vertical] < 0 : d[2][axes.vertical] > 0;
  return axes;
}

int grey_level(double value, const Window& window) {
  const double low = window.centre - window.width / 2;
  const double fraction = (value - low) / std::max(window.width, 1e-12);
  return static_cast<int>(std::lround(255.0 * std::clamp(fraction, 0.0, 1.0)));
}

QColor label_colour(int label) {
  static const QColor palette[] = {QColor(230, 60, 60),  QColor(60, 200, 80),  QColor(70, 120, 240),
                                   QColor(240, 200, 40), QColor(200, 80, 220), QColor(40, 210, 210),
                                   QColor(250, 140, 40), QColor(150, 230, 120)};
  return palette[(std::max(label, 1) - 1) % 8];
}

SliceView::SliceView(Plane plane, QWidget* parent) : QWidget(parent), plane_(plane) {
  setMouseTracking(true);
  setMinimumSize(160, 160);
  setAutoFillBackground(false);
  setAccessibleName(plane_name(plane) + " view");
}

void SliceView::set_image(const io::Image* image) {
  image_ = image;
  labels_ = nullptr;
  boxes_.clear();
  if (image_) axes_ = plane_axes(image_->geometry(), plane_);
  reset_zoom();
  render_slice();
}

void SliceView::set_labels(const io::Image* labels) {
  labels_ = labels;
  render_slice();
}

void SliceView::set_boxes(std::vector<io::Box> boxes) {
  boxes_ = std::move(boxes);
  update();
}

void SliceView::set_window(const Window& window) {
  window_ = window;
  render_slice();
}

void SliceView::set_overlay_opacity(double opacity) {
  opacity_ = std::clamp(opacity, 0.0, 1.0);
  render_slice();
}

void SliceView::set_crosshair(const io::Vec3& index_xyz) {
  const std::int64_t before = slice_index();
  crosshair_ = index_xyz;
  if (slice_index() != before || slice_.isNull()) render_slice();
  update();
}

void SliceView::reset_zoom() {
  zoom_ = 1.0;
  pan_ = {0, 0};
  update();
}

std::int64_t SliceView::slice_index() const {
  if (!image_) return 0;
  const std::int64_t n = image_->geometry().size_xyz[axes_.normal];
  return std::clamp<std::int64_t>(std::llround(crosshair_[axes_.normal]), 0, n - 1);
}

void SliceView::render_slice() {
  if (!image_) {
    slice_ = QImage();
    update();
    return;
  }
  const auto& n = image_->geometry().size_xyz;
  const int width = static_cast<int>(n[axes_.horizontal]), height = static_cast<int>(n[axes_.vertical]);
  slice_ = QImage(width, height, QImage::Format_RGB32);
  const bool rgb = image_->channels() >= 3 && image_->dtype() == io::DType::kU8;
  const bool overlay = labels_ && labels_->geometry().size_xyz == n;
  std::array<std::int64_t, 3> voxel{0, 0, 0};
  voxel[axes_.normal] = slice_index();
  for (int v = 0; v < height; ++v) {
    auto* row = reinterpret_cast<QRgb*>(slice_.scanLine(v));
    voxel[axes_.vertical] = axes_.flip_vertical ? height - 1 - v : v;
    for (int u = 0; u < width; ++u) {
      voxel[axes_.horizontal] = axes_.flip_horizontal ? width - 1 - u : u;
      const auto at = [&](std::int64_t channel) { return image_->offset(channel, voxel[2], voxel[1], voxel[0]); };
      QColor colour;
      if (rgb) {
        colour = QColor(static_cast<int>(image_->value_at(at(0))), static_cast<int>(image_->value_at(at(1))),
                        static_cast<int>(image_->value_at(at(2))));
      } else {
        const int grey = grey_level(image_->value_at(at(0)), window_);
        colour = QColor(grey, grey, grey);
      }
      if (overlay) {
        const int label = static_cast<int>(labels_->value_at(labels_->offset(0, voxel[2], voxel[1], voxel[0])));
        if (label > 0) {
          const QColor tint = label_colour(label);
          colour = QColor(static_cast<int>(colour.red() * (1 - opacity_) + tint.red() * opacity_),
                          static_cast<int>(colour.green() * (1 - opacity_) + tint.green() * opacity_),
                          static_cast<int>(colour.blue() * (1 - opacity_) + tint.blue() * opacity_));
        }
      }
      row[u] = colour.rgb();
    }
  }
  update();
}

QRectF SliceView::image_rect() const {
  if (slice_.isNull()) return {};
  const auto& spacing = image_->geometry().spacing_xyz;
  const double physical_width = slice_.width() * spacing[axes_.horizontal];
  const double physical_height = slice_.height() * spacing[axes_.vertical];
  const double scale = std::min(width() / physical_width, height() / physical_height) * zoom_;
  const QSizeF size(physical_width * scale, physical_height * scale);
  const QPointF centre = QPointF(width() / 2.0, height() / 2.0) + pan_;
  return QRectF(centre - QPointF(size.width() / 2, size.height() / 2), size);
}

std::optional<std::array<std::int64_t, 3>> SliceView::voxel_at(const QPointF& point) const {
  const QRectF rect = image_rect();
  if (rect.isEmpty() || !rect.contains(point)) return std::nullopt;
  const int width = slice_.width(), height = slice_.height();
  const int u = std::clamp(static_cast<int>((point.x() - rect.left()) / rect.width() * width), 0, width - 1);
  const int v = std::clamp(static_cast<int>((point.y() - rect.top()) / rect.height() * height), 0, height - 1);
  std::array<std::int64_t, 3> voxel{0, 0, 0};
  voxel[axes_.horizontal] = axes_.flip_horizontal ? width - 1 - u : u;
  voxel[axes_.vertical] = axes_.flip_vertical ? height - 1 - v : v;
  voxel[axes_.normal] = slice_index();
  return voxel;
}

QPointF SliceView::widget_point_of(const std::array<std::int64_t, 3>& voxel) const {
  const QRectF rect = image_rect();
  const int width = slice_.width(), height = slice_.height();
  const double u = axes_.flip_horizontal ? width - 1 - voxel[axes_.horizontal] : voxel[axes_.horizontal];
  const double v = axes_.flip_vertical ? height - 1 - voxel[axes_.vertical] : voxel[axes_.vertical];
  return {rect.left() + (u + 0.5) / width * rect.width(), rect.top() + (v + 0.5) / height * rect.height()};
}

void SliceView::paintEvent(QPaintEvent*) {
  QPainter painter(this);
  painter.fillRect(rect(), Qt::black);
  if (slice_.isNull()) return;
  const QRectF target = image_rect();
  painter.drawImage(target, slice_);
  const int width = slice_.width(), height = slice_.height();
  // A continuous index c along an axis lies at slice pixel c + 0.5 (voxel i spans [i-0.5, i+0.5]).
  auto screen_x = [&](double index) {
    const double u = axes_.flip_horizontal ? width - (index + 0.5) : index + 0.5;
    return target.left() + u / width * target.width();
  };
  auto screen_y = [&](double index) {
    const double v = axes_.flip_vertical ? height - (index + 0.5) : index + 0.5;
    return target.top() + v / height * target.height();
  };
  const double slice = static_cast<double>(slice_index());
  for (const io::Box& box : boxes_) {
    if (slice < box.start_xyz[axes_.normal] || slice > box.end_xyz[axes_.normal]) continue;
    const QColor colour = label_colour(box.label);
    painter.setPen(QPen(colour, 1.5));
    const QRectF outline(QPointF(screen_x(box.start_xyz[axes_.horizontal]), screen_y(box.start_xyz[axes_.vertical])),
                         QPointF(screen_x(box.end_xyz[axes_.horizontal]), screen_y(box.end_xyz[axes_.vertical])));
    painter.drawRect(outline.normalized());
    // The score sits above the box, or just inside it when the box reaches the top of the view.
    const QRectF box_rect = outline.normalized();
    const double text_y = box_rect.top() - 3 < 14 ? box_rect.top() + 14 : box_rect.top() - 3;
    painter.drawText(QPointF(box_rect.left() + 2, text_y), QString::number(box.score, 'f', 2));
  }
  painter.setPen(QPen(QColor(255, 220, 0, 170), 1));
  const double x = screen_x(crosshair_[axes_.horizontal]), y = screen_y(crosshair_[axes_.vertical]);
  painter.drawLine(QPointF(x, target.top()), QPointF(x, target.bottom()));
  painter.drawLine(QPointF(target.left(), y), QPointF(target.right(), y));
  painter.setPen(Qt::white);
  painter.drawText(QPointF(6, 16), QString("%1  %2 / %3").arg(plane_name(plane_)).arg(slice_index() + 1)
                                       .arg(image_->geometry().size_xyz[axes_.normal]));
}

void SliceView::mousePressEvent(QMouseEvent* event) {
  if (event->button() == Qt::LeftButton) {
    if (const auto voxel = voxel_at(event->position())) Q_EMIT crosshair_requested(*voxel);
  } else {
    drag_from_ = event->position();
    drag_button_ = event->button();
  }
}

void SliceView::mouseMoveEvent(QMouseEvent* event) {
  const auto voxel = voxel_at(event->position());
  if (voxel) Q_EMIT hovered(*voxel);
  if (drag_from_) {
    const QPointF moved = event->position() - *drag_from_;
    drag_from_ = event->position();
    if (drag_button_ == Qt::RightButton) {
      // Window / level as viewers do it: right-drag right widens the window, down raises the
      // level; a full widget's drag spans the current width once.
      const double per_pixel = window_.width / std::max(1, width());
      Window dragged = window_;
      dragged.width = std::max(1e-6, window_.width + moved.x() * per_pixel);
      dragged.centre = window_.centre + moved.y() * per_pixel;
      Q_EMIT window_dragged(dragged);
    } else {
      pan_ += moved;
      update();
    }
  } else if ((event->buttons() & Qt::LeftButton) && voxel) {
    Q_EMIT crosshair_requested(*voxel);
  }
}

void SliceView::mouseReleaseEvent(QMouseEvent*) { drag_from_.reset(); }

void SliceView::wheelEvent(QWheelEvent* event) {
  const double factor = std::pow(1.15, event->angleDelta().y() / 120.0);
  const QPointF centre(width() / 2.0, height() / 2.0);
  const QPointF point = event->position();
  // Zoom about the pointer: the point under it stays where it is.
  pan_ = point - centre - (point - centre - pan_) * factor;
  zoom_ *= factor;
  update();
}

}  // namespace graft::gui
