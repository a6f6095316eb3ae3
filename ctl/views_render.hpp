// Rendering of vanishd's data-plane views (ctl.proto fields 20..39) for vanishctl: a table for
// people, JSON for tools. Pure functions of the replies (no I/O), unit-tested in
// tests/unit/ctl/views_render_test.cpp.
//
// Contract
// - table(): one header line and one line per row, columns left-aligned, separated by two
//   spaces, no trailing blanks; an empty cell is shown as "-".
// - Every list text ends with "(shown S of T; --limit N / --match TEXT)" when rows were left
//   out, and every list JSON has "total", "shown" and the rows under the view's name.
// - stats: counters are summed over workers into "total"; with a previous report (same workers)
//   rates per second are (cur - prev) / elapsed time; a counter that went backwards (vanishd
//   restarted) has rate 0.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "vanish/ctl.pb.h"

namespace vanish::ctl::views {

using Json = nlohmann::ordered_json;
using Row = std::vector<std::string>;

std::string table(const Row& header, const std::vector<Row>& rows);
std::string shown_note(uint32_t total, uint32_t shown);  // "" when nothing was left out
std::string mac_or_dash(const std::string& s);
std::string fmt_fixed(double v, int decimals);

// `vanishctl status`: adds "ports", "worker_load" and "load_interval_s" to j.
void dataplane_status_json(const v1::DataplaneStatus& d, Json* j);
std::string dataplane_status_text(const v1::DataplaneStatus& d);

Json workloads_json(const v1::WorkloadRows& r);
std::string workloads_text(const v1::WorkloadRows& r);
Json services_json(const v1::ServiceRows& r);
std::string services_text(const v1::ServiceRows& r);
Json policies_json(const v1::PolicyRows& r);
std::string policies_text(const v1::PolicyRows& r);
Json sas_json(const v1::SaRows& r);
std::string sas_text(const v1::SaRows& r);
Json peers_json(const v1::PeerRows& r);
std::string peers_text(const v1::PeerRows& r);

// Counter totals: name -> value; drops under "drops" in stats_json.
struct StatsTotals {
  std::vector<std::pair<std::string, uint64_t>> counters;  // display order
  std::vector<std::pair<std::string, uint64_t>> drops;     // non-zero, reason order as received
  std::vector<std::pair<std::string, std::string>> descriptions;
};
StatsTotals stats_totals(const v1::StatsReport& r);
// prev may be null (no rates).
Json stats_json(const v1::StatsReport& cur, const v1::StatsReport* prev);
std::string stats_text(const v1::StatsReport& cur, const v1::StatsReport* prev);

}  // namespace vanish::ctl::views
