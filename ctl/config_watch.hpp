// ConfigWatch: notices that a config file or one of its includes changed, by polling stat().
//
// Contract
// - set_files() gives the files to watch (load_config's `files`). A file already watched keeps its
//   reference state; a new one is stat()ed now. Files not in the list are dropped.
// - poll(now) stat()s every file at most once per `interval` (cheaper calls return false). A file's
//   state is (exists, device, inode, size, mtime ns, ctime ns): a write, a truncation, a
//   replacement by rename (editors, `mv`, Kubernetes ConfigMap symlink swaps), a deletion or a
//   creation all change it. poll() returns true once the states differ from the reference AND
//   were the same at two consecutive polls (debounce: a file being written is not reported until
//   it has stopped changing for one interval); the reference then becomes that state, so one
//   change is reported once. A change that reverts before it is stable is not reported.
// - No threads, no inotify: works on every filesystem, including bind mounts and NFS.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace vanish::ctl {

class ConfigWatch {
 public:
  using Clock = std::chrono::steady_clock;

  struct FileState {
    bool exists = false;
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileState&) const = default;
  };

  explicit ConfigWatch(std::chrono::milliseconds interval = std::chrono::milliseconds(200))
      : interval_(interval) {}

  void set_files(const std::vector<std::string>& files);
  const std::vector<std::string>& files() const { return paths_; }

  bool poll(Clock::time_point now = Clock::now());

  static FileState stat_file(const std::string& path);

 private:
  std::chrono::milliseconds interval_;
  Clock::time_point next_{};
  std::vector<std::string> paths_;
  std::vector<FileState> ref_;   // reference state per path
  std::vector<FileState> last_;  // state at the previous poll (pending change)
  bool pending_ = false;
};

}  // namespace vanish::ctl
