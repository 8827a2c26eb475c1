# STAND-IN (see SlicerConfig.cmake) for Slicer's CMake/SlicerMacroBuildScriptedModule.cmake:
#  - every SCRIPTS/RESOURCES entry must exist (relative to the current source dir, ".py" may be left
#    out) or be a GENERATED file of the current binary dir, else configuring fails;
#  - the scripts and resources go through ctkMacroCompilePythonScript with SOURCE_DIR left at its default
#    (the module's folder): build tree <binary>/<Slicer_QTSCRIPTEDMODULES_LIB_DIR>, install tree
#    <Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR>, NO_INSTALL_SUBDIR; WITH_SUBDIR puts them one folder
#    deeper, named after the module's source folder, in both trees;
#  - BUILD_TESTING and WITH_GENERIC_TESTS: the generic module test is configured into the module's binary
#    dir (never into qt-scripted-modules, so never installed) and registered as py_nomainwindow_<name>.

macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY_SLICER "WITH_GENERIC_TESTS;WITH_SUBDIR;VERBOSE" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  message(STATUS "Configuring Scripted module: ${MY_SLICER_NAME}")
  if(MY_SLICER_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "slicerMacroBuildScriptedModule: unknown arguments ${MY_SLICER_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT DEFINED MY_SLICER_NAME)
    message(FATAL_ERROR "slicerMacroBuildScriptedModule: NAME is required")
  endif()
  foreach(_kind SCRIPTS RESOURCES)
    foreach(_entry IN LISTS MY_SLICER_${_kind})
      set(_path ${_entry})
      if(NOT IS_ABSOLUTE ${_entry})
        set(_path ${CMAKE_CURRENT_SOURCE_DIR}/${_entry})
      endif()
      if(NOT EXISTS ${_path} AND NOT EXISTS ${_path}.py)
        if(NOT IS_ABSOLUTE ${_entry})
          set(_path ${CMAKE_CURRENT_BINARY_DIR}/${_entry})
        endif()
        get_source_file_property(_generated ${_path} GENERATED)
        if(NOT _generated)
          message(FATAL_ERROR "slicerMacroBuildScriptedModule: ${_kind} lists '${_entry}', which does not exist")
        endif()
      endif()
    endforeach()
  endforeach()
  if(NOT Slicer_USE_PYTHONQT)
    message(FATAL_ERROR "slicerMacroBuildScriptedModule: ${MY_SLICER_NAME} needs Slicer_USE_PYTHONQT")
  endif()

  set(_subdir "")
  set(_no_install_subdir NO_INSTALL_SUBDIR)
  if(MY_SLICER_WITH_SUBDIR)
    get_filename_component(_subdir ${CMAKE_CURRENT_SOURCE_DIR} NAME)
    set(_subdir "/${_subdir}")
    set(_no_install_subdir "")
  endif()
  ctkMacroCompilePythonScript(
    TARGET_NAME ${MY_SLICER_NAME}
    SCRIPTS "${MY_SLICER_SCRIPTS}"
    RESOURCES "${MY_SLICER_RESOURCES}"
    DESTINATION_DIR ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}${_subdir}
    INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}
    ${_no_install_subdir}
    )

  if(BUILD_TESTING AND MY_SLICER_WITH_GENERIC_TESTS)
    SlicerMacroConfigureGenericPythonModuleTests("${MY_SLICER_NAME}" _generic_scripts)
    foreach(_script IN LISTS _generic_scripts)
      slicer_add_python_unittest(SCRIPT ${_script}
        SLICER_ARGS --no-main-window --disable-cli-modules
                    --additional-module-path ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR}
        TESTNAME_PREFIX nomainwindow_)
    endforeach()
  endif()
endmacro()
