// LiveConfig: vanishd's live config updates, on the control thread. It reloads the config file
// when it (or an include) changes (ctl/config_watch.hpp) and serves the control socket
// (ctl/control_server.hpp: apply, validate, get config, status).
//
// Contract
// - apply(cfg, dry_run): validates and compiles `cfg` against the snapshot being served
//   (current(), generation + 1, the same CompileOptions as at start) and, unless dry_run,
//   hands it to publish() (which returns once no worker can see the old one). A rejected
//   config changes nothing: the same snapshot and config keep serving. Rejected as well: a
//   different this_node, a different port id (unless ports come from the command line), an
//   unresolved `include` (clients resolve includes). A limits change is applied to nothing
//   until restart (pool and table sizes are fixed), which is logged.
// - Every applied or rejected (not dry-run) config logs one line
//     "vanishd: config generation N applied (W workloads, S services, P policies) in X ms"
//   or "vanishd: config rejected, generation N keeps serving:" plus one line per error
//     "  resource: field: reason".
// - poll() (call every control-loop tick): polls the file watch and the socket without
//   waiting; a reload or an apply takes as long as its compile (~0.3 s for 100k workloads).
// - Independent of DPDK: the snapshot is reached through the current/publish callbacks.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctl/compile.hpp"
#include "ctl/config_watch.hpp"
#include "ctl/control_server.hpp"

namespace vanish::ctl {

struct LiveConfigOptions {
  std::string config_path;      // vanishd --config
  CompileOptions compile;       // n_workers and deterministic_iv as at start
  bool ports_from_cli = false;  // --local-port/--fabric-port given: config port ids not checked
  bool watch = true;            // reload when the file or an include changes
  std::chrono::milliseconds watch_interval{200};
  ControlServerOptions socket;  // path empty: no control socket
};

class LiveConfig {
 public:
  using Current = std::function<const dp::Snapshot*()>;
  // config_change: an applied config (apply()); false for republish() (same config, new SAs).
  using Publish = std::function<void(std::unique_ptr<dp::Snapshot>, bool config_change)>;
  using Log = std::function<void(bool error, const std::string& line)>;

  struct Result {
    bool ok = false;
    uint64_t generation = 0;  // applied (or would be, dry run); on reject the one serving
    std::vector<ConfigError> errors;
    double ms = 0;
  };

  // `initial` is the config being served (generation current()->generation), `files` the files
  // its load read (load_config's `files`).
  LiveConfig(LiveConfigOptions opts, config::Config initial, std::vector<std::string> files,
             Current current, Publish publish, Log log);

  bool open_socket(std::string* err);
  void poll();

  Result apply(const config::Config& cfg, bool dry_run);
  // Compiles the running config again (generation + 1) and publishes it: the SAs of peering
  // changed (CompileOptions::dynamic_sas). Logs only a failure.
  Result republish();
  // Loads the config file (with includes) and applies it.
  Result reload_file();
  void handle(const v1::Request& req, v1::Response* resp);

  // Commands this class does not serve (views of the data plane: flows, stats, trace, ...) go
  // to `extra`; it returns false for a command it does not know either.
  using Extra = std::function<bool(const v1::Request&, v1::Response*)>;
  void set_extra(Extra extra) { extra_ = std::move(extra); }

  const config::Config& config() const { return cfg_; }
  const std::string& last_reload_error() const { return last_error_; }
  const ControlServer& server() const { return server_; }
  const ConfigWatch& watch() const { return watch_; }

 private:
  Result finish(Result r, const config::Config* cfg, std::chrono::steady_clock::time_point t0,
                std::unique_ptr<dp::Snapshot> snap, bool dry_run);

  LiveConfigOptions opts_;
  config::Config cfg_;
  Current current_;
  Publish publish_;
  Log log_;
  ConfigWatch watch_;
  ControlServer server_;
  std::string last_error_;
  std::chrono::steady_clock::time_point start_;
  Extra extra_;
};

}  // namespace vanish::ctl
