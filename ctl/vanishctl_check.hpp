// `vanishctl check`: offline authorization check of one connection against a config file, with
// the same policy engine the data plane uses (ctl/authz.hpp).
//
// Contract
// - run_check() loads and validates the config (ctl/config_loader.hpp, ctl/validate.hpp), builds
//   the engine, resolves --from (a workload "name" / "namespace/name", or a workload address) and
//   --to ("IP:PORT", IPv6 as "[IP]:PORT"; a workload address, or a service VIP:port which is
//   checked for every endpoint at its target port), and prints the verdict and its reason.
// - Exit status: kExitAllowed (0) allowed (for a VIP: every healthy endpoint allows), kExitDenied
//   (1) denied (for a VIP: at least one healthy endpoint denies), kExitBadInput (2) anything it
//   cannot check (unreadable or invalid config, unknown workload, unparsable address, ...), with
//   one clear message on `err`.
// - Output on `out`: "table" (people) or "json" (one object; fields in docs/config.md).
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace vanish::ctl {

inline constexpr int kExitAllowed = 0;
inline constexpr int kExitDenied = 1;
inline constexpr int kExitBadInput = 2;

struct CheckOptions {
  std::string config;
  std::string from;
  std::string to;
  std::string proto = "tcp";
  std::string output = "table";
  // --host NAME: the egress hostname check instead (docs/config.md#egress): may a workload of
  // --from's namespace reach NAME outside the mesh on --port (default 443) / --proto?
  std::string host;
  int port = 443;
};

int run_check(const CheckOptions& o, std::ostream& out, std::ostream& err);
// The --host check (vanishctl_check_host.cpp); same exit statuses.
int run_host_check(const CheckOptions& o, std::ostream& out, std::ostream& err);

// Adds the `check` subcommand to `app`; when it is the one parsed, *run is set to execute it.
void add_check_command(CLI::App& app, std::function<int()>* run);

}  // namespace vanish::ctl
