# STAND-IN (see SlicerConfig.cmake) for Slicer's CMake/SlicerExtensionGenerateConfig.cmake: writes
# <Extension>Config.cmake into the build tree only (other extensions find this one's build through it);
# nothing is installed. The target and include-directory exports of the real file are left out (a pure
# Python extension has none).
file(WRITE "${EXTENSION_SUPERBUILD_BINARY_DIR}/${EXTENSION_BUILD_SUBDIRECTORY}/${EXTENSION_NAME}Config.cmake"
  "# stand-in build-tree config of ${EXTENSION_NAME}\n"
  "set(${EXTENSION_NAME}_SOURCE_DIR \"${${EXTENSION_NAME}_SOURCE_DIR}\")\n"
  "set(${EXTENSION_NAME}_DIR \"${CMAKE_BINARY_DIR}\")\n")
