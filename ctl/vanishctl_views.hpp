// `vanishctl workloads | services | policies | sas | peers | stats`: read-only views of a running
// vanishd's data plane through its control socket (ctl.proto fields 20..39, served by
// dataplane/ctl_views.cpp, rendered by ctl/views_render.hpp).
//
// Contract
// - Each prints a table (default) or JSON (-o json). The list views pass --match TEXT and
//   --limit N (default 1000, 0 = as many as vanishd sends: at most 100000 rows and 8 MiB) to
//   vanishd, which filters and bounds the reply; they report how many rows matched and were shown.
// - stats [--watch [SECONDS]] [--count N]: counters per worker and in total and every non-zero
//   drop reason; with --watch, refreshed every SECONDS (default 1) with rates per second from
//   the last two reports, until Ctrl-C or N refreshes. JSON with --watch: one document per line.
// - Socket: as `vanishctl status` (--socket, $VANISH_CTL_SOCKET, --config FILE's node, the only
//   socket in /run/vanish). Exit status: 0 ok, 2 vanishd unreachable or an error reply, bad usage.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace vanish::ctl {

struct ViewCmdOptions {
  std::string view;    // workloads, services, policies, sas, peers, stats
  std::string socket;  // --socket
  std::string config;  // --config: names the node whose socket to use
  std::string output = "text";
  std::string match;
  uint32_t limit = 1000;
  double watch = 0;    // stats: seconds between refreshes; 0 = once
  uint32_t count = 0;  // stats --watch: stop after this many refreshes (0: until Ctrl-C)
};

int run_view(const ViewCmdOptions& o, std::ostream& out, std::ostream& err);

// Adds workloads, services, policies, sas, peers and stats to `app`.
void add_view_commands(CLI::App& app, std::function<int()>* run);

}  // namespace vanish::ctl
