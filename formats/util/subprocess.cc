#include "formats/util/subprocess.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace qatk {

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv, bool capture_stdout) {
  if (argv.empty()) return absl::InvalidArgumentError("RunProcess: empty argv");
  int pipefd[2] = {-1, -1};
  if (capture_stdout && ::pipe(pipefd) != 0) {
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  // Exec failure is reported through a close-on-exec pipe.
  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    if (capture_stdout) {
      ::dup2(pipefd[1], STDOUT_FILENO);
      ::close(pipefd[0]);
      ::close(pipefd[1]);
    }
    ::close(errpipe[0]);
    ::execvp(args[0], args.data());
    int e = errno;
    (void)!::write(errpipe[1], &e, sizeof(e));
    ::_exit(127);
  }
  ::close(errpipe[1]);
  ProcessResult result;
  if (capture_stdout) {
    ::close(pipefd[1]);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof(buf))) > 0) result.out.append(buf, n);
    ::close(pipefd[0]);
  }
  int exec_errno = 0;
  bool exec_failed = ::read(errpipe[0], &exec_errno, sizeof(exec_errno)) == sizeof(exec_errno);
  ::close(errpipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (exec_failed) {
    return absl::NotFoundError(absl::StrCat("cannot run '", argv[0], "': ", std::strerror(exec_errno)));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string SelfExecutable() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "qat";
  return std::string(buf, n);
}

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"$\\*?;&|<>()") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

}  // namespace qatk
