// `vanishctl check --host NAME`: the egress hostname decision (ctl/egress.hpp, the data plane's
// HostPolicy) for a workload reaching NAME outside the mesh, offline on a config file.
#include <nlohmann/json.hpp>

#include <ostream>
#include <string>

#include "ctl/config_loader.hpp"
#include "ctl/egress.hpp"
#include "ctl/validate.hpp"
#include "ctl/vanishctl_check.hpp"
#include "dataplane/hostname_parse.hpp"

namespace vanish::ctl {

namespace {

struct Bad {
  std::string message;
};

// The source workload: "namespace/name", "name" (unique) or one of its addresses.
int find_workload(const config::Config& c, const std::string& from) {
  IpAddr a;
  bool is_ip = IpAddr::parse(from, &a);
  int found = -1;
  for (int i = 0; i < c.workloads_size(); i++) {
    const auto& w = c.workloads(i);
    bool hit = false;
    if (is_ip) {
      for (const auto& raw : w.addresses()) {
        IpAddr x;
        if (IpAddr::from_bytes(raw, &x) && x == a) hit = true;
      }
    } else {
      hit = from == w.namespace_() + "/" + w.name() || from == w.name();
    }
    if (!hit) continue;
    if (found >= 0 && !is_ip) throw Bad{"--from " + from + " is ambiguous (use namespace/name)"};
    found = i;
  }
  if (found < 0) throw Bad{"--from " + from + ": no such workload"};
  return found;
}

}  // namespace

int run_host_check(const CheckOptions& o, std::ostream& out, std::ostream& err) {
  using Json = nlohmann::ordered_json;
  try {
    config::Config cfg;
    std::vector<std::string> lerr;
    if (!load_config(o.config, &cfg, &lerr)) {
      std::string m = "cannot load " + o.config + ":";
      for (const auto& e : lerr) m += "\n  " + e;
      throw Bad{m};
    }
    std::vector<ConfigError> cerrs;
    if (!validate_config(cfg, &cerrs)) {
      std::string m = o.config + " is not a valid config:";
      for (const auto& e : cerrs) m += "\n  " + e.str();
      throw Bad{m};
    }
    std::string host = o.host;
    if (!host.empty() && host.back() == '.') host.pop_back();
    if (!dp::valid_hostname(host)) throw Bad{"--host " + o.host + " is not a hostname"};
    if (o.port < 1 || o.port > 65535)
      throw Bad{"--port " + std::to_string(o.port) + " is not 1..65535"};
    const int w = find_workload(cfg, o.from);
    const auto& wl = cfg.workloads(w);
    const std::string src = wl.namespace_() + "/" + wl.name();
    bool allowed = false;
    std::string reason, rule, pattern, mode = "none";
    if (!cfg.has_egress()) {
      reason = "denied: the config has no egress block (destinations outside the mesh: no_route)";
    } else {
      std::string e;
      auto p = build_host_policy(cfg, 1, nullptr, &e);
      if (!p) throw Bad{e};
      mode = p->registry_only ? "REGISTRY_ONLY" : "ALLOW_ANY";
      const uint32_t ns = p->ns_of(uint32_t(w));
      const bool inspectable = o.proto == "tcp" || o.port == 53;
      const uint8_t flags = p->scope_flags(ns, uint16_t(o.port));
      dp::HostDecision d;
      if (inspectable && flags)
        d = p->decide(host, ns, uint16_t(o.port), p->scratch(0));
      else
        d.allow = flags ? p->allow_without_name(flags) : !p->registry_only;
      allowed = d.allow;
      if (d.pattern != kInvalidIdx) {
        pattern = p->patterns[d.pattern].host;
        rule = p->rules[d.rule].name;
        reason = std::string(allowed ? "allowed: egress rule " : "denied: DENY egress rule ") +
                 rule + " lists \"" + pattern + "\"";
      } else if (!inspectable && flags) {
        reason = std::string(allowed ? "allowed" : "denied") + ": " + o.proto + "/" +
                 std::to_string(o.port) + " carries no name the data plane can read";
      } else if (flags & dp::kScopeAllow) {
        std::string names;
        for (const auto& r : p->rules)
          if (!r.deny && p->rule_applies(r, ns, uint16_t(o.port)))
            names += (names.empty() ? "" : ", ") + r.name;
        reason = "denied: ALLOW egress rules apply to namespace " + wl.namespace_() + " on port " +
                 std::to_string(o.port) + " (" + names + ") and none lists " + host;
      } else {
        reason = std::string(allowed ? "allowed" : "denied") + ": no egress rule lists " + host +
                 " for namespace " + wl.namespace_() + " on port " + std::to_string(o.port) +
                 ", mode " + mode;
      }
    }
    if (o.output == "json") {
      Json j;
      j["allowed"] = allowed;
      j["verdict"] = allowed ? "ALLOW" : "DENY";
      j["source"] = {{"workload", src}, {"namespace", wl.namespace_()}};
      j["host"] = host;
      j["port"] = o.port;
      j["protocol"] = o.proto;
      j["mode"] = mode;
      j["rule"] = rule.empty() ? Json() : Json(rule);
      j["pattern"] = pattern.empty() ? Json() : Json(pattern);
      j["reason"] = reason;
      out << j.dump(2) << "\n";
    } else {
      out << "SOURCE       " << src << "  (namespace " << wl.namespace_() << ")\n"
          << "DESTINATION  " << host << ":" << o.port << "/" << o.proto
          << "  (outside the mesh, egress " << mode << ")\n"
          << "VERDICT      " << (allowed ? "ALLOW" : "DENY") << "\n"
          << "REASON       " << reason << "\n";
    }
    return allowed ? kExitAllowed : kExitDenied;
  } catch (const Bad& b) {
    err << "vanishctl check: " << b.message << "\n";
    return kExitBadInput;
  }
}

}  // namespace vanish::ctl
