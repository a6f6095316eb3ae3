#include "ctl/egress.hpp"

#include <unordered_map>
#include <unordered_set>

#include "dataplane/hostname_parse.hpp"

namespace vanish::ctl {

namespace {

std::string quote(const std::string& s) {
  return "\"" + s + "\"";
}

// "*", "*.example.com" or a hostname.
bool valid_host_pattern(const std::string& h, std::string* reason) {
  if (h == "*") return true;
  std::string rest = h;
  if (h.size() >= 2 && h[0] == '*' && h[1] == '.') rest = h.substr(2);
  if (rest.find('*') != std::string::npos) {
    *reason =
        quote(h) + ": a wildcard is only allowed as the whole first label (\"*.example.com\")";
    return false;
  }
  if (!dp::valid_hostname(rest)) {
    *reason = quote(h) +
              " is not a hostname (letters, digits, '-', '_', labels of 1..63 separated by '.', "
              "at most 253 bytes, no trailing dot)";
    return false;
  }
  return true;
}

}  // namespace

std::string host_expression(const std::string& host) {
  const std::string b(1, dp::kHostBegin), e(1, dp::kHostEnd);
  if (host == "*") return b;
  if (host.size() >= 2 && host[0] == '*' && host[1] == '.')
    return b + std::string(host.rbegin(), host.rend() - 2) + ".";
  return b + std::string(host.rbegin(), host.rend()) + e;
}

bool validate_egress(const config::Config& cfg, std::vector<ConfigError>* errors) {
  if (!cfg.has_egress()) return true;
  size_t before = errors->size();
  auto err = [&](const std::string& res, const std::string& field, const std::string& reason) {
    errors->push_back(ConfigError{res, field, reason});
  };
  const config::Egress& e = cfg.egress();
  if (!config::Egress::Mode_IsValid(e.mode()))
    err("egress", "mode", std::to_string(e.mode()) + " is not ALLOW_ANY or REGISTRY_ONLY");
  MacAddr mac;
  if (e.next_hop_mac().empty()) {
    err("egress", "next_hop_mac",
        "required (the MAC on the fabric port that outside traffic is sent to)");
  } else if (!MacAddr::parse(e.next_hop_mac(), &mac)) {
    err("egress", "next_hop_mac",
        quote(e.next_hop_mac()) + " is not a MAC address (xx:xx:xx:xx:xx:xx)");
  } else if (mac.is_zero()) {
    err("egress", "next_hop_mac", "the all-zero MAC is not allowed");
  } else if (mac.b[0] & 1) {
    err("egress", "next_hop_mac", quote(e.next_hop_mac()) + " is a multicast MAC");
  }
  std::unordered_set<std::string> names;
  for (int i = 0; i < e.rules_size(); i++) {
    const config::HostRule& r = e.rules(i);
    std::string res = "egress rule " + (r.name().empty() ? "#" + std::to_string(i) : r.name());
    if (r.name().empty())
      err(res, "name", "required");
    else if (!names.insert(r.name()).second)
      err(res, "name", quote(r.name()) + " is used by another rule");
    if (r.namespace_().find('/') != std::string::npos)
      err(res, "namespace", quote(r.namespace_()) + " must not contain '/'");
    if (!config::HostRule::Action_IsValid(r.action()))
      err(res, "action", std::to_string(r.action()) + " is not ALLOW or DENY");
    if (r.hosts_size() == 0) err(res, "hosts", "at least one host is required");
    std::unordered_set<std::string> seen;
    for (int k = 0; k < r.hosts_size(); k++) {
      std::string reason;
      const std::string field = "hosts[" + std::to_string(k) + "]";
      if (!valid_host_pattern(r.hosts(k), &reason))
        err(res, field, reason);
      else if (!seen.insert(r.hosts(k)).second)
        err(res, field, quote(r.hosts(k)) + " is listed twice");
    }
    std::unordered_set<uint32_t> seen_ports;
    for (int k = 0; k < r.ports_size(); k++) {
      const std::string field = "ports[" + std::to_string(k) + "]";
      if (r.ports(k) < 1 || r.ports(k) > 65535)
        err(res, field, std::to_string(r.ports(k)) + " is outside 1..65535");
      else if (!seen_ports.insert(r.ports(k)).second)
        err(res, field, std::to_string(r.ports(k)) + " is listed twice");
    }
  }
  return errors->size() == before;
}

std::shared_ptr<const dp::HostPolicy> build_host_policy(const config::Config& cfg,
                                                        unsigned n_workers,
                                                        const dp::HostPolicy* previous,
                                                        std::string* error) {
  if (!cfg.has_egress()) return nullptr;
  const config::Egress& e = cfg.egress();
  auto p = std::make_shared<dp::HostPolicy>();
  p->registry_only = e.mode() == config::Egress::REGISTRY_ONLY;
  MacAddr::parse(e.next_hop_mac(), &p->next_hop);
  std::unordered_map<std::string, uint32_t> ns_ids;
  std::vector<std::string> exprs;
  std::string key = std::to_string(n_workers);
  for (const config::HostRule& r : e.rules()) {
    dp::HostRuleInfo ri;
    ri.name = r.name();
    ri.ns = r.namespace_();
    ri.deny = r.action() == config::HostRule::DENY;
    if (!ri.ns.empty()) {
      auto [it, fresh] = ns_ids.emplace(ri.ns, uint32_t(p->namespaces.size()));
      if (fresh) p->namespaces.push_back(ri.ns);
      ri.ns_id = it->second;
    }
    for (uint32_t port : r.ports()) ri.ports.push_back(uint16_t(port));
    const uint32_t rule = uint32_t(p->rules.size());
    for (const std::string& h : r.hosts()) {
      ri.hosts.push_back(h);
      p->patterns.push_back(dp::HostPattern{rule, h});
      exprs.push_back(host_expression(h));
      key += '\n' + exprs.back();
    }
    const uint64_t ns_key = uint64_t(ri.ns_id == kInvalidIdx ? 0 : ri.ns_id + 1) << 17;
    const uint8_t bit = ri.deny ? dp::kScopeDeny : dp::kScopeAllow;
    std::vector<uint16_t> ports = ri.ports;
    if (ports.empty()) ports.push_back(0);
    for (uint16_t port : ports) {
      uint8_t* f = p->scope.find(ns_key | port);
      p->scope.insert(ns_key | port, uint8_t((f ? *f : 0) | bit));
    }
    p->rules.push_back(std::move(ri));
  }
  for (const auto& w : cfg.workloads()) {
    auto it = ns_ids.find(w.namespace_());
    p->workload_ns.push_back(it == ns_ids.end() ? kInvalidIdx : it->second);
  }
  if (exprs.empty()) return p;
  if (previous && previous->hs && previous->hs->key == key) {
    p->hs = previous->hs;
    return p;
  }
  auto db = std::make_shared<dp::HostDb>();
  db->key = std::move(key);
  std::vector<const char*> ex;
  std::vector<unsigned> flags, ids;
  std::vector<size_t> lens;
  for (size_t i = 0; i < exprs.size(); i++) {
    ex.push_back(exprs[i].c_str());
    lens.push_back(exprs[i].size());
    flags.push_back(HS_FLAG_SINGLEMATCH | HS_FLAG_CASELESS);
    ids.push_back(unsigned(i));
  }
  hs_compile_error_t* cerr = nullptr;
  if (hs_compile_lit_multi(ex.data(), flags.data(), ids.data(), lens.data(), unsigned(ex.size()),
                           HS_MODE_BLOCK, nullptr, &db->db, &cerr) != HS_SUCCESS) {
    *error =
        std::string("Hyperscan: ") + (cerr && cerr->message ? cerr->message : "compile failed");
    if (cerr) {
      if (cerr->expression >= 0 && size_t(cerr->expression) < p->patterns.size())
        *error += " (host " + quote(p->patterns[size_t(cerr->expression)].host) + ")";
      hs_free_compile_error(cerr);
    }
    return nullptr;
  }
  db->scratch.assign(n_workers, nullptr);
  for (unsigned w = 0; w < n_workers; w++) {
    hs_error_t rc = w == 0 ? hs_alloc_scratch(db->db, &db->scratch[0])
                           : hs_clone_scratch(db->scratch[0], &db->scratch[w]);
    if (rc != HS_SUCCESS) {
      *error = "Hyperscan: cannot allocate scratch space";
      return nullptr;
    }
  }
  p->hs = std::move(db);
  return p;
}

}  // namespace vanish::ctl
