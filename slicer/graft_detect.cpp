// GraftDetect: a graft detection model as a 3D Slicer CLI module. The boxes come back as a
// markups ROI file (.mrk.json, each box one ROI named after its class and score) and as a table
// of scores Slicer shows as a Table node.
#include <cstdio>
#include <string>

#include "finetune/blas_kernels.h"
#include "finetune/tasks/detection/detection_training.h"
#include "io/atomic_file.h"
#include "io/boxes.h"
#include "io/image_file.h"
#include "slicer/module_support.h"
#include "slicer/module_xml.h"

namespace {

// One row per box: class, score, and the box's centre and size in LPS millimetres.
std::string score_table(const std::vector<graft::io::Box>& boxes, const graft::io::Geometry& grid,
                        const std::vector<std::string>& class_names) {
  std::string table = "class,score,center_l_mm,center_p_mm,center_s_mm,size_x_mm,size_y_mm,size_z_mm\n";
  for (const graft::io::Box& box : boxes) {
    const graft::io::Vec3 centre = grid.index_to_world(graft::io::box_centre(box));
    const graft::io::Vec3 size = graft::io::box_size(box);
    const std::string name = box.label >= 1 && box.label <= static_cast<int>(class_names.size())
                                 ? class_names[box.label - 1]
                                 : "class " + std::to_string(box.label);
    char row[512];
    std::snprintf(row, sizeof row, "%s,%.4f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f\n", name.c_str(), box.score, centre[0],
                  centre[1], centre[2], size[0] * grid.spacing_xyz[0], size[1] * grid.spacing_xyz[1],
                  size[2] * grid.spacing_xyz[2]);
    table += row;
  }
  return table;
}

}  // namespace

int main(int argc, char** argv) {
  graft::finetune::use_fitting_blas_kernels(argv);
  graft::finetune::reuse_freed_memory();
  CLI::App app{"GraftDetect: find boxes in a volume with a graft detection model folder (3D Slicer CLI module)"};
  std::string input, boxes_path, model, table_path, return_parameters;
  app.add_option("inputVolume", input, "volume to search (NRRD or NIfTI)");
  app.add_option("outputBoxes", boxes_path, "markups ROI file (.mrk.json) with one ROI per box");
  app.add_option("--model", model, "detection model folder written by graft train");
  app.add_option("--scores", table_path, "optional table (.csv) of each box's class, score, centre and size");
  if (const auto status =
          graft::slicer::parse_module_command_line(app, argc, argv, graft::slicer::kModuleXml, return_parameters)) {
    return *status;
  }
  if (input.empty() || boxes_path.empty() || model.empty()) {
    return graft::slicer::usage_error("GraftDetect", "--model DIR, an input volume and an output .mrk.json");
  }
  return graft::slicer::run_module("GraftDetect", "detecting in " + input, [&] {
    graft::finetune::Detector detector{graft::finetune::ModelFolder(model)};
    graft::slicer::report_progress(0.1);
    const graft::io::Image image = graft::io::read(input);
    graft::slicer::report_progress(0.2);
    const std::vector<graft::io::Box> boxes = detector.detect(image, input);
    graft::slicer::report_progress(0.9);
    const auto& names = detector.class_names();
    graft::io::write_text_atomically(
        boxes_path, graft::io::boxes_to_slicer_markups(boxes, image.geometry(), names).dump(2) + "\n");
    if (!table_path.empty()) {
      graft::io::write_text_atomically(table_path, score_table(boxes, image.geometry(), names));
    }
    if (!return_parameters.empty()) {
      graft::slicer::write_return_parameters(return_parameters, {{"boxCount", std::to_string(boxes.size())}});
    }
  });
}
