#include "ctl/vanishctl_check.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "ctl/authz.hpp"
#include "ctl/config_loader.hpp"
#include "ctl/validate.hpp"

namespace vanish::ctl {
namespace {

using authz::Bucket;
using authz::Engine;
using authz::kNone;
using authz::PolicyId;
using authz::Verdict;
using Json = nlohmann::ordered_json;

struct BadInput {
  std::string message;
};

// "IP:PORT" or "[IPv6]:PORT".
void parse_ip_port(const std::string& s, IpAddr* ip, uint16_t* port) {
  std::string host, port_s;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find("]:");
    if (close == std::string::npos)
      throw BadInput{"--to " + s + ": expected [IPv6]:PORT"};
    host = s.substr(1, close - 1);
    port_s = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos)
      throw BadInput{"--to " + s + ": expected IP:PORT (IPv6 as [IP]:PORT)"};
    host = s.substr(0, colon);
    port_s = s.substr(colon + 1);
    if (host.find(':') != std::string::npos)
      throw BadInput{"--to " + s + ": write an IPv6 destination as [IP]:PORT"};
  }
  if (!IpAddr::parse(host, ip)) throw BadInput{"--to " + s + ": \"" + host + "\" is not an IP address"};
  bool digits = !port_s.empty() && port_s.size() <= 5 &&
                std::all_of(port_s.begin(), port_s.end(), [](char c) { return c >= '0' && c <= '9'; });
  unsigned long p = digits ? std::stoul(port_s) : 0;
  if (!digits || p < 1 || p > 65535)
    throw BadInput{"--to " + s + ": port \"" + port_s + "\" is not 1..65535"};
  *port = uint16_t(p);
}

const char* family(const IpAddr& a) {
  return a.is_v4() ? "IPv4" : "IPv6";
}

std::string addr_port(const IpAddr& a, uint16_t port) {
  return a.is_v4() ? a.str() + ":" + std::to_string(port)
                   : "[" + a.str() + "]:" + std::to_string(port);
}

// One destination to check: a workload address at the port it receives on.
struct Target {
  uint32_t workload = kNone;
  IpAddr ip;
  uint16_t port = 0;
  bool healthy = true;
  Verdict verdict;
};

struct Source {
  uint32_t workload = kNone;
  IpAddr ip;
  bool ip_given = false;  // --from was an address
};

struct ServiceHit {
  int index = -1;
  IpAddr vip;
  uint16_t port = 0;
};

class Check {
 public:
  Check(const CheckOptions& o, std::ostream& out) : o_(o), out_(out) {}

  int run() {
    load();
    resolve_source();
    resolve_destination();
    for (Target& t : targets_) {
      authz::Request r;
      r.src_identity = engine_->identity_of_workload(src_.workload);
      r.src_ip = src_.ip;
      r.dst_ip = t.ip;
      r.dst_port = t.port;
      r.dst_workload = t.workload;
      t.verdict = engine_->evaluate(r);
    }
    bool all_allowed = true;
    for (const Target& t : targets_)
      if (t.healthy && !t.verdict.allowed) all_allowed = false;
    if (o_.output == "json")
      print_json(all_allowed);
    else
      print_table(all_allowed);
    return all_allowed ? kExitAllowed : kExitDenied;
  }

 private:
  void load() {
    std::vector<std::string> errors;
    if (!load_config(o_.config, &cfg_, &errors)) {
      std::string m = "cannot load " + o_.config + ":";
      for (const auto& e : errors) m += "\n  " + e;
      throw BadInput{m};
    }
    std::vector<ConfigError> cerrs;
    if (!validate_config(cfg_, &cerrs)) {
      std::string m = o_.config + " is not a valid config (" + std::to_string(cerrs.size()) +
                      (cerrs.size() == 1 ? " error" : " errors") + "):";
      for (const auto& e : cerrs) m += "\n  " + e.str();
      throw BadInput{m};
    }
    engine_ = Engine::build(cfg_);
  }

  std::string wl_name(uint32_t w) const {
    const auto& ref = engine_->workload(w);
    return ref.ns + "/" + ref.name;
  }

  void resolve_source() {
    IpAddr a;
    if (IpAddr::parse(o_.from, &a)) {
      src_.workload = engine_->workload_by_address(a);
      if (src_.workload == kNone)
        throw BadInput{"--from " + o_.from + " is not an address of any workload"};
      src_.ip = a;
      src_.ip_given = true;
      return;
    }
    std::vector<std::string> ambiguous;
    src_.workload = engine_->workload_by_name(o_.from, &ambiguous);
    if (src_.workload != kNone) return;
    if (!ambiguous.empty()) {
      std::string list;
      for (const auto& c : ambiguous) list += (list.empty() ? "" : ", ") + c;
      throw BadInput{"--from " + o_.from + " is ambiguous: " + list + " (use namespace/name)"};
    }
    std::string known;
    for (size_t i = 0; i < engine_->n_workloads() && i < 12; i++)
      known += (known.empty() ? "" : ", ") + wl_name(uint32_t(i));
    if (engine_->n_workloads() > 12) known += ", ...";
    throw BadInput{"--from " + o_.from + ": no such workload and not an IP address (workloads: " +
                   (known.empty() ? "none" : known) + ")"};
  }

