# STAND-IN (see SlicerConfig.cmake) for CTK's CMake/ctkMacroCompilePythonScript.cmake and
# CMake/ctk_compile_python_scripts.cmake.in, with the same file placement:
#  - SCRIPTS: ".py" is appended when the name has no "py" extension; a relative name is read from
#    SOURCE_DIR (default: the current source dir) and copied to DESTINATION_DIR/<name> (its relative path
#    is kept); an absolute one is copied to DESTINATION_DIR/<its path relative to the current binary dir>.
#  - RESOURCES: read from SOURCE_DIR/<name> and copied to DESTINATION_DIR/<name> (relative path kept).
#  - each copied script is byte-compiled to "<script>.pyc" beside it (a failure is printed, the build goes
#    on, as in CTK); CTK_COMPILE_PYTHON_SCRIPT_KEEP_ONLY_PYC is not mirrored (Slicer leaves it off).
#  - install: the whole DESTINATION_DIR folder at install time is installed into INSTALL_DIR; with
#    NO_INSTALL_SUBDIR its content (trailing "/"), without it the folder itself (INSTALL_DIR/<its name>).
# Targets: Copy<T>PythonScriptFiles, Copy<T>PythonResourceFiles, Compile<T>PythonFiles (all in ALL), made
# by the first call for a TARGET_NAME only: files of a second call with the same name are never copied.

macro(ctkMacroCompilePythonScript)
  cmake_parse_arguments(MY "NO_INSTALL_SUBDIR;GLOBAL_TARGET"
    "TARGET_NAME;SOURCE_DIR;DESTINATION_DIR;INSTALL_DIR" "SCRIPTS;RESOURCES" ${ARGN})
  foreach(_var TARGET_NAME SCRIPTS DESTINATION_DIR INSTALL_DIR)
    if(NOT DEFINED MY_${_var})
      message(FATAL_ERROR "ctkMacroCompilePythonScript: ${_var} is mandatory")
    endif()
  endforeach()
  if(MY_GLOBAL_TARGET OR NOT "${CTK_COMPILE_PYTHON_SCRIPTS_GLOBAL_TARGET_NAME}" STREQUAL "")
    message(FATAL_ERROR "ctkMacroCompilePythonScript stand-in: GLOBAL_TARGET is not mirrored")
  endif()
  if(NOT DEFINED MY_SOURCE_DIR)
    set(MY_SOURCE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  get_filename_component(MY_SOURCE_DIR ${MY_SOURCE_DIR} REALPATH)
  get_filename_component(MY_DESTINATION_DIR ${MY_DESTINATION_DIR} REALPATH)

  foreach(_name IN LISTS MY_SCRIPTS)
    get_filename_component(_ext ${_name} EXT)
    if(NOT "${_ext}" MATCHES "py")
      set(_name "${_name}.py")
    endif()
    if(IS_ABSOLUTE ${_name})
      set(_src ${_name})
      file(RELATIVE_PATH _rel ${CMAKE_CURRENT_BINARY_DIR} ${_name})
    else()
      set(_src ${MY_SOURCE_DIR}/${_name})
      set(_rel ${_name})
    endif()
    set_property(GLOBAL APPEND PROPERTY _STANDIN_${MY_TARGET_NAME}_SCRIPTS "${_src}|${MY_DESTINATION_DIR}/${_rel}")
  endforeach()
  foreach(_name IN LISTS MY_RESOURCES)
    if(IS_ABSOLUTE ${_name})
      set(_src ${_name})
    else()
      set(_src ${MY_SOURCE_DIR}/${_name})
    endif()
    set_property(GLOBAL APPEND PROPERTY _STANDIN_${MY_TARGET_NAME}_RESOURCES "${_src}|${MY_DESTINATION_DIR}/${_name}")
  endforeach()

  if(MY_NO_INSTALL_SUBDIR)
    set(_installed_folder "${MY_DESTINATION_DIR}/")
  else()
    set(_installed_folder "${MY_DESTINATION_DIR}")
  endif()
  install(DIRECTORY "${_installed_folder}" DESTINATION "${MY_INSTALL_DIR}"
    COMPONENT RuntimeLibraries USE_SOURCE_PERMISSIONS)

  _standin_python_copy_target(${MY_TARGET_NAME} Script SCRIPTS)
  _standin_python_copy_target(${MY_TARGET_NAME} Resource RESOURCES)
  _standin_python_compile_target(${MY_TARGET_NAME})
endmacro()

# Copy<target>Python<kind>Files: one copy command per "source|copy" pair recorded for the target.
function(_standin_python_copy_target target kind property)
  set(_target_name Copy${target}Python${kind}Files)
  if(TARGET ${_target_name})
    return()
  endif()
  get_property(_pairs GLOBAL PROPERTY _STANDIN_${target}_${property})
  set(_copies)
  foreach(_pair IN LISTS _pairs)
    string(REPLACE "|" ";" _pair "${_pair}")
    list(GET _pair 0 _src)
    list(GET _pair 1 _copy)
    add_custom_command(OUTPUT ${_copy} DEPENDS ${_src}
      COMMAND ${CMAKE_COMMAND} -E copy ${_src} ${_copy}
      COMMENT "Copying python ${kind}: ${_copy}")
    list(APPEND _copies ${_copy})
  endforeach()
  if(_copies)
    add_custom_target(${_target_name} ALL DEPENDS ${_copies})
  endif()
endfunction()

# Compile<target>PythonFiles: byte-compile every copied script to "<script>.pyc" beside it.
function(_standin_python_compile_target target)
  set(_target_name Compile${target}PythonFiles)
  if(TARGET ${_target_name})
    return()
  endif()
  get_property(_pairs GLOBAL PROPERTY _STANDIN_${target}_SCRIPTS)
  if(NOT _pairs)
    return()
  endif()
  list(REMOVE_DUPLICATES _pairs)
  set(_copies)
  foreach(_pair IN LISTS _pairs)
    string(REPLACE "|" ";" _pair "${_pair}")
    list(GET _pair 1 _copy)
    list(APPEND _copies ${_copy})
  endforeach()
  if(NOT PYTHON_EXECUTABLE)
    find_package(Python3 REQUIRED COMPONENTS Interpreter)
    set(PYTHON_EXECUTABLE ${Python3_EXECUTABLE})
  endif()
  set(_script "${CMAKE_CURRENT_BINARY_DIR}/compile_${target}_python_scripts.py")
  file(WRITE ${_script} [=[
import py_compile, sys
for path in sys.argv[2:]:
    try:
        py_compile.compile(path, path + "c", None, True)
    except py_compile.PyCompileError as err:
        print(err.msg)
with open(sys.argv[1], "w") as stamp:
    stamp.write("Done")
]=])
  set(_stamp "${CMAKE_CURRENT_BINARY_DIR}/python_compile_${target}_complete")
  add_custom_command(OUTPUT ${_stamp} DEPENDS Copy${target}PythonScriptFiles ${_script}
    COMMAND ${PYTHON_EXECUTABLE} ${_script} ${_stamp} ${_copies}
    COMMENT "Compiling python scripts: ${target}")
  add_custom_target(${_target_name} ALL DEPENDS ${_stamp})
endfunction()
