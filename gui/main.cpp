// graft's desktop app: graft-gui [IMAGE]
#include <QApplication>

#include "finetune/blas_kernels.h"
#include "gui/main_window.h"

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  graft::finetune::reuse_freed_memory();
  QApplication app(argc, argv);
  QApplication::setApplicationName("graft");
  QApplication::setOrganizationName("graft");
  graft::gui::MainWindow window;
  window.show();
  if (argc > 1) window.open_path(QString::fromLocal8Bit(argv[1]));
  return app.exec();
}
