# Optional schema-message support: FlatBuffers (flatc) and Protobuf (protoc), compiled at build
# time. tao itself never links either; tao/flatbuffers.hpp and tao/protobuf.hpp are header-only
# adapters. Sets TAO_HAVE_FLATBUFFERS / TAO_HAVE_PROTOBUF and defines:
#   tao_flatbuffers_target(<target> <file.fbs>...)  flatc -> <stem>_generated.h, an INTERFACE
#                                                   library <target> to link (headers + tao)
#   tao_protobuf_target(<target> <file.proto>...)    protoc -> <stem>.pb.h/.pb.cc, a static
#                                                   library <target> to link (+ libprotobuf)
find_package(FlatBuffers CONFIG QUIET)
find_program(TAO_FLATC flatc)
if(FlatBuffers_FOUND AND TAO_FLATC)
  set(TAO_HAVE_FLATBUFFERS ON)
else()
  set(TAO_HAVE_FLATBUFFERS OFF)
  message(STATUS "tao: FlatBuffers (libflatbuffers-dev, flatbuffers-compiler) not found; "
                 "its example, tests and fuzz target are skipped")
endif()

find_package(Protobuf QUIET)
if(Protobuf_FOUND AND Protobuf_PROTOC_EXECUTABLE)
  set(TAO_HAVE_PROTOBUF ON)
else()
  set(TAO_HAVE_PROTOBUF OFF)
  message(STATUS "tao: Protobuf (libprotobuf-dev, protobuf-compiler) not found; "
                 "its example and tests are skipped")
endif()

function(tao_flatbuffers_target target)
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_gen)
  set(headers)
  foreach(fbs ${ARGN})
    get_filename_component(abs ${fbs} ABSOLUTE)
    get_filename_component(stem ${fbs} NAME_WE)
    set(h ${out_dir}/${stem}_generated.h)
    add_custom_command(OUTPUT ${h}
      COMMAND ${TAO_FLATC} --cpp --scoped-enums -o ${out_dir} ${abs}
      DEPENDS ${abs}
      COMMENT "flatc ${fbs}")
    list(APPEND headers ${h})
  endforeach()
  add_custom_target(${target}_flatc DEPENDS ${headers})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_flatc)
  target_include_directories(${target} SYSTEM INTERFACE ${out_dir}) # generated code: no warnings
  # The flatbuffers headers only: reading and building buffers needs no library.
  target_include_directories(${target} SYSTEM INTERFACE
    $<TARGET_PROPERTY:flatbuffers::flatbuffers,INTERFACE_INCLUDE_DIRECTORIES>)
  target_link_libraries(${target} INTERFACE tao::tao)
endfunction()

function(tao_protobuf_target target)
  add_library(${target} STATIC ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/${target}_gen)
  file(MAKE_DIRECTORY ${out_dir})
  protobuf_generate(TARGET ${target} LANGUAGE cpp PROTOC_OUT_DIR ${out_dir})
  # protoc writes <out_dir>/<dir of the .proto relative to this source dir>/<stem>.pb.h; the
  # .pb.cc includes it by that relative path, users by its name.
  target_include_directories(${target} SYSTEM PUBLIC ${out_dir})
  foreach(proto ${ARGN})
    get_filename_component(abs_dir ${proto} DIRECTORY)
    get_filename_component(abs_dir ${abs_dir} ABSOLUTE)
    file(RELATIVE_PATH rel_dir ${CMAKE_CURRENT_SOURCE_DIR} ${abs_dir})
    target_include_directories(${target} SYSTEM PUBLIC ${out_dir}/${rel_dir})
  endforeach()
  target_link_libraries(${target} PUBLIC tao::tao protobuf::libprotobuf)
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