  // The source address for a destination of `dst`'s family.
  void pick_source_ip(const IpAddr& dst) {
    if (src_.ip_given) {
      if (src_.ip.is_v4() != dst.is_v4())
        throw BadInput{"--from " + src_.ip.str() + " is " + family(src_.ip) + " but --to " +
                       o_.to + " is " + family(dst)};
      return;
    }
    for (const IpAddr& a : engine_->workload(src_.workload).addresses)
      if (a.is_v4() == dst.is_v4()) {
        src_.ip = a;
        return;
      }
    throw BadInput{"workload " + wl_name(src_.workload) + " has no " + family(dst) +
                   " address to reach " + o_.to + " from"};
  }

  void resolve_destination() {
    IpAddr ip;
    uint16_t port = 0;
    parse_ip_port(o_.to, &ip, &port);
    uint32_t w = engine_->workload_by_address(ip);
    if (w != kNone) {
      pick_source_ip(ip);
      Target t;
      t.workload = w;
      t.ip = ip;
      t.port = port;
      t.healthy = cfg_.workloads(int(w)).status() == istio::workload::HEALTHY;
      targets_.push_back(t);
      return;
    }
    // A service VIP: every endpoint at its target port.
    for (int i = 0; i < cfg_.services_size() && svc_.index < 0; i++)
      for (const auto& na : cfg_.services(i).addresses()) {
        IpAddr vip;
        if (IpAddr::from_bytes(na.address(), &vip) && vip == ip) {
          svc_.index = i;
          break;
        }
      }
    if (svc_.index < 0)
      throw BadInput{"--to " + o_.to + ": " + ip.str() +
                     " is neither a workload address nor a service VIP"};
    const istio::workload::Service& s = cfg_.services(svc_.index);
    std::string key = s.namespace_() + "/" + s.hostname();
    const istio::workload::Port* sp = nullptr;
    std::string ports;
    for (const auto& p : s.ports()) {
      if (p.service_port() == port) sp = &p;
      ports += (ports.empty() ? "" : ", ") + std::to_string(p.service_port());
    }
    if (!sp)
      throw BadInput{"--to " + o_.to + ": service " + key + " has no port " +
                     std::to_string(port) + " (ports: " + (ports.empty() ? "none" : ports) + ")"};
    svc_.vip = ip;
    svc_.port = port;
    pick_source_ip(ip);
    for (int i = 0; i < cfg_.workloads_size(); i++) {
      const istio::workload::Workload& wl = cfg_.workloads(i);
      auto it = wl.services().find(key);
      if (it == wl.services().end()) continue;
      // Target port: the endpoint's own entry, else the service's, else the service port.
      uint32_t target = 0;
      for (const auto& p : it->second.ports())
        if (p.service_port() == port && p.target_port() != 0) target = p.target_port();
      if (target == 0) target = sp->target_port() != 0 ? sp->target_port() : port;
      Target t;
      t.workload = uint32_t(i);
      t.port = uint16_t(target);
      t.healthy = wl.status() == istio::workload::HEALTHY;
      bool found = false;
      for (const IpAddr& a : engine_->workload(t.workload).addresses)  // the client's family
        if (a.is_v4() == ip.is_v4()) {
          t.ip = a;
          found = true;
          break;
        }
      if (!found) continue;
      targets_.push_back(t);
    }
    bool any_healthy = std::any_of(targets_.begin(), targets_.end(),
                                   [](const Target& t) { return t.healthy; });
    if (!any_healthy)
      throw BadInput{"--to " + o_.to + ": service " + key + " has no healthy " + family(ip) +
                     " endpoint to check"};
  }

  // ---- output ----

  struct PolicyRow {
    PolicyId id;
    bool matched = false;
    uint32_t rule = 0;
  };

  std::vector<PolicyRow> policy_rows(const Target& t) const {
    authz::Request r;
    r.src_identity = engine_->identity_of_workload(src_.workload);
    r.src_ip = src_.ip;
    r.dst_ip = t.ip;
    r.dst_port = t.port;
    r.dst_workload = t.workload;
    std::vector<PolicyRow> rows;
    for (Bucket b : {Bucket::kDryRunDeny, Bucket::kDeny, Bucket::kAllow, Bucket::kDryRunAllow})
      for (PolicyId id : engine_->applicable(t.workload, b)) {
        PolicyRow row{id};
        row.matched = engine_->policy_matches(id, r, &row.rule);
        rows.push_back(row);
      }
    return rows;
  }

