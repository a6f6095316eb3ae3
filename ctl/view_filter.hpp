// ViewFilter: the server-side `--match TEXT` / `--limit N` of vanishctl's list views
// (workloads, services, policies, sas, peers; ctl.proto GetView), so that a reply stays bounded
// whatever the size of the mesh.
//
// Contract
// - A row matches if `match` is empty or a case-insensitive substring of one of its columns.
// - take() counts every matching row (total()) and returns true while fewer than limit() rows
//   were taken and the byte budget is not used up; the caller adds exactly the rows it returns
//   true for, then reports total() and shown().
// - limit 0 means kDefaultLimit; larger than kMaxLimit is capped. The byte budget (kMaxBytes)
//   keeps a reply well below the control socket's 16 MiB frame limit whatever the rows hold.
// - Header-only, no DPDK: vanishd (dataplane/ctl_views.cpp) and the unit tests use it.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace vanish::ctl {

class ViewFilter {
 public:
  static constexpr uint32_t kDefaultLimit = 1000;
  static constexpr uint32_t kMaxLimit = 100000;
  static constexpr size_t kMaxBytes = 8u << 20;

  ViewFilter(std::string_view match, uint32_t limit) : match_(lower(match)) {
    limit_ = limit == 0 ? kDefaultLimit : std::min(limit, kMaxLimit);
  }

  // Whether a row with these columns matches (does not count it).
  bool matches(std::initializer_list<std::string_view> columns) const {
    if (match_.empty()) return true;
    for (std::string_view c : columns)
      if (contains(c)) return true;
    return false;
  }
  bool matches_one(std::string_view column) const { return match_.empty() || contains(column); }

  // A matching row: counts it; true if it is to be shown.
  bool take() {
    total_++;
    if (shown_ >= limit_ || bytes_ >= kMaxBytes) return false;
    shown_++;
    return true;
  }
  // Size of the row just shown (serialized bytes), for the byte budget.
  void add_bytes(size_t n) { bytes_ += n; }

  uint32_t total() const { return total_; }
  uint32_t shown() const { return shown_; }
  uint32_t limit() const { return limit_; }
  bool empty_match() const { return match_.empty(); }

 private:
  static std::string lower(std::string_view s) {
    std::string out(s);
    for (char& ch : out) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return out;
  }
  bool contains(std::string_view hay) const {
    if (hay.size() < match_.size()) return false;
    auto it = std::search(hay.begin(), hay.end(), match_.begin(), match_.end(), [](char a, char b) {
      return std::tolower(static_cast<unsigned char>(a)) == b;
    });
    return it != hay.end();
  }

  std::string match_;
  uint32_t limit_ = kDefaultLimit;
  uint32_t total_ = 0, shown_ = 0;
  size_t bytes_ = 0;
};

}  // namespace vanish::ctl
