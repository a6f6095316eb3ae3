// Rendering of worker counters for people (a table) and for tools (JSON).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/counters.hpp"

namespace vanish::dp {

struct StatsView {
  std::string node;
  std::vector<WorkerCounters> workers;
  WorkerCounters total() const {
    WorkerCounters t;
    for (const auto& w : workers) t.add(w);
    return t;
  }
};

// Name/value pairs of the non-drop counters, in display order (stats JSON, vanishctl stats).
std::vector<std::pair<const char*, uint64_t>> counter_fields(const WorkerCounters& c);

std::string stats_table(const StatsView& v);
std::string stats_json(const StatsView& v);

}  // namespace vanish::dp