  static const char* verdict_word(bool allowed) { return allowed ? "ALLOW" : "DENY"; }

  std::string src_desc() const {
    const auto& id = engine_->identity(engine_->identity_of_workload(src_.workload));
    return wl_name(src_.workload) + "  " + src_.ip.str() + "  " + id.principal;
  }

  std::string node_of(uint32_t w) const { return cfg_.workloads(int(w)).node(); }

  static void print_rows(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> width;
    for (const auto& r : rows)
      for (size_t i = 0; i < r.size(); i++) {
        if (width.size() <= i) width.push_back(0);
        width[i] = std::max(width[i], r[i].size());
      }
    for (const auto& r : rows) {
      std::string line;
      for (size_t i = 0; i < r.size(); i++) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
  }

  void print_policies(const Target& t) const {
    std::vector<PolicyRow> rows = policy_rows(t);
    out_ << "\nPOLICIES APPLYING TO " << wl_name(t.workload) << " (root namespace "
         << engine_->root_ns() << ")\n";
    if (rows.empty()) {
      out_ << "  (none: every connection is allowed)\n";
      return;
    }
    std::vector<std::vector<std::string>> table = {
        {"ACTION", "MODE", "SCOPE", "POLICY", "RULES", "RESULT"}};
    for (const PolicyRow& r : rows) {
      const authz::PolicyInfo& p = engine_->policy(r.id);
      table.push_back({authz::action_name(p.action), p.dry_run ? "dry-run" : "enforced",
                       authz::scope_name(p.scope), p.key(), std::to_string(p.n_rules),
                       r.matched ? "matched rule " + std::to_string(r.rule) : "no match"});
    }
    print_rows(out_, table);
  }

  void print_table(bool all_allowed) const {
    std::vector<std::vector<std::string>> head = {{"SOURCE", src_desc()}};
    if (svc_.index < 0) {
      const Target& t = targets_[0];
      head.push_back({"DESTINATION", wl_name(t.workload) + "  " + addr_port(t.ip, t.port) + "/" +
                                         o_.proto + "  (node " + node_of(t.workload) + ")"});
      head.push_back({"VERDICT", verdict_word(t.verdict.allowed)});
      head.push_back({"REASON", engine_->describe(t.verdict)});
      if (t.verdict.n_dry_run > 0)
        head.push_back({"SHADOW", std::string(verdict_word(t.verdict.shadow_allowed)) +
                                      " (with dry-run policies enforced)"});
      if (!t.healthy) head.push_back({"NOTE", "the destination workload is UNHEALTHY"});
      print_rows(out_, head);
      print_policies(t);
      return;
    }
    const istio::workload::Service& s = cfg_.services(svc_.index);
    size_t healthy = 0, denied = 0;
    for (const Target& t : targets_)
      if (t.healthy) {
        healthy++;
        denied += !t.verdict.allowed;
      }
    head.push_back({"SERVICE", s.namespace_() + "/" + s.hostname() + "  " +
                                   addr_port(svc_.vip, svc_.port) + "/" + o_.proto + "  " +
                                   std::to_string(targets_.size()) + " endpoint(s)"});
    head.push_back({"VERDICT", std::string(verdict_word(all_allowed)) + " (" +
                                   std::to_string(denied) + " of " + std::to_string(healthy) +
                                   " healthy endpoints deny)"});
    print_rows(out_, head);
    out_ << "\n";
    std::vector<std::vector<std::string>> eps = {{"ENDPOINT", "ADDRESS", "NODE", "VERDICT", "REASON"}};
    for (const Target& t : targets_)
      eps.push_back({wl_name(t.workload), addr_port(t.ip, t.port), node_of(t.workload),
                     t.healthy ? verdict_word(t.verdict.allowed) : "(unhealthy)",
                     engine_->describe(t.verdict)});
    print_rows(out_, eps);
    for (const Target& t : targets_) print_policies(t);
  }

  Json target_json(const Target& t) const {
    const Verdict& v = t.verdict;
    Json j;
    j["workload"] = wl_name(t.workload);
    j["ip"] = t.ip.str();
    j["port"] = t.port;
    j["node"] = node_of(t.workload);
    j["healthy"] = t.healthy;
    j["allowed"] = v.allowed;
    j["verdict"] = verdict_word(v.allowed);
    j["reason"] = authz::reason_code(v.reason);
    j["message"] = engine_->describe(v);
    bool decided = v.reason == authz::Reason::kDenyMatched || v.reason == authz::Reason::kAllowMatched;
    j["policy"] = decided ? Json(engine_->policy(v.decided_by.policy).key()) : Json(nullptr);
    j["rule"] = decided ? Json(v.decided_by.rule) : Json(nullptr);
    Json dry = Json::array();
    for (uint8_t i = 0; i < v.n_dry_run; i++) {
      const authz::PolicyInfo& p = engine_->policy(v.dry_run[i].policy);
      dry.push_back({{"policy", p.key()},
                     {"action", authz::action_name(p.action)},
                     {"rule", v.dry_run[i].rule}});
    }
    j["dry_run"] = dry;
    j["shadow_verdict"] = verdict_word(v.shadow_allowed);
    Json pols = Json::array();
    for (const PolicyRow& r : policy_rows(t)) {
      const authz::PolicyInfo& p = engine_->policy(r.id);
      pols.push_back({{"policy", p.key()},
                      {"action", authz::action_name(p.action)},
                      {"scope", authz::scope_name(p.scope)},
                      {"dry_run", p.dry_run},
                      {"matched", r.matched},
                      {"rule", r.matched ? Json(r.rule) : Json(nullptr)}});
    }
    j["policies"] = pols;
    return j;
  }

  void print_json(bool all_allowed) const {
    Json j;
    j["allowed"] = all_allowed;
    j["verdict"] = verdict_word(all_allowed);
    const auto& id = engine_->identity(engine_->identity_of_workload(src_.workload));
    j["source"] = {{"workload", wl_name(src_.workload)},
                   {"ip", src_.ip.str()},
                   {"principal", id.principal},
                   {"namespace", id.ns},
                   {"service_account", id.service_account}};
    j["protocol"] = o_.proto;
    j["root_namespace"] = engine_->root_ns();
    if (svc_.index >= 0) {
      const istio::workload::Service& s = cfg_.services(svc_.index);
      j["service"] = {{"name", s.namespace_() + "/" + s.hostname()},
                      {"vip", svc_.vip.str()},
                      {"port", svc_.port}};
    } else {
      j["service"] = nullptr;
      const Json t = target_json(targets_[0]);
      for (const char* k : {"reason", "message", "policy", "rule"}) j[k] = t[k];
    }
    Json d = Json::array();
    for (const Target& t : targets_) d.push_back(target_json(t));
    j["destinations"] = d;
    out_ << j.dump(2) << "\n";
  }

  const CheckOptions& o_;
  std::ostream& out_;
  config::Config cfg_;
  std::unique_ptr<Engine> engine_;
  Source src_;
  ServiceHit svc_;
  std::vector<Target> targets_;
};

}  // namespace

