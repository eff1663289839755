# One warning list and one way to declare libraries, executables and tests.

set(STILLPOINT_WARNINGS
    -Wall -Wextra -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
    -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough)

option(STILLPOINT_FUZZ "Build fuzz targets with libFuzzer (needs clang)" OFF)

# clang checks the lock annotations (ABSL_GUARDED_BY ...) on lock-protected state.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  list(APPEND STILLPOINT_WARNINGS -Wthread-safety)
endif()

function(sp_apply_options target)
  target_compile_options(${target} PRIVATE ${STILLPOINT_WARNINGS})
  if(STILLPOINT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(STILLPOINT_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
  if(STILLPOINT_FUZZ)
    # Everything carries libFuzzer's coverage hooks, so the fuzzers are guided by the code they
    # test, not only by their own entry point.
    target_compile_options(${target} PRIVATE -fsanitize=fuzzer-no-link,address,undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# `static-check`: every library and fuzzer, what scripts/check.sh builds with clang.
add_custom_target(static-check)

# sp_library(NAME SOURCES ... DEPS ...): a module library `sp_NAME`, includes rooted at src/.
function(sp_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(sp_${name} STATIC ${ARG_SOURCES})
  target_include_directories(sp_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(sp_${name} PUBLIC ${ARG_DEPS})
  sp_apply_options(sp_${name})
  add_dependencies(static-check sp_${name})
endfunction()

# sp_executable(NAME SOURCES ... DEPS ...)
function(sp_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  sp_apply_options(${name})
endfunction()

# sp_test(NAME SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s]): a GoogleTest binary
# whose tests are registered individually with ctest.
function(sp_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  sp_apply_options(${name})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_TIMEOUT 30
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()

include(GoogleTest)


# sp_fuzz_target(NAME SOURCES ... DEPS ... CORPUS dir...): a fuzz target (LLVMFuzzerTestOneInput).
# Always registered with ctest as a regression test over its checked-in corpus; with
# STILLPOINT_FUZZ=ON (and clang) it also becomes a libFuzzer binary `NAME_fuzzer`.
function(sp_fuzz_target name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;CORPUS" ${ARGN})
  add_executable(${name}_corpus ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus_main.cc)
  target_link_libraries(${name}_corpus PRIVATE ${ARG_DEPS} sp_platform)
  sp_apply_options(${name}_corpus)
  add_test(NAME ${name}_corpus COMMAND ${name}_corpus ${ARG_CORPUS})
  set_tests_properties(${name}_corpus PROPERTIES LABELS "unit;fuzz" TIMEOUT 120)
  if(STILLPOINT_FUZZ)
    add_executable(${name}_fuzzer ${ARG_SOURCES})
    target_link_libraries(${name}_fuzzer PRIVATE ${ARG_DEPS})
    target_compile_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${name}_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
    add_dependencies(static-check ${name}_fuzzer)
  endif()
endfunction()
