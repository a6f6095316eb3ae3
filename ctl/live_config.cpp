#include "ctl/live_config.hpp"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cstdio>

#include "ctl/config_loader.hpp"
#include "ctl/model.hpp"

namespace vanish::ctl {

namespace {

using Clock = std::chrono::steady_clock;

// Changes a running vanishd cannot take (its ports, pools and name are fixed at start).
void check_fixed(const config::Config& now, const config::Config& next, bool ports_from_cli,
                 std::vector<ConfigError>* errors) {
  if (next.include_size() > 0)
    errors->push_back({"config", "include",
                       "includes must be resolved before sending (vanishctl config apply does)"});
  if (next.this_node() != now.this_node())
    errors->push_back({"config", "this_node",
                       "is \"" + next.this_node() + "\" but this vanishd runs as \"" +
                           now.this_node() + "\" (a different node needs a restart)"});
  if (!ports_from_cli) {
    if (local_port(next) != local_port(now))
      errors->push_back({"config", "ports.local",
                         "is " + std::to_string(local_port(next)) + " but the running port is " +
                             std::to_string(local_port(now)) + " (a port change needs a restart)"});
    if (fabric_port(next) != fabric_port(now))
      errors->push_back({"config", "ports.fabric",
                         "is " + std::to_string(fabric_port(next)) + " but the running port is " +
                             std::to_string(fabric_port(now)) +
                             " (a port change needs a restart)"});
  }
}

std::string join(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const auto& e : errors) s += (s.empty() ? "" : "; ") + e.str();
  return s;
}

}  // namespace

LiveConfig::LiveConfig(LiveConfigOptions opts, config::Config initial,
                       std::vector<std::string> files, Current current, Publish publish, Log log)
    : opts_(std::move(opts)),
      cfg_(std::move(initial)),
      current_(std::move(current)),
      publish_(std::move(publish)),
      log_(std::move(log)),
      watch_(opts_.watch_interval),
      start_(Clock::now()) {
  if (opts_.watch) watch_.set_files(files);
}

bool LiveConfig::open_socket(std::string* err) {
  if (opts_.socket.path.empty()) return true;
  return server_.open(opts_.socket, err);
}

LiveConfig::Result LiveConfig::finish(Result r, const config::Config* cfg, Clock::time_point t0,
                                      std::unique_ptr<dp::Snapshot> snap, bool dry_run) {
  const dp::Snapshot* cur = current_();
  uint64_t serving = cur ? cur->generation : 0;
  if (!snap) {
    r.ok = false;
    r.generation = serving;
    r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!dry_run) {
      last_error_ = join(r.errors);
      log_(true,
           "vanishd: config rejected, generation " + std::to_string(serving) + " keeps serving:");
      for (const auto& e : r.errors) log_(true, "  " + e.str());
    }
    return r;
  }
  r.ok = true;
  r.generation = snap->generation;
  if (dry_run) {
    r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    return r;
  }
  bool limits_changed =
      !google::protobuf::util::MessageDifferencer::Equals(cfg->limits(), cfg_.limits());
  publish_(std::move(snap), true);
  cfg_ = *cfg;
  last_error_.clear();
  r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  char ms[32];
  std::snprintf(ms, sizeof(ms), "%.1f", r.ms);
  log_(false, "vanishd: config generation " + std::to_string(r.generation) + " applied (" +
                  std::to_string(cfg_.workloads_size()) + " workloads, " +
                  std::to_string(cfg_.services_size()) + " services, " +
                  std::to_string(cfg_.authorizations_size()) + " policies) in " + ms + " ms");
  if (limits_changed)
    log_(false, "vanishd: note: limits changed; pool and table sizes change at restart only");
  for (const std::string& w : anti_replay_off_warnings(cfg_)) log_(true, w);
  return r;
}

