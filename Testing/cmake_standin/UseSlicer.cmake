# STAND-IN (see SlicerConfig.cmake) for Slicer's CMake/UseSlicer.cmake.in: the extension name, the
# install-tree directories of a (non-macOS) extension, the extension defaults and testing. The C++/ITK/VTK
# setup of the real file is left out: MRSynth is a pure Python extension.

# --- EXTENSION_NAME: EXTENSION_NAME, else MODULE_NAME, else PROJECT_NAME ---------------------------------
if(NOT DEFINED EXTENSION_NAME OR "${EXTENSION_NAME}" STREQUAL "")
  if(DEFINED MODULE_NAME AND NOT "${MODULE_NAME}" STREQUAL "")
    set(EXTENSION_NAME ${MODULE_NAME})
  else()
    set(EXTENSION_NAME ${PROJECT_NAME})
  endif()
endif()
if("${EXTENSION_NAME}" MATCHES "^$|^Slicer$|^Project$")
  message(FATAL_ERROR "call project(<extension_name>) or set EXTENSION_NAME before include(\${Slicer_USE_FILE})")
endif()

# --- install tree: the extension's own prefix; Slicer_BUNDLE_EXTENSIONS_LOCATION is empty off macOS -----
set(Slicer_BUNDLE_EXTENSIONS_LOCATION "")
set(_ext_root "${Slicer_INSTALL_ROOT}${Slicer_BUNDLE_EXTENSIONS_LOCATION}")
set(Slicer_INSTALL_CLIMODULES_LIB_DIR "${_ext_root}${Slicer_CLIMODULES_LIB_DIR}")
set(Slicer_INSTALL_QTLOADABLEMODULES_LIB_DIR "${_ext_root}${Slicer_QTLOADABLEMODULES_LIB_DIR}")
if(Slicer_USE_PYTHONQT)
  set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "${_ext_root}${Slicer_QTSCRIPTEDMODULES_LIB_DIR}")
  set(Slicer_INSTALL_QTSCRIPTEDMODULES_SHARE_DIR "${_ext_root}${Slicer_QTSCRIPTEDMODULES_SHARE_DIR}")
endif()

# --- extension defaults ------------------------------------------------------------------------------------
macro(_standin_default name value)
  if(NOT DEFINED ${name})
    set(${name} "${value}")
  endif()
endmacro()
_standin_default(EXTENSION_DEPENDS NA)
_standin_default(EXTENSION_LICENSE_FILE "${Slicer_LICENSE_FILE}")
_standin_default(EXTENSION_README_FILE "${Slicer_README_FILE}")
_standin_default(EXTENSION_SOURCE_DIR "${CMAKE_SOURCE_DIR}")
_standin_default(EXTENSION_SUPERBUILD_BINARY_DIR "${CMAKE_BINARY_DIR}")
_standin_default(EXTENSION_BUILD_SUBDIRECTORY ".")
_standin_default(EXTENSION_ENABLED 1)

# --- testing: the real file includes CTest (option BUILD_TESTING, ON by default) -----------------------------
include(CTest)

# --- the macros an extension calls ----------------------------------------------------------------------
include(${CMAKE_CURRENT_LIST_DIR}/ctkMacroCompilePythonScript.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/SlicerMacroPythonTesting.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/SlicerMacroBuildScriptedModule.cmake)
