#include "formats/util/file_io.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"

namespace qatk {
namespace internal {
void CheckFailed(const char* file, int line, const char* cond, const char* msg) {
  std::fprintf(stderr, "qatkit: internal check failed at %s:%d: %s (%s)\n", file,
               line, cond, msg);
  std::abort();
}
}  // namespace internal

namespace {
absl::Status OsError(const std::string& what, const std::string& path) {
  int err = errno;
  std::string msg = absl::StrCat(what, " '", path, "': ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  return absl::UnavailableError(msg);
}
}  // namespace

absl::StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return OsError("cannot open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status s = OsError("cannot stat", path);
    ::close(fd);
    return s;
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is a directory, not a file"));
  }
  MappedFile f;
  f.path_ = path;
  f.size_ = static_cast<size_t>(st.st_size);
  if (f.size_ > 0) {
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      absl::Status s = OsError("cannot mmap", path);
      ::close(fd);
      return s;
    }
    f.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return f;
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

absl::StatusOr<AtomicFileWriter> AtomicFileWriter::Create(const std::string& path) {
  AtomicFileWriter w;
  w.path_ = path;
  w.tmp_path_ = absl::StrCat(path, ".tmp.", ::getpid());
  w.file_ = std::fopen(w.tmp_path_.c_str(), "wb");
  if (!w.file_) return OsError("cannot create", w.tmp_path_);
  return w;
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& o) noexcept
    : path_(std::move(o.path_)), tmp_path_(std::move(o.tmp_path_)),
      file_(o.file_), written_(o.written_) {
  o.file_ = nullptr;
}

AtomicFileWriter& AtomicFileWriter::operator=(AtomicFileWriter&& o) noexcept {
  if (this != &o) {
    this->~AtomicFileWriter();
    path_ = std::move(o.path_);
    tmp_path_ = std::move(o.tmp_path_);
    file_ = o.file_;
    written_ = o.written_;
    o.file_ = nullptr;
  }
  return *this;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_) {
    std::fclose(file_);
    ::unlink(tmp_path_.c_str());
    file_ = nullptr;
  }
}

absl::Status AtomicFileWriter::Write(const void* data, size_t n) {
  if (!file_) return absl::FailedPreconditionError("write to a closed file: " + path_);
  if (n == 0) return absl::OkStatus();
  if (std::fwrite(data, 1, n, file_) != n) return OsError("cannot write", tmp_path_);
  written_ += n;
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::WriteZeros(size_t n) {
  static const uint8_t kZeros[256] = {};
  while (n > 0) {
    size_t k = n < sizeof(kZeros) ? n : sizeof(kZeros);
    RETURN_IF_ERROR(Write(kZeros, k));
    n -= k;
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (!file_) return absl::FailedPreconditionError("commit of a closed file: " + path_);
  if (std::fflush(file_) != 0) return OsError("cannot flush", tmp_path_);
  ::fsync(::fileno(file_));
  if (std::fclose(file_) != 0) {
    file_ = nullptr;
    ::unlink(tmp_path_.c_str());
    return OsError("cannot close", tmp_path_);
  }
  file_ = nullptr;
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    absl::Status s = OsError("cannot rename onto", path_);
    ::unlink(tmp_path_.c_str());
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return OsError("cannot open", path);
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  bool err = std::ferror(f);
  std::fclose(f);
  if (err) return OsError("cannot read", path);
  return out;
}

absl::Status WriteFileAtomic(const std::string& path, const std::string& contents) {
  ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Create(path));
  RETURN_IF_ERROR(w.Write(contents.data(), contents.size()));
  return w.Commit();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::StatusOr<uint64_t> FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot stat '", path, "': ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return absl::NotFoundError(absl::StrCat("'", path, "' is not a regular file"));
  return static_cast<uint64_t>(st.st_size);
}

absl::Status MakeDirs(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("MakeDirs: empty path");
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    const std::string prefix = path.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::UnavailableError(absl::StrCat("cannot create '", prefix, "': ", std::strerror(errno)));
    }
  }
  if (!IsDirectory(path)) return absl::UnavailableError(absl::StrCat("'", path, "' exists and is not a folder"));
  return absl::OkStatus();
}

namespace {

int RemoveEntry(const char* path, const struct stat*, int type, struct FTW*) {
  return type == FTW_DP ? ::rmdir(path) : ::unlink(path);
}

}  // namespace

absl::Status RemoveAll(const std::string& path) {
  if (!PathExists(path)) return absl::OkStatus();
  // Children first (FTW_DEPTH), links removed rather than followed (FTW_PHYS).
  if (::nftw(path.c_str(), RemoveEntry, 32, FTW_DEPTH | FTW_PHYS) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot remove '", path, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace qatk
