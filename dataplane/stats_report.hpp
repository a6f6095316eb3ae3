// Rendering of worker counters for people (a table) and for tools (JSON).
#pragma once

#include <string>
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

std::string stats_table(const StatsView& v);
std::string stats_json(const StatsView& v);

}  // namespace vanish::dp
