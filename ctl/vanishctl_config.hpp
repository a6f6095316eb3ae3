// `vanishctl config validate|apply|show` and `vanishctl status`: vanishd's config, offline or
// through its control socket (ctl/control_client.hpp, ctl/proto/vanish/ctl.proto).
//
// Contract
// - config validate FILE: loads FILE (includes resolved), validates and compiles it with one
//   worker, as vanishd would; prints "valid: ..." or one "resource: field: reason" line per error.
// - config apply FILE [--dry-run]: loads FILE here (includes resolved, so vanishd receives one
//   complete config) and sends it; prints "applied: generation N" ("valid: would be generation N"
//   for a dry run) or vanishd's reasons, one "resource: field: reason" line each.
// - config show / status: what vanishd serves (-o text|json).
// - Exit status: kExitOk (0) done/valid/applied, kExitInvalid (1) the config is invalid or was
//   rejected, kExitBadInput (2) FILE unreadable, vanishd unreachable, bad usage.
// - The socket: --socket PATH, else $VANISH_CTL_SOCKET, else /run/vanish/<node>.sock with the node
//   of FILE (apply) or of --config FILE, else the only *.sock in /run/vanish.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

namespace CLI {
class App;
}

namespace vanish::ctl {

namespace v1 {
class Request;
class Response;
}  // namespace v1

inline constexpr int kExitOk = 0;
inline constexpr int kExitInvalid = 1;

struct ConfigCmdOptions {
  std::string file;    // validate, apply
  std::string socket;  // --socket
  std::string config;  // --config (show, status): names the node whose socket to use
  bool dry_run = false;
  std::string output = "text";
};

int run_config_validate(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err);
int run_config_apply(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err);
int run_config_show(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err);
int run_status(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err);

// Shared with the other commands that talk to vanishd (ctl/vanishctl_views.cpp):
// The node (this_node) of a config file, "" if it does not load.
std::string config_node(const std::string& file);
// The socket path (rules above; `node` may be empty); false with a reason in *why.
bool resolve_socket(const std::string& given, const std::string& node, std::string* path,
                    std::string* why);
// Connects and sends `req`; on failure prints "vanishctl CMD: reason" to err and returns false.
bool ctl_call(const std::string& socket, const std::string& node, v1::Request& req,
              v1::Response* resp, const char* cmd, std::ostream& err);

// Adds `config` (validate, apply, show) and `status` to `app`.
void add_config_commands(CLI::App& app, std::function<int()>* run);

}  // namespace vanish::ctl
