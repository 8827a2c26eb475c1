# STAND-IN (see SlicerConfig.cmake) for Slicer's CMake/SlicerExtensionCPack.cmake (Linux, not a
# SuperBuild extension): the same sanity checks, the extension description <name>.s4ext installed into
# <Slicer_INSTALL_ROOT><Slicer_SHARE_DIR>, and CPack set to one monolithic TGZ of the install tree (what
# the Extension Manager unpacks). Left out: the repository information read with git, the macOS bundle
# fix-up, the SlicerWith<Extension> launcher and the package upload target.

foreach(_var EXTENSION_NAME Slicer_REVISION Slicer_OS Slicer_ARCHITECTURE)
  if("${${_var}}" STREQUAL "")
    message(FATAL_ERROR "SlicerExtensionCPack: ${_var} is empty")
  endif()
endforeach()
if(NOT "${EXTENSION_NAME}" STREQUAL "${PROJECT_NAME}")
  message(STATUS "SlicerExtensionCPack: not packaging ${PROJECT_NAME} (EXTENSION_NAME is ${EXTENSION_NAME})")
  return()
endif()
foreach(_var EXTENSION_README_FILE EXTENSION_LICENSE_FILE)
  if(NOT EXISTS "${${_var}}")
    message(FATAL_ERROR "SlicerExtensionCPack: ${_var} is not a file: ${${_var}}")
  endif()
endforeach()

# the description: one "keyword value" line per field, as Slicer's extension_description.s4ext.in
set(_description "${CMAKE_BINARY_DIR}/${EXTENSION_NAME}.s4ext")
set(_lines "scm git\nscmrevision standin\n")
foreach(_field DEPENDS BUILD_SUBDIRECTORY HOMEPAGE CONTRIBUTORS CATEGORY ICONURL STATUS DESCRIPTION
               SCREENSHOTURLS ENABLED)
  string(TOLOWER ${_field} _key)
  set(_lines "${_lines}${_key} ${EXTENSION_${_field}}\n")
endforeach()
file(WRITE ${_description} "${_lines}")
install(FILES ${_description} DESTINATION ${Slicer_INSTALL_ROOT}${Slicer_SHARE_DIR} COMPONENT RuntimeLibraries)

set(CPACK_MONOLITHIC_INSTALL ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${EXTENSION_DESCRIPTION}")
set(CPACK_PACKAGE_DESCRIPTION_FILE "${EXTENSION_README_FILE}")
set(CPACK_RESOURCE_FILE_LICENSE "${EXTENSION_LICENSE_FILE}")
set(CPACK_PACKAGE_FILE_NAME "${Slicer_REVISION}-${Slicer_OS}-${Slicer_ARCHITECTURE}-${EXTENSION_NAME}-gitstandin")
set(CPACK_GENERATOR "TGZ")
include(CPack)