int run_check(const CheckOptions& o, std::ostream& out, std::ostream& err) {
  if (!o.host.empty()) return run_host_check(o, out, err);
  if (o.to.empty()) {
    err << "vanishctl check: --to IP:PORT (or --host NAME) is required\n";
    return kExitBadInput;
  }
  try {
    return Check(o, out).run();
  } catch (const BadInput& e) {
    err << "vanishctl check: " << e.message << "\n";
    return kExitBadInput;
  }
}

void add_check_command(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<CheckOptions>();
  CLI::App* c = app.add_subcommand(
      "check",
      "offline authorization check of one connection against a config (like istioctl x authz "
      "check)");
  c->footer(
      "Evaluates the destination workload's policies with the data plane's engine and prints "
      "the verdict and the reason: which policy and rule decided, or that no ALLOW policy "
      "applies / matched, plus dry-run matches.\nExit status: 0 allowed, 1 denied, 2 bad input.");
  c->add_option("--config", o->config, "config file (.textproto, .json or .pb), as vanishd reads it")
      ->required();
  c->add_option("--from", o->from,
                "source: a workload (\"name\" or \"namespace/name\") or a workload address")
      ->required();
  c->add_option("--to", o->to,
                "destination IP:PORT ([IPv6]:PORT): a workload address and the port it receives "
                "on, or a service VIP:port (checked for every endpoint at its target port)");
  c->add_option("--host", o->host,
                "egress check instead: a host name outside the mesh (TLS SNI / HTTP Host / DNS "
                "name), decided by the egress rules for --from's namespace");
  c->add_option("--port", o->port, "with --host: destination port (default 443; 53 for DNS)");
  c->add_option("--proto", o->proto, "transport protocol (policies are L4: same verdict for both)")
      ->check(CLI::IsMember({"tcp", "udp"}));
  c->add_option("-o,--output", o->output, "output format")->check(CLI::IsMember({"table", "json"}));
  c->callback([o, run] { *run = [o] { return run_check(*o, std::cout, std::cerr); }; });
}

}  // namespace vanish::ctl
