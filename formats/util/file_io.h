// File IO used by every format: read-only memory maps and atomic writers.
//
// MappedFile maps a whole file read-only; views into it stay valid for the
// MappedFile's lifetime. AtomicFileWriter streams to "<path>.tmp.<pid>" and
// renames over <path> in Commit(); if it is destroyed without Commit() the
// temporary file is removed, so a crash or error never leaves a half-written
// output under the final name.
#ifndef QATK_FORMATS_UTIL_FILE_IO_H_
#define QATK_FORMATS_UTIL_FILE_IO_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qatk {

class MappedFile {
 public:
  // kNotFound if the file does not exist; kUnavailable for other OS errors.
  static absl::StatusOr<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  absl::Span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class AtomicFileWriter {
 public:
  static absl::StatusOr<AtomicFileWriter> Create(const std::string& path);

  AtomicFileWriter() = default;
  AtomicFileWriter(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&& other) noexcept;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();  // Discards the temporary file unless committed.

  absl::Status Write(const void* data, size_t n);
  absl::Status WriteZeros(size_t n);
  uint64_t bytes_written() const { return written_; }
  // fsyncs, closes and renames the temporary file over the final path.
  absl::Status Commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
};

// Whole-file helpers (small files: configs, JSON, text).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);
absl::Status WriteFileAtomic(const std::string& path, const std::string& contents);

// Path helpers on POSIX calls. Code linked with LibTorch uses these, not
// std::filesystem: the pip LibTorch (2.x) exports std::filesystem symbols
// of its own that the dynamic linker binds our calls to, and its
// remove_all crashed on a non-empty folder (a null call inside libtorch.so).
bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// Size in bytes of a regular file; kNotFound naming the path otherwise.
absl::StatusOr<uint64_t> FileSize(const std::string& path);
// mkdir -p (mode 0755); OK if the folder exists.
absl::Status MakeDirs(const std::string& path);
// rm -rf without following symbolic links; OK if nothing is there.
absl::Status RemoveAll(const std::string& path);

}  // namespace qatk

#endif  // QATK_FORMATS_UTIL_FILE_IO_H_
