# Cross-compiling for Linux aarch64 on a Debian x86-64 host with the
# multiarch packages of scripts/test_aarch64.sh (g++-aarch64-linux-gnu,
# lib*-dev:arm64). Tests run through qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR);
# the environment variable QEMU_CPU picks the emulated CPU (qemu's default:
# max), so one build runs at every feature level.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Debian multiarch: arm64 libraries and CMake packages live under
# /usr/lib/aarch64-linux-gnu, architecture-independent headers and packages
# (nlohmann_json, cxxopts) under /usr/include and /usr/share.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# No -L: the arm64 multiarch libc6 (pulled in by the -dev:arm64 packages)
# runs the binaries; its ld.so mixed with the cross sysroot's libc (qemu -L
# /usr/aarch64-linux-gnu) hangs in pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
