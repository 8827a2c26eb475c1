# STAND-IN for the SlicerConfig.cmake of a Slicer build tree, which cannot run here (no Slicer build, no
# Slicer application). Testing/test_extension_install.py configures, builds and installs the extension's
# real CMakeLists.txt files with it (cmake -DSlicer_DIR=<this folder>), so that a file missing from the
# CMake lists, or placed where Slicer does not look, fails a test instead of an Extension Manager install.
#
# Variable values mirror Slicer's CMake/SlicerConfig.cmake.in and CMake/SlicerDirectories.cmake (Linux
# layout); the macros (UseSlicer.cmake, ctkMacroCompilePythonScript.cmake, ...) mirror the file placement
# of the real ones, each file naming what it mirrors. Read at Slicer 583e9b37 and CTK 868d56c7; written
# anew, no code copied. What is left out: README.md beside this file.

set(Slicer_FOUND 1)
set(Slicer_CONFIG_DIR "${CMAKE_CURRENT_LIST_DIR}")

# --- platform, options (SlicerConfig.cmake.in) --------------------------------------------------
# Slicer_VERSION_MAJOR/MINOR: set by find_package from SlicerConfigVersion.cmake
set(Slicer_MAIN_PROJECT_APPLICATION_NAME Slicer)
set(Slicer_REVISION "standin")
set(Slicer_OS "linux")
set(Slicer_ARCHITECTURE "amd64")
set(Slicer_USE_PYTHONQT ON)
set(Slicer_USE_CTKAPPLAUNCHER OFF)
set(Slicer_BUILD_TESTING ON)
set(Slicer_EXTENSIONS_DIRBASENAME "Extensions")
# Slicer points these at its own License.txt / README.txt (defaults of EXTENSION_LICENSE/README_FILE)
set(Slicer_LICENSE_FILE "${CMAKE_CURRENT_LIST_DIR}/README.md")
set(Slicer_README_FILE "${CMAKE_CURRENT_LIST_DIR}/README.md")
# The launcher the python tests run through; nothing runs it here (the test only lists the tests)
set(Slicer_LAUNCHER_EXECUTABLE "${CMAKE_CURRENT_LIST_DIR}/Slicer-launcher-not-available")
set(Slicer_PYTHON_MODULE_TEST_TEMPLATES_DIR "${CMAKE_CURRENT_LIST_DIR}")

# --- relative directories (SlicerDirectories.cmake; the install-tree ones are set in UseSlicer.cmake) --
if(NOT DEFINED CMAKE_INSTALL_LIBDIR)
  set(CMAKE_INSTALL_LIBDIR "lib")
endif()
set(_slicer_versioned "${Slicer_MAIN_PROJECT_APPLICATION_NAME}-${Slicer_VERSION_MAJOR}.${Slicer_VERSION_MINOR}")
set(Slicer_BIN_DIR "bin")
set(Slicer_LIB_DIR "${CMAKE_INSTALL_LIBDIR}/${_slicer_versioned}")
set(Slicer_SHARE_DIR "share/${_slicer_versioned}")
set(Slicer_INSTALL_ROOT "./")
set(Slicer_INSTALL_BIN_DIR "${Slicer_INSTALL_ROOT}${Slicer_BIN_DIR}")
set(Slicer_INSTALL_LIB_DIR "${Slicer_INSTALL_ROOT}${Slicer_LIB_DIR}")
set(Slicer_INSTALL_SHARE_DIR "${Slicer_INSTALL_ROOT}${Slicer_SHARE_DIR}")
set(Slicer_CLIMODULES_SUBDIR "cli-modules")
set(Slicer_CLIMODULES_LIB_DIR "${Slicer_LIB_DIR}/${Slicer_CLIMODULES_SUBDIR}")
set(Slicer_QTLOADABLEMODULES_SUBDIR "qt-loadable-modules")
set(Slicer_QTLOADABLEMODULES_LIB_DIR "${Slicer_LIB_DIR}/${Slicer_QTLOADABLEMODULES_SUBDIR}")
set(Slicer_QTSCRIPTEDMODULES_SUBDIR "qt-scripted-modules")
set(Slicer_QTSCRIPTEDMODULES_LIB_DIR "${Slicer_LIB_DIR}/${Slicer_QTSCRIPTEDMODULES_SUBDIR}")
set(Slicer_QTSCRIPTEDMODULES_SHARE_DIR "${Slicer_SHARE_DIR}/${Slicer_QTSCRIPTEDMODULES_SUBDIR}")

# --- the files an extension includes ---------------------------------------------------------------------
set(Slicer_USE_FILE "${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake")
set(Slicer_EXTENSION_GENERATE_CONFIG "${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionGenerateConfig.cmake")
set(Slicer_EXTENSION_CPACK "${CMAKE_CURRENT_LIST_DIR}/SlicerExtensionCPack.cmake")
