#include "ctl/config_watch.hpp"

#include <sys/stat.h>

namespace vanish::ctl {

ConfigWatch::FileState ConfigWatch::stat_file(const std::string& path) {
  FileState f;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return f;
  f.exists = true;
  f.dev = uint64_t(st.st_dev);
  f.ino = uint64_t(st.st_ino);
  f.size = uint64_t(st.st_size);
  f.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  f.ctime_ns = int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return f;
}

void ConfigWatch::set_files(const std::vector<std::string>& files) {
  std::vector<FileState> ref;
  ref.reserve(files.size());
  for (const std::string& p : files) {
    size_t i = 0;
    while (i < paths_.size() && paths_[i] != p) i++;
    ref.push_back(i < paths_.size() ? ref_[i] : stat_file(p));
  }
  paths_ = files;
  ref_ = std::move(ref);
  last_.clear();
  pending_ = false;
}

bool ConfigWatch::poll(Clock::time_point now) {
  if (now < next_ || paths_.empty()) return false;
  next_ = now + interval_;
  std::vector<FileState> cur;
  cur.reserve(paths_.size());
  for (const std::string& p : paths_) cur.push_back(stat_file(p));
  if (cur == ref_) {
    pending_ = false;
    return false;
  }
  if (pending_ && cur == last_) {
    ref_ = std::move(cur);
    pending_ = false;
    last_.clear();
    return true;
  }
  pending_ = true;
  last_ = std::move(cur);
  return false;
}

}  // namespace vanish::ctl
