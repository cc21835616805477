# The installable package: public headers under include/graft, the libraries, the executables and
# graftConfig.cmake, so another CMake project writes
#   find_package(graft CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE graft::graft)
# or links one library (graft::io, graft::preprocess, graft::backbone_registry, graft::manifest,
# graft::datasets, graft::backbones, graft::finetune). `cpack -G DEB` makes a Debian package.
include(CMakePackageConfigHelpers)

set(GRAFT_LIBRARY_TARGETS graft_io graft_preprocess graft_backbone_registry graft_manifest graft_datasets
                          graft_backbones graft_finetune)
foreach(library ${GRAFT_LIBRARY_TARGETS})
  string(REPLACE "graft_" "" exported_name ${library})
  set_target_properties(${library} PROPERTIES EXPORT_NAME ${exported_name})
endforeach()

# graft::graft: everything a program needs to read, plan, train and predict.
# (The target is graft_all here, since the executable holds the name graft.)
add_library(graft_all INTERFACE)
target_link_libraries(graft_all INTERFACE ${GRAFT_LIBRARY_TARGETS})
set_target_properties(graft_all PROPERTIES EXPORT_NAME graft)

install(TARGETS ${GRAFT_LIBRARY_TARGETS} graft_all EXPORT graftTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The DICOM reader's inner headers name DCMTK's types, and the format modules' tables are
# libgraft_io's own: they stay out of the public API.
install(DIRECTORY io preprocess datasets backbones finetune
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/graft
        FILES_MATCHING PATTERN "*.h"
        PATTERN "dicom_tags.h" EXCLUDE PATTERN "dicom_header.h" EXCLUDE PATTERN "dicom_assembly.h" EXCLUDE
        PATTERN "dicom_decoding.h" EXCLUDE PATTERN "dicom_tilt.h" EXCLUDE
        PATTERN "io_module.h" EXCLUDE PATTERN "*_module.h" EXCLUDE)

# Modules libgraft_io opens at run time, beside it (io/io_module.h); no program links them.
if(GRAFT_IO_MODULE_TARGETS)
  install(TARGETS ${GRAFT_IO_MODULE_TARGETS} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()

set(GRAFT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/graft)
install(EXPORT graftTargets NAMESPACE graft:: DESTINATION ${GRAFT_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/graftConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/graftConfig.cmake
                              INSTALL_DESTINATION ${GRAFT_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/graftConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/graftConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/graftConfigVersion.cmake
        DESTINATION ${GRAFT_CMAKE_DIR})

install(TARGETS graft graft-ml RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(TARGET graft-gui)
  install(TARGETS graft-gui RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
if(TARGET GraftSegment)
  # Slicer's "Additional module paths" takes this folder: the module and its XML side by side.
  set(GRAFT_SLICER_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/graft/slicer-cli-modules)
  foreach(module GraftSegment GraftDetect GraftClassify GraftTrain)
    set_target_properties(${module} PROPERTIES INSTALL_RPATH "$ORIGIN/../..")
    install(TARGETS ${module} RUNTIME DESTINATION ${GRAFT_SLICER_INSTALL_DIR})
    install(FILES ${CMAKE_SOURCE_DIR}/slicer/${module}.xml DESTINATION ${GRAFT_SLICER_INSTALL_DIR})
  endforeach()
endif()

set(CPACK_PACKAGE_NAME graft)
set(CPACK_PACKAGE_VENDOR "graft")
set(CPACK_PACKAGE_CONTACT "graft developers <graft@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Fit models pretrained on huge imaging corpora to your own small task, in C++")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
# The runtime dependencies come from the libraries graft's binaries link (dpkg-shlibdeps); the
# installed headers include LibTorch's and nlohmann-json's, so a program built on them needs those.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libtorch-dev, nlohmann-json3-dev")
include(CPack)