LiveConfig::Result LiveConfig::apply(const config::Config& cfg, bool dry_run) {
  Clock::time_point t0 = Clock::now();
  Result r;
  check_fixed(cfg_, cfg, opts_.ports_from_cli, &r.errors);
  std::unique_ptr<dp::Snapshot> snap;
  if (r.errors.empty()) {
    const dp::Snapshot* cur = current_();
    CompileOptions co = opts_.compile;
    co.generation = (cur ? cur->generation : 0) + 1;
    snap = compile_snapshot(cfg, co, cur, &r.errors);
    if (!snap && r.errors.empty()) r.errors.push_back({"config", "", "does not compile"});
  }
  return finish(std::move(r), &cfg, t0, std::move(snap), dry_run);
}

LiveConfig::Result LiveConfig::republish() {
  Clock::time_point t0 = Clock::now();
  Result r;
  const dp::Snapshot* cur = current_();
  CompileOptions co = opts_.compile;
  co.generation = (cur ? cur->generation : 0) + 1;
  co.same_config = true;  // cfg_ is what `cur` serves: only SAs changed
  auto snap = compile_snapshot(cfg_, co, cur, &r.errors);
  if (snap) {
    r.ok = true;
    r.generation = co.generation;
    publish_(std::move(snap), false);
  } else {
    r.generation = cur ? cur->generation : 0;
    std::string line = "vanishd: republishing the running config failed:";
    for (auto& e : r.errors) line += "\n  " + e.str();
    log_(true, line);
  }
  r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return r;
}

LiveConfig::Result LiveConfig::reload_file() {
  Clock::time_point t0 = Clock::now();
  config::Config cfg;
  std::vector<std::string> load_errors, files;
  if (!load_config(opts_.config_path, &cfg, &load_errors, &files)) {
    // Keep watching what was watched, plus whatever this attempt read, so a fix is seen.
    if (opts_.watch) {
      std::vector<std::string> all = watch_.files();
      for (auto& f : files)
        if (std::find(all.begin(), all.end(), f) == all.end()) all.push_back(f);
      watch_.set_files(all);
    }
    Result r;
    for (auto& e : load_errors) r.errors.push_back({"config file", "", e});
    return finish(std::move(r), nullptr, t0, nullptr, false);
  }
  if (opts_.watch) watch_.set_files(files);
  Result r = apply(cfg, false);
  r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return r;
}

void LiveConfig::handle(const v1::Request& req, v1::Response* resp) {
  const dp::Snapshot* cur = current_();
  uint64_t serving = cur ? cur->generation : 0;
  resp->set_generation(serving);
  switch (req.command_case()) {
    case v1::Request::kApplyConfig:
    case v1::Request::kValidateConfig: {
      bool validate = req.command_case() == v1::Request::kValidateConfig;
      const config::Config& c =
          validate ? req.validate_config().config() : req.apply_config().config();
      Result r = apply(c, validate || req.apply_config().dry_run());
      resp->set_ok(r.ok);
      resp->set_generation(r.generation);
      for (const auto& e : r.errors) {
        v1::ConfigError* pe = resp->add_errors();
        pe->set_resource(e.resource);
        pe->set_field(e.field);
        pe->set_reason(e.reason);
      }
      return;
    }
    case v1::Request::kGetConfig:
      resp->set_ok(true);
      *resp->mutable_config() = cfg_;
      return;
    case v1::Request::kStatus: {
      resp->set_ok(true);
      v1::Status* s = resp->mutable_status();
      s->set_generation(serving);
      if (const dp::Snapshot* cur = current_())
        s->set_decision_generation(cur->decision_generation);
      s->set_uptime_s(uint64_t(
          std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start_).count()));
      s->set_config_path(opts_.config_path);
      s->set_last_reload_error(last_error_);
      s->set_n_workers(opts_.compile.n_workers);
      s->set_node(cfg_.this_node());
      s->set_watching(opts_.watch);
      return;
    }
    case v1::Request::COMMAND_NOT_SET:
      break;
    default:
      if (extra_ && extra_(req, resp)) return;
      break;
  }
  resp->set_ok(false);
  resp->set_error("unknown command");
}

void LiveConfig::poll() {
  if (opts_.watch && watch_.poll()) reload_file();
  if (server_.is_open())
    server_.poll([this](const v1::Request& req, v1::Response* resp) { handle(req, resp); });
}

}  // namespace vanish::ctl
