# STAND-IN (see SlicerConfig.cmake) for Slicer's CMake/SlicerMacroPythonTesting.cmake and
# CMake/SlicerMacroConfigureGenericPythonModuleTests.cmake. The tests are registered with the same names
# (py_<prefix><script name without extension>) and the same Slicer arguments, plus the extension's build
# tree module paths; add_test replaces ExternalData_add_test (no test data here) and the command is never
# run here (no Slicer launcher). Nothing of these is installed.

cmake_policy(SET CMP0057 NEW)  # IN_LIST, whatever minimum version the extension asks for

function(_standin_append_module_paths args_var)
  if("--disable-modules" IN_LIST ${args_var})
    return()
  endif()
  set(_paths)
  if(NOT "--disable-scripted-loadable-modules" IN_LIST ${args_var})
    list(APPEND _paths ${CMAKE_BINARY_DIR}/${Slicer_QTSCRIPTEDMODULES_LIB_DIR})
  endif()
  if(NOT "--disable-cli-modules" IN_LIST ${args_var})
    list(APPEND _paths ${CMAKE_BINARY_DIR}/${Slicer_CLIMODULES_LIB_DIR})
  endif()
  if(NOT "--disable-loadable-modules" IN_LIST ${args_var})
    list(APPEND _paths ${CMAKE_BINARY_DIR}/${Slicer_QTLOADABLEMODULES_LIB_DIR})
  endif()
  if(_paths)
    set(${args_var} ${${args_var}} --additional-module-paths ${_paths} PARENT_SCOPE)
  endif()
endfunction()

# A unittest module run by slicer.testing.runUnitTest from the binary dir or the script's own folder.
macro(slicer_add_python_unittest)
  cmake_parse_arguments(MY "" "TESTNAME_PREFIX;SCRIPT" "SLICER_ARGS" ${ARGN})
  get_filename_component(_test_name ${MY_SCRIPT} NAME_WE)
  get_filename_component(_script_dir ${MY_SCRIPT} PATH)
  if("${_script_dir}" STREQUAL "")
    set(_script_dir ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  _standin_append_module_paths(MY_SLICER_ARGS)
  add_test(NAME py_${MY_TESTNAME_PREFIX}${_test_name}
    COMMAND ${Slicer_LAUNCHER_EXECUTABLE} --no-splash --testing ${MY_SLICER_ARGS}
    --python-code "import slicer.testing; slicer.testing.runUnitTest(['${CMAKE_CURRENT_BINARY_DIR}', '${_script_dir}'], '${_test_name}')")
  set_property(TEST py_${MY_TESTNAME_PREFIX}${_test_name} PROPERTY RUN_SERIAL TRUE)
endmacro()

# A script run by Slicer's --python-script.
macro(slicer_add_python_test)
  cmake_parse_arguments(MY "" "TESTNAME_PREFIX;SCRIPT" "SLICER_ARGS;SCRIPT_ARGS" ${ARGN})
  get_filename_component(_test_name ${MY_SCRIPT} NAME_WE)
  if(NOT IS_ABSOLUTE ${MY_SCRIPT})
    set(MY_SCRIPT "${CMAKE_CURRENT_SOURCE_DIR}/${MY_SCRIPT}")
  endif()
  _standin_append_module_paths(MY_SLICER_ARGS)
  add_test(NAME py_${MY_TESTNAME_PREFIX}${_test_name}
    COMMAND ${Slicer_LAUNCHER_EXECUTABLE} --no-splash --testing ${MY_SLICER_ARGS}
    --python-script ${MY_SCRIPT} ${MY_SCRIPT_ARGS})
  set_property(TEST py_${MY_TESTNAME_PREFIX}${_test_name} PROPERTY RUN_SERIAL TRUE)
endmacro()

# qSlicer<Module>ModuleGenericTest.py in the current binary dir, one per module name; the real one is
# configured from Slicer's qSlicerModuleGenericTest.py.in, this one only names the module.
macro(SlicerMacroConfigureGenericPythonModuleTests module_names scripts_var)
  foreach(_module IN ITEMS ${module_names})
    set(_generic ${CMAKE_CURRENT_BINARY_DIR}/qSlicer${_module}ModuleGenericTest.py)
    file(WRITE ${_generic} "# stand-in for Slicer's generic module test of ${_module} (never run here)\n")
    get_filename_component(_generic ${_generic} NAME)
    list(APPEND ${scripts_var} ${_generic})
  endforeach()
endmacro()
