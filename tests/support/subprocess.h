// Running a program under test with pipes on stdin/stdout/stderr and deadlines.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace bulkhead::test {

using namespace std::chrono_literals;

class Subprocess {
 public:
  // Starts argv[0] with stdin, stdout and stderr on pipes (stdin closed at once unless
  // keep_stdin). The child gets its own process group so kill_group() reaches everything.
  explicit Subprocess(const std::vector<std::string>& argv, bool keep_stdin = true);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Reads output until `needle` shows up on stdout (or stderr if from_stderr) or time runs out.
  bool wait_for(const std::string& needle, std::chrono::milliseconds timeout, bool from_stderr = false);
  // Reads whatever output arrives within `duration`.
  void read_for(std::chrono::milliseconds duration) { pump(duration); }
  void write_stdin(const std::string& data);
  void close_stdin();
  // Shrinks the stdout pipe, so a test can make the reader side fill up quickly.
  void set_stdout_pipe_size(int bytes);
  // Stops reading for a while (output piles up in the pipe).
  void pause_reading(std::chrono::milliseconds duration);
  bool running();
  void signal(int sig);
  // Waits for exit, reading output meanwhile; returns the exit status, 128+signal when
  // killed, or -1 on timeout (the process is then killed with SIGKILL).
  int wait(std::chrono::milliseconds timeout = 60s);
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  void pump(std::chrono::milliseconds timeout);
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  UniqueFd stdin_, stdout_, stderr_;
  std::string out_, err_;
};

// Path helpers, from the build's compile definitions.
std::string bin_dir();
std::string bulkhead();
std::string test_guest();

// PIDs of every process whose name starts with "bh-" (Bulkhead's role processes).
std::vector<pid_t> role_processes();
// The role processes `launcher` started, by name ("bh-core", ...); bh-respawn, the launcher's
// privileged fork (launcher/respawner.h), only if `with_respawner`.
std::map<std::string, pid_t> roles_of(pid_t launcher, bool with_respawner = false);
// One field of /proc/<pid>/status ("Seccomp", "Uid", ...), without its name and leading blanks.
std::string proc_status(pid_t pid, const std::string& field);
// Waits up to `timeout` for no role process to exist; returns the ones left.
std::vector<pid_t> wait_for_no_role_processes(std::chrono::milliseconds timeout = 5s);

// Why this machine cannot run a test that needs KVM, or "" when it can.
std::string kvm_unavailable_reason();
bool have_program(const std::string& name);

}  // namespace bulkhead::test
