#include "ctl/vanishctl_config.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "ctl/compile.hpp"
#include "ctl/config_loader.hpp"
#include "ctl/control_client.hpp"
#include "ctl/vanishctl_check.hpp"  // kExitBadInput
#include "ctl/views_render.hpp"

namespace vanish::ctl {

namespace {

using Json = nlohmann::ordered_json;

// Loads `file`; on failure prints the loader's messages and returns the exit status (2 when the
// file itself cannot be opened, 1 when it does not parse or an include is missing/broken).
int load_file(const std::string& file, config::Config* cfg, const char* cmd, std::ostream& err) {
  std::ifstream probe(file, std::ios::binary);
  if (!probe) {
    err << "vanishctl " << cmd << ": cannot read " << file << "\n";
    return kExitBadInput;
  }
  std::vector<std::string> errors;
  if (ctl::load_config(file, cfg, &errors)) return kExitOk;
  for (const auto& e : errors) err << e << "\n";
  return kExitInvalid;
}

}  // namespace

std::string config_node(const std::string& file) {
  config::Config cfg;
  std::vector<std::string> errors;
  if (!ctl::load_config(file, &cfg, &errors)) return "";
  return cfg.this_node();
}

// --socket, $VANISH_CTL_SOCKET, the node's default path, or the only socket in /run/vanish.
bool resolve_socket(const std::string& given, const std::string& node, std::string* path,
                    std::string* why) {
  if (!given.empty()) {
    *path = given;
    return true;
  }
  if (const char* env = std::getenv("VANISH_CTL_SOCKET"); env && *env) {
    *path = env;
    return true;
  }
  if (!node.empty()) {
    *path = default_ctl_socket(node);
    return true;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> found;
  fs::path dir = fs::path(default_ctl_socket("x")).parent_path();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".sock") found.push_back(it->path().string());
  if (found.size() == 1) {
    *path = found[0];
    return true;
  }
  *why = found.empty() ? "no vanishd socket in " + dir.string() + "; give --socket PATH"
                       : std::to_string(found.size()) + " vanishd sockets in " + dir.string() +
                             "; give --socket PATH or --config FILE";
  return false;
}

// Connects and sends; prints the reason and returns false on failure.
bool ctl_call(const std::string& socket, const std::string& node, v1::Request& req,
              v1::Response* resp, const char* cmd, std::ostream& err) {
  std::string path, why;
  if (!resolve_socket(socket, node, &path, &why)) {
    err << "vanishctl " << cmd << ": " << why << "\n";
    return false;
  }
  ControlClient c;
  if (!c.connect(path, &why) || !c.call(req, resp, &why)) {
    err << "vanishctl " << cmd << ": " << why << "\n";
    return false;
  }
  return true;
}

namespace {

void print_errors(const v1::Response& r, std::ostream& out) {
  for (const auto& e : r.errors()) {
    ConfigError ce{e.resource(), e.field(), e.reason()};
    out << ce.str() << "\n";
  }
  if (!r.error().empty()) out << r.error() << "\n";
}

std::string duration(uint64_t s) {
  std::string out;
  if (s >= 86400) out += std::to_string(s / 86400) + "d";
  if (s >= 3600) out += std::to_string(s / 3600 % 24) + "h";
  if (s >= 60) out += std::to_string(s / 60 % 60) + "m";
  return out + std::to_string(s % 60) + "s";
}

}  // namespace

int run_config_validate(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err) {
  config::Config cfg;
  if (int rc = load_file(o.file, &cfg, "config validate", err); rc != kExitOk) return rc;
  std::vector<ConfigError> errors;
  auto snap = compile_snapshot(cfg, CompileOptions{1, 1}, nullptr, &errors);
  if (!snap) {
    for (const auto& e : errors) out << e.str() << "\n";
    if (errors.empty()) out << "config: : does not compile\n";
    return kExitInvalid;
  }
  out << "valid: node " << cfg.this_node() << ", " << cfg.workloads_size() << " workloads, "
      << cfg.services_size() << " services, " << cfg.authorizations_size() << " policies\n";
  return kExitOk;
}

int run_config_apply(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err) {
  v1::Request req;
  v1::ApplyConfig* a = req.mutable_apply_config();
  if (int rc = load_file(o.file, a->mutable_config(), "config apply", err); rc != kExitOk)
    return rc;
  a->set_dry_run(o.dry_run);
  v1::Response resp;
  if (!ctl_call(o.socket, a->config().this_node(), req, &resp, "config apply", err))
    return kExitBadInput;
  if (!resp.ok()) {
    if (resp.errors_size() > 0)
      out << "rejected: generation " << resp.generation() << " keeps serving\n";
    print_errors(resp, out);
    return resp.errors_size() > 0 ? kExitInvalid : kExitBadInput;
  }
  if (o.dry_run)
    out << "valid: would be generation " << resp.generation() << " (dry run, nothing applied)\n";
  else
    out << "applied: generation " << resp.generation() << "\n";
  return kExitOk;
}

int run_config_show(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err) {
  v1::Request req;
  req.mutable_get_config();
  v1::Response resp;
  std::string node = o.config.empty() ? "" : config_node(o.config);
  if (!ctl_call(o.socket, node, req, &resp, "config show", err)) return kExitBadInput;
  if (!resp.ok()) {
    print_errors(resp, err);
    return kExitBadInput;
  }
  std::string s;
  config_to_string(resp.config(), o.output == "json" ? ConfigFormat::kJson : ConfigFormat::kText,
                   &s);
  if (o.output != "json") out << "# vanishd config generation " << resp.generation() << "\n";
  out << s;
  if (!s.empty() && s.back() != '\n') out << "\n";
  return kExitOk;
}

int run_status(const ConfigCmdOptions& o, std::ostream& out, std::ostream& err) {
  v1::Request req;
  req.mutable_status();
  v1::Response resp;
  std::string node = o.config.empty() ? "" : config_node(o.config);
  if (!ctl_call(o.socket, node, req, &resp, "status", err)) return kExitBadInput;
  if (!resp.ok()) {
    print_errors(resp, err);
    return kExitBadInput;
  }
  const v1::Status& s = resp.status();
  // Ports and worker load come from the data plane (dataplane/ctl_views.cpp); a vanishd
  // without them still gets its status shown.
  v1::Request dreq;
  dreq.mutable_dataplane_status();
  v1::Response dresp;
  std::ostringstream derr;
  bool have_dp = ctl_call(o.socket, node, dreq, &dresp, "status", derr) && dresp.ok() &&
                 dresp.has_dataplane_status();
  if (o.output == "json") {
    Json j;
    j["node"] = s.node();
    j["generation"] = s.generation();
    j["decision_generation"] = s.decision_generation();
    j["uptime_s"] = s.uptime_s();
    j["config_path"] = s.config_path();
    j["watching"] = s.watching();
    j["workers"] = s.n_workers();
    j["last_reload_error"] = s.last_reload_error();
    if (have_dp) views::dataplane_status_json(dresp.dataplane_status(), &j);
    out << j.dump(2) << "\n";
    return kExitOk;
  }
  out << "node               " << s.node() << "\n"
      << "generation         " << s.generation();
  if (s.decision_generation() && s.decision_generation() != s.generation())
    out << " (flow verdicts from generation " << s.decision_generation()
        << " on are current: later ones changed only SAs)";
  out << "\n"
      << "uptime             " << duration(s.uptime_s()) << "\n"
      << "config             " << s.config_path() << (s.watching() ? " (watched)" : "") << "\n"
      << "workers            " << s.n_workers() << "\n"
      << "last reload error  " << (s.last_reload_error().empty() ? "-" : s.last_reload_error())
      << "\n";
  if (have_dp) out << "\n" << views::dataplane_status_text(dresp.dataplane_status());
  return kExitOk;
}

void add_config_commands(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<ConfigCmdOptions>();
  const char* socket_help =
      "vanishd's control socket (default: $VANISH_CTL_SOCKET, else /run/vanish/<node>.sock)";

  CLI::App* cfg = app.add_subcommand("config",
                                     "validate a config file, push it to vanishd, show "
                                     "what vanishd serves");
  cfg->require_subcommand(1);
  cfg->footer(
      "Exit status: 0 ok, 1 invalid or rejected config, 2 unreadable file or vanishd "
      "unreachable.");

  CLI::App* v = cfg->add_subcommand(
      "validate", "offline: load (with includes), validate and compile FILE as vanishd would");
  v->add_option("FILE", o->file, "config file (.textproto, .json or .pb)")->required();
  v->callback([o, run] { *run = [o] { return run_config_validate(*o, std::cout, std::cerr); }; });

  CLI::App* a = cfg->add_subcommand(
      "apply",
      "send FILE (includes resolved here) to vanishd, which applies it as the next "
      "generation, or rejects it whole and keeps serving");
  a->add_option("FILE", o->file, "config file (.textproto, .json or .pb)")->required();
  a->add_option("--socket", o->socket, socket_help);
  a->add_flag("--dry-run", o->dry_run, "validate and compile in vanishd, apply nothing");
  a->callback([o, run] { *run = [o] { return run_config_apply(*o, std::cout, std::cerr); }; });

  CLI::App* s = cfg->add_subcommand("show", "the config vanishd serves (includes merged)");
  s->add_option("--socket", o->socket, socket_help);
  s->add_option("--config", o->config, "a config file naming the node (for the default socket)");
  s->add_option("-o,--output", o->output, "output format")->check(CLI::IsMember({"text", "json"}));
  s->callback([o, run] { *run = [o] { return run_config_show(*o, std::cout, std::cerr); }; });

  CLI::App* st = app.add_subcommand(
      "status",
      "vanishd's config generation, uptime, config file, last reload error, ports (link, "
      "packets, drops) and workers (Mpps, busy %)");
  st->add_option("--socket", o->socket, socket_help);
  st->add_option("--config", o->config, "a config file naming the node (for the default socket)");
  st->add_option("-o,--output", o->output, "output format")->check(CLI::IsMember({"text", "json"}));
  st->callback([o, run] { *run = [o] { return run_status(*o, std::cout, std::cerr); }; });
}

}  // namespace vanish::ctl
