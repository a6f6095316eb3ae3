#include "ctl/validate.hpp"

#include "ctl/egress.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "crypto/replay_window.hpp"
#include "ctl/authz.hpp"  // root_namespace() (header-only)
#include "ctl/model.hpp"
#include "ctl/spiffe.hpp"
#include "dataplane/types.hpp"

namespace vanish::ctl {

std::string ConfigError::str() const {
  std::string s = resource;
  if (!field.empty()) s += ": " + field;
  return s + ": " + reason;
}

namespace {

using istio::workload::Workload;

std::string idx(const std::string& field, int i) {
  return field + "[" + std::to_string(i) + "]";
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string quote(const std::string& s) {
  return "\"" + s + "\"";
}

bool parse_family(const std::string& s, bool want_v6, IpAddr* out) {
  return IpAddr::parse(s, out) && out->is_v4() != want_v6;
}

// Strict "xx:xx:xx:xx:xx:xx" (hex digits, either case).
bool parse_mac_strict(const std::string& s, MacAddr* out) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < s.size(); i++) {
    bool colon = i % 3 == 2;
    if (colon != (s[i] == ':')) return false;
    if (!colon && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return MacAddr::parse(s, out);
}

// Parses a CIDR; on failure *reason says why.
bool parse_prefix(const std::string& s, IpPrefix* out, std::string* reason) {
  auto slash = s.find('/');
  if (slash == std::string::npos) {
    *reason = quote(s) + " is not a CIDR (address/length)";
    return false;
  }
  IpAddr a;
  if (!IpAddr::parse(s.substr(0, slash), &a)) {
    *reason = quote(s) + ": " + quote(s.substr(0, slash)) + " is not an IP address";
    return false;
  }
  std::string lens = s.substr(slash + 1);
  unsigned max = a.is_v4() ? 32 : 128;
  bool digits = !lens.empty() && lens.size() <= 3 &&
                std::all_of(lens.begin(), lens.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::stoul(lens) > max) {
    *reason = quote(s) + ": prefix length must be 0.." + std::to_string(max);
    return false;
  }
  if (!IpPrefix::parse(s, out)) {
    IpPrefix masked;
    masked.len = uint8_t((a.is_v4() ? 96 : 0) + std::stoul(lens));
    masked.addr = a;
    for (unsigned bit = masked.len; bit < 128; bit++)
      masked.addr.b[bit / 8] &= uint8_t(~(0x80 >> (bit % 8)));
    *reason = quote(s) + " has host bits set (did you mean " + masked.str() + "?)";
    return false;
  }
  return true;
}

bool prefixes_overlap(const IpPrefix& a, const IpPrefix& b) {
  return a.len <= b.len ? a.contains(b.addr) : b.contains(a.addr);
}

struct NodeFacts {
  std::string name;
  std::vector<IpPrefix> prefixes;
  std::vector<std::string> prefix_strs;
  bool has_fabric_v4 = false, has_fabric_v6 = false;
};

class Validator {
 public:
  Validator(const config::Config& c, std::vector<ConfigError>* errors) : c_(c), errors_(errors) {}

  bool run() {
    size_t before = errors_->size();
    nodes();
    this_node();
    ports_fabric_limits();
    workloads();
    services();
    static_sas();
    peering();
    neighbours();
    authorizations();
    return errors_->size() == before;
  }

 private:
  void err(const std::string& resource, const std::string& field, const std::string& reason) {
    errors_->push_back(ConfigError{resource, field, reason});
  }

  std::string known_nodes() const {
    std::string s;
    for (const auto& n : facts_) {
      if (n.name.empty()) continue;
      s += (s.empty() ? "" : ", ") + n.name;
    }
    return s.empty() ? "none" : s;
  }

  // -1 if unknown.
  int node_index(const std::string& name) const {
    auto it = node_by_name_.find(name);
    return it == node_by_name_.end() ? -1 : it->second;
  }

  void nodes() {
    for (int i = 0; i < c_.nodes_size(); i++) {
      const config::Node& n = c_.nodes(i);
      NodeFacts f;
      f.name = n.name();
      std::string res = n.name().empty() ? idx("nodes", i) : "node " + n.name();
      if (n.name().empty()) {
        err(res, "name", "required");
      } else if (!node_by_name_.emplace(n.name(), i).second) {
        err(res, "name",
            "duplicate node name (also nodes[" + std::to_string(node_by_name_[n.name()]) + "])");
      }
      if (!n.spiffe_id().empty() &&
          (n.spiffe_id().rfind("spiffe://", 0) != 0 || n.spiffe_id().size() <= 9))
        err(res, "spiffe_id",
            quote(n.spiffe_id()) + " is not a SPIFFE id (spiffe://<trust-domain>/...)");
      IpAddr a;
      struct {
        const char* field;
        const std::string& value;
        bool v6;
        bool* present;
      } addrs[] = {{"fabric_ipv4", n.fabric_ipv4(), false, &f.has_fabric_v4},
                   {"fabric_ipv6", n.fabric_ipv6(), true, &f.has_fabric_v6},
                   {"gateway_ipv4", n.gateway_ipv4(), false, nullptr},
                   {"gateway_ipv6", n.gateway_ipv6(), true, nullptr}};
      for (auto& x : addrs) {
        if (x.value.empty()) continue;
        if (!parse_family(x.value, x.v6, &a)) {
          err(res, x.field, quote(x.value) + " is not an " + (x.v6 ? "IPv6" : "IPv4") + " address");
        } else if (a.is_unspecified() || (a.is_v4() && IpAddr::v4_host(0) == a)) {
          err(res, x.field, "the unspecified address is not allowed");
        } else if (x.present) {
          *x.present = true;
        }
      }
      mac_field(res, "fabric_mac", n.fabric_mac());
      mac_field(res, "local_mac", n.local_mac());
      for (int p = 0; p < n.workload_prefixes_size(); p++) {
        IpPrefix pre;
        std::string reason;
        if (!parse_prefix(n.workload_prefixes(p), &pre, &reason)) {
          err(res, idx("workload_prefixes", p), reason);
          continue;
        }
        f.prefixes.push_back(pre);
        f.prefix_strs.push_back(n.workload_prefixes(p));
      }
      if (!n.management_address().empty()) management_address(res, n.management_address());
      facts_.push_back(std::move(f));
    }
    // Prefixes of different nodes must not overlap: a workload address must name one node.
    for (size_t i = 0; i < facts_.size(); i++)
      for (size_t j = i + 1; j < facts_.size(); j++)
        for (size_t p = 0; p < facts_[j].prefixes.size(); p++)
          for (size_t q = 0; q < facts_[i].prefixes.size(); q++)
            if (prefixes_overlap(facts_[j].prefixes[p], facts_[i].prefixes[q]))
              err("node " + facts_[j].name, "workload_prefixes",
                  facts_[j].prefix_strs[p] + " overlaps node " + facts_[i].name + "'s " +
                      facts_[i].prefix_strs[q]);
  }

  void mac_field(const std::string& res, const char* field, const std::string& value) {
    if (value.empty()) return;
    MacAddr m;
    if (!parse_mac_strict(value, &m))
      err(res, field, quote(value) + " is not a MAC address (xx:xx:xx:xx:xx:xx)");
    else if (m.is_zero())
      err(res, field, "the all-zero MAC is not allowed");
    else if (m.b[0] & 1)
      err(res, field, quote(value) + " is a multicast MAC");
  }

  void management_address(const std::string& res, const std::string& s) {
    auto colon = s.rfind(':');
    std::string host = colon == std::string::npos ? "" : s.substr(0, colon);
    std::string port = colon == std::string::npos ? "" : s.substr(colon + 1);
    bool ok = !host.empty() && !port.empty() && port.size() <= 5 &&
              std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (ok) {
      unsigned long p = std::stoul(port);
      ok = p >= 1 && p <= 65535;
    }
    if (ok && host.find(':') != std::string::npos)
      ok = host.front() == '[' && host.back() == ']';  // IPv6 literal must be bracketed
    if (!ok)
      err(res, "management_address",
          quote(s) + " is not host:port (port 1..65535, IPv6 as [addr]:port)");
  }

  // The peering block: files named, a known cipher, SPIFFE ids for this node and every peered
  // node (one trust domain, unique), and no static SA with a peered node.
  void peering() {
    if (!c_.has_peering()) return;
    const config::Peering& p = c_.peering();
    const std::string res = "peering";
    if (p.cert_file().empty()) err(res, "cert_file", "required (PEM certificate of this node)");
    if (p.key_file().empty()) err(res, "key_file", "required (PEM private key)");
    if (p.bundle_file().empty()) err(res, "bundle_file", "required (PEM trust bundle)");
    if (!p.cipher().empty() && p.cipher() != "aes-128-gcm" && p.cipher() != "aes-256-gcm")
      err(res, "cipher", quote(p.cipher()) + " is not aes-128-gcm or aes-256-gcm");
    if (p.has_handshake_timeout_ms() &&
        (p.handshake_timeout_ms() < 10 || p.handshake_timeout_ms() > 60000))
      err(res, "handshake_timeout_ms", "must be 10..60000");
    if (p.has_grace_ms() && p.grace_ms() > 600000) err(res, "grace_ms", "must be at most 600000");
    if (p.has_rekey_packets() && p.rekey_packets() != 0 && p.rekey_packets() < 16)
      err(res, "rekey_packets", "must be 0 (off) or at least 16");
    if (p.has_reconnect_max_ms() && p.reconnect_max_ms() < 100)
      err(res, "reconnect_max_ms", "must be at least 100");
    if (!p.listen_address().empty()) management_address(res, p.listen_address());
    std::string td;
    std::map<std::string, std::string> ids;
    for (const config::Node& n : c_.nodes()) {
      bool self = n.name() == c_.this_node();
      if (n.spiffe_id().empty()) {
        if (self) err("node " + n.name(), "spiffe_id", "required with peering");
        continue;
      }
      if (!self && n.management_address().empty()) continue;  // not peered
      SpiffeId id;
      std::string why;
      if (!parse_spiffe_id(n.spiffe_id(), &id, &why)) {
        err("node " + n.name(), "spiffe_id", why);
        continue;
      }
      if (td.empty()) td = id.trust_domain;
      if (id.trust_domain != td)
        err("node " + n.name(), "spiffe_id",
            "trust domain " + quote(id.trust_domain) + " differs from " + quote(td) +
                " (peering uses one trust domain)");
      auto [it, fresh] = ids.emplace(n.spiffe_id(), n.name());
      if (!fresh) err("node " + n.name(), "spiffe_id", "also the id of node " + it->second);
      if (!self) peered_.insert(n.name());
      if (self && n.management_address().empty() && p.listen_address().empty())
        err("node " + n.name(), "management_address",
            "required with peering (or peering.listen_address)");
    }
    for (const config::StaticSa& sa : c_.static_sas()) {
      const std::string& other = sa.from_node() == c_.this_node() ? sa.to_node() : sa.from_node();
      if ((sa.from_node() == c_.this_node() || sa.to_node() == c_.this_node()) &&
          peered_.count(other))
        err("static_sa " + sa.from_node() + "->" + sa.to_node(), "to_node",
            "node " + other + " is peered (peering block): its SAs come from the handshake");
    }
  }

  void this_node() {
    if (c_.this_node().empty()) {
      err("config", "this_node", "required (the name of this appliance's node)");
      return;
    }
    self_ = node_index(c_.this_node());
    if (self_ < 0) {
      err("config", "this_node",
          quote(c_.this_node()) + " names no node (known: " + known_nodes() + ")");
      return;
    }
    const NodeFacts& f = facts_[self_];
    bool v6 = c_.fabric().ipv6();
    if (v6 ? !f.has_fabric_v6 : !f.has_fabric_v4)
      err("node " + f.name, v6 ? "fabric_ipv6" : "fabric_ipv4",
          std::string("required on this node: the fabric is ") + (v6 ? "IPv6" : "IPv4") +
              " (fabric.ipv6 = " + (v6 ? "true" : "false") + ")");
  }

  void ports_fabric_limits() {
    uint32_t lp = local_port(c_), fp = fabric_port(c_);
    if (lp > 1023) err("ports", "local", std::to_string(lp) + " is not a DPDK port id (0..1023)");
    if (fp > 1023) err("ports", "fabric", std::to_string(fp) + " is not a DPDK port id (0..1023)");
    if (lp == fp) err("ports", "fabric", "same DPDK port as local (" + std::to_string(lp) + ")");

    uint32_t mtu = fabric_mtu(c_);
    if (c_.fabric().ipv6() && (mtu < 1280 || mtu > 9216))
      err("fabric", "mtu", std::to_string(mtu) + " is outside 1280..9216 (IPv6 fabric)");
    if (!c_.fabric().ipv6() && (mtu < 576 || mtu > 9216))
      err("fabric", "mtu", std::to_string(mtu) + " is outside 576..9216 (IPv4 fabric)");

    const config::Limits& l = c_.limits();
    auto range = [&](bool has, uint32_t v, const char* field, uint32_t lo, uint32_t hi) {
      if (has && (v < lo || v > hi))
        err("limits", field,
            std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
    };
    range(l.has_flows_per_worker(), l.flows_per_worker(), "flows_per_worker", 64, 1u << 24);
    range(l.has_mbufs(), l.mbufs(), "mbufs", 1023, 1u << 24);
    range(l.has_rx_ring(), l.rx_ring(), "rx_ring", 64, 32768);
    range(l.has_tx_ring(), l.tx_ring(), "tx_ring", 64, 32768);
    range(l.has_handoff_ring(), l.handoff_ring(), "handoff_ring", 64, 1u << 20);
    range(l.has_mbuf_cache(), l.mbuf_cache(), "mbuf_cache", 0, 512);
    if (l.has_handoff_ring() && (l.handoff_ring() & (l.handoff_ring() - 1)) != 0)
      err("limits", "handoff_ring", std::to_string(l.handoff_ring()) + " is not a power of two");
  }

  void name_part(const std::string& res, const char* field, const std::string& v) {
    if (v.find('/') != std::string::npos)
      err(res, field, quote(v) + " must not contain '/' (it is part of the principal)");
  }

  void workloads() {
    std::unordered_map<std::string, int> by_name, by_uid;
    std::unordered_map<uint32_t, std::string> principal_by_id;
    std::unordered_map<std::string, uint32_t> id_by_principal;  // SHA-256 once per principal
    by_name.reserve(size_t(c_.workloads_size()));
    by_uid.reserve(size_t(c_.workloads_size()));
    workload_by_addr_.reserve(size_t(c_.workloads_size()) * 2);
    for (int i = 0; i < c_.workloads_size(); i++) {
      const Workload& w = c_.workloads(i);
      std::string res = workload_resource(w, i);
      if (w.name().empty()) err(res, "name", "required");
      if (w.namespace_().empty()) err(res, "namespace", "required");
      if (!w.name().empty() && !w.namespace_().empty()) {
        auto [it, fresh] = by_name.emplace(w.namespace_() + "/" + w.name(), i);
        if (!fresh)
          err(res, "name",
              "duplicate workload (also workloads[" + std::to_string(it->second) + "])");
      }
      if (!w.uid().empty()) {
        auto [it, fresh] = by_uid.emplace(w.uid(), i);
        if (!fresh)
          err(res, "uid",
              quote(w.uid()) + " is also the uid of " +
                  workload_resource(c_.workloads(it->second), it->second));
      }
      name_part(res, "namespace", w.namespace_());
      name_part(res, "trust_domain", w.trust_domain());
      name_part(res, "service_account", w.service_account());

      int node = -1;
      if (w.node().empty()) {
        err(res, "node", "required (the node hosting the workload)");
      } else if ((node = node_index(w.node())) < 0) {
        err(res, "node", quote(w.node()) + " names no node (known: " + known_nodes() + ")");
      }

      for (int k = 0; k < w.addresses_size(); k++) {
        IpAddr a;
        if (!IpAddr::from_bytes(w.addresses(k), &a)) {
          err(res, idx("addresses", k),
              "must be 4 or 16 octets, got " + std::to_string(w.addresses(k).size()));
          continue;
        }
        auto [it, fresh] = workload_by_addr_.emplace(a, i);
        if (!fresh && it->second != i) {
          err(res, idx("addresses", k),
              a.str() + " is also an address of " +
                  workload_resource(c_.workloads(it->second), it->second));
        } else if (!fresh) {
          err(res, idx("addresses", k), a.str() + " is listed twice");
        }
        if (node >= 0) {
          const NodeFacts& f = facts_[node];
          bool inside = std::any_of(f.prefixes.begin(), f.prefixes.end(),
                                    [&](const IpPrefix& p) { return p.contains(a); });
          if (!inside) {
            std::string list;
            for (const auto& p : f.prefix_strs) list += (list.empty() ? "" : ", ") + p;
            err(res, idx("addresses", k),
                a.str() + " is outside node " + f.name + "'s workload_prefixes (" +
                    (list.empty() ? "none" : list) + ")");
          }
        }
      }

      std::vector<std::string> keys;
      for (const auto& [key, ports] : w.services()) keys.push_back(key);
      std::sort(keys.begin(), keys.end());
      for (const auto& key : keys) {
        std::string field = "services[" + quote(key) + "]";
        auto slash = key.find('/');
        if (slash == std::string::npos || slash == 0 || slash + 1 == key.size())
          err(res, field, "key must be \"namespace/hostname\"");
        const auto& pl = w.services().at(key);
        for (int p = 0; p < pl.ports_size(); p++)
          port(res, field + "." + idx("ports", p), pl.ports(p));
      }

      if (w.namespace_().empty() || w.namespace_().find('/') != std::string::npos) continue;
      std::string principal = workload_principal(w);
      auto memo = id_by_principal.find(principal);
      if (memo != id_by_principal.end()) continue;  // checked with its first workload
      uint32_t id = identity_id_for(principal).value;
      id_by_principal.emplace(principal, id);
      if (id == 0) {
        err(res, "service_account",
            "principal " + quote(principal) + " hashes to the reserved identity id 0");
        continue;
      }
      auto [it, fresh] = principal_by_id.emplace(id, principal);
      if (!fresh && it->second != principal)
        err(res, "service_account",
            "identity id " + hex32(id) + " of principal " + quote(principal) +
                " collides with principal " + quote(it->second));
    }
  }

  void port(const std::string& res, const std::string& field, const istio::workload::Port& p) {
    if (p.service_port() < 1 || p.service_port() > 65535)
      err(res, field + ".service_port", std::to_string(p.service_port()) + " is outside 1..65535");
    if (p.target_port() > 65535)
      err(res, field + ".target_port", std::to_string(p.target_port()) + " is outside 0..65535");
  }

  void services() {
    std::unordered_map<std::string, int> seen;
    for (int i = 0; i < c_.services_size(); i++) {
      const istio::workload::Service& s = c_.services(i);
      std::string res = s.hostname().empty() ? idx("services", i)
                                             : "service " + s.namespace_() + "/" + s.hostname();
      if (s.hostname().empty()) err(res, "hostname", "required");
      if (s.namespace_().empty()) err(res, "namespace", "required");
      if (!s.hostname().empty()) {
        auto [it, fresh] = seen.emplace(s.namespace_() + "/" + s.hostname(), i);
        if (!fresh)
          err(res, "hostname",
              "duplicate service (also services[" + std::to_string(it->second) + "])");
      }
      for (int k = 0; k < s.addresses_size(); k++) {
        IpAddr a;
        if (!IpAddr::from_bytes(s.addresses(k).address(), &a))
          err(res, idx("addresses", k) + ".address",
              "must be 4 or 16 octets, got " + std::to_string(s.addresses(k).address().size()));
      }
      for (int p = 0; p < s.ports_size(); p++) port(res, idx("ports", p), s.ports(p));
      if (s.addresses_size() == 0) err(res, "addresses", "a service needs at least one VIP");
      if (s.ports_size() == 0) err(res, "ports", "a service needs at least one port");
      for (int k = 0; k < s.addresses_size(); k++) {
        IpAddr a;
        if (!IpAddr::from_bytes(s.addresses(k).address(), &a)) continue;
        std::string field = idx("addresses", k) + ".address";
        auto w = workload_by_addr_.find(a);
        if (w != workload_by_addr_.end())
          err(res, field,
              a.str() + " is also an address of workloads[" + std::to_string(w->second) + "]");
        for (const auto& pt : s.ports()) {
          auto [it, fresh] = vip_owner_.emplace(std::make_pair(a, pt.service_port()), i);
          if (!fresh && it->second != i)
            err(res, field,
                a.str() + ":" + std::to_string(pt.service_port()) +
                    " is also a VIP:port of services[" + std::to_string(it->second) + "]");
        }
      }
      if (s.has_waypoint()) waypoint(res, s.waypoint());
    }
    // Endpoints: every service key a workload names must exist, and every service needs one.
    std::unordered_map<std::string, int> endpoints;
    for (int i = 0; i < c_.workloads_size(); i++) {
      const Workload& w = c_.workloads(i);
      std::vector<std::string> keys;
      for (const auto& [key, ports] : w.services()) keys.push_back(key);
      std::sort(keys.begin(), keys.end());
      for (const auto& key : keys) {
        if (seen.count(key))
          endpoints[key]++;
        else
          err(workload_resource(w, i), "services[" + quote(key) + "]",
              "names no service (no services entry with namespace/hostname " + quote(key) + ")");
      }
      if (w.has_waypoint()) waypoint(workload_resource(w, i), w.waypoint());
    }
    for (int i = 0; i < c_.services_size(); i++) {
      const istio::workload::Service& s = c_.services(i);
      if (s.hostname().empty() || s.namespace_().empty()) continue;
      std::string key = s.namespace_() + "/" + s.hostname();
      if (!endpoints.count(key))
        err("service " + key, "endpoints",
            "no workload names this service in its services map (a service needs endpoints)");
    }
  }

  // A waypoint reference names a workload address or a service (namespace/hostname).
  void waypoint(const std::string& res, const istio::workload::GatewayAddress& g) {
    if (g.has_address()) {
      IpAddr a;
      if (!IpAddr::from_bytes(g.address().address(), &a))
        err(res, "waypoint.address.address", "must be 4 or 16 octets");
      else if (!workload_by_addr_.count(a))
        err(res, "waypoint.address.address", a.str() + " is no workload's address");
    } else if (g.has_hostname()) {
      std::string key = g.hostname().namespace_() + "/" + g.hostname().hostname();
      bool found = false;
      for (const auto& s : c_.services())
        if (s.namespace_() + "/" + s.hostname() == key) found = true;
      if (!found) err(res, "waypoint.hostname", quote(key) + " names no service");
    } else {
      err(res, "waypoint", "set address or hostname");
    }
  }

  void static_sas() {
    struct Range {
      int to;
      uint32_t lo, hi;
      std::string res;
    };
    std::vector<Range> ranges;
    std::map<std::pair<int, int>, int> directions;
    for (int i = 0; i < c_.static_sas_size(); i++) {
      const config::StaticSa& sa = c_.static_sas(i);
      std::string res = (sa.from_node().empty() || sa.to_node().empty())
                            ? idx("static_sas", i)
                            : "static_sa " + sa.from_node() + "->" + sa.to_node();
      int from = -1, to = -1;
      if (sa.from_node().empty())
        err(res, "from_node", "required");
      else if ((from = node_index(sa.from_node())) < 0)
        err(res, "from_node",
            quote(sa.from_node()) + " names no node (known: " + known_nodes() + ")");
      if (sa.to_node().empty())
        err(res, "to_node", "required");
      else if ((to = node_index(sa.to_node())) < 0)
        err(res, "to_node", quote(sa.to_node()) + " names no node (known: " + known_nodes() + ")");
      if (from >= 0 && from == to)
        err(res, "to_node", "from_node and to_node are both " + quote(sa.to_node()));
      if (from >= 0 && to >= 0 && from != to) {
        auto [it, fresh] = directions.emplace(std::make_pair(from, to), i);
        if (!fresh)
          err(res, "to_node",
              "a second static SA for the same direction (also static_sas[" +
                  std::to_string(it->second) + "])");
      }
      // This appliance sends on it: the peer needs an address of our fabric family.
      if (from >= 0 && to >= 0 && from == self_ && from != to) {
        bool v6 = c_.fabric().ipv6();
        if (v6 ? !facts_[to].has_fabric_v6 : !facts_[to].has_fabric_v4)
          err(res, "to_node",
              "node " + facts_[to].name + " has no " + (v6 ? "fabric_ipv6" : "fabric_ipv4") +
                  " (this node's fabric is " + (v6 ? "IPv6" : "IPv4") + ")");
      }

      crypto::AeadAlg alg{};
      bool alg_ok = parse_cipher(sa.cipher(), &alg);
      if (!alg_ok)
        err(res, "cipher",
            (sa.cipher().empty() ? std::string("required")
                                 : "unknown cipher " + quote(sa.cipher())) +
                " (aes-128-gcm, aes-192-gcm, aes-256-gcm)");
      std::vector<uint8_t> key, salt;
      if (!parse_hex(sa.key_hex(), &key)) {
        err(res, "key_hex", "not an even-length hex string");
      } else if (alg_ok && key.size() != crypto::aead_key_len(alg)) {
        err(res, "key_hex",
            std::to_string(crypto::aead_key_len(alg)) + " bytes needed for " + sa.cipher() +
                ", got " + std::to_string(key.size()));
      }
      if (!parse_hex(sa.salt_hex(), &salt))
        err(res, "salt_hex", "not an even-length hex string");
      else if (salt.size() != 4)
        err(res, "salt_hex", "4 bytes needed, got " + std::to_string(salt.size()));

      bool spi_ok = false;
      uint32_t base = sa.spi_base();
      if (base == 0)
        err(res, "spi_base", "required: SPI 0 is reserved (RFC 4303)");
      else if (base < kMinSpi)
        err(res, "spi_base", "SPIs 1..255 are reserved (RFC 4303); got " + std::to_string(base));
      else if (base > UINT32_MAX - (kStaticSaSpiSpan - 1))
        err(res, "spi_base",
            hex32(base) + " + " + std::to_string(kStaticSaSpiSpan - 1) + " exceeds the SPI space");
      else
        spi_ok = true;
      if (spi_ok && to >= 0) {
        Range r{to, base, base + kStaticSaSpiSpan - 1, res};
        for (const Range& o : ranges)
          if (o.to == r.to && r.lo <= o.hi && o.lo <= r.hi)
            err(res, "spi_base",
                "SPIs " + hex32(r.lo) + ".." + hex32(r.hi) + " overlap " + o.res + "'s " +
                    hex32(o.lo) + ".." + hex32(o.hi) + " at receiver " + facts_[to].name);
        ranges.push_back(r);
      }
      if (sa.udp_sport_base() != 0 &&
          (sa.udp_sport_base() < 1024 || sa.udp_sport_base() + kStaticSaSpiSpan - 1 > 65535))
        err(res, "udp_sport_base",
            std::to_string(sa.udp_sport_base()) +
                " is outside 1024..65520 (0 = derive from the SPI)");
      // 0 = anti-replay off (RFC 4303 §3.4.3, e.g. a benchmark replaying a pcap of ESP); ESN
      // infers its high bits from the window, so 0 needs esn: false.
      if (sa.has_replay_window() && sa.replay_window() == 0) {
        if (!sa.has_esn() || sa.esn())
          err(res, "replay_window",
              "0 (anti-replay off) needs esn: false: extended sequence numbers are inferred from "
              "the window (RFC 4303 Appendix A)");
      } else if (sa.has_replay_window() && (sa.replay_window() < crypto::ReplayWindow::kMinBits ||
                                            sa.replay_window() > crypto::ReplayWindow::kMaxBits)) {
        err(res, "replay_window",
            std::to_string(sa.replay_window()) + " is outside " +
                std::to_string(crypto::ReplayWindow::kMinBits) + ".." +
                std::to_string(crypto::ReplayWindow::kMaxBits) + " (0 = anti-replay off)");
      }
    }
  }

  void neighbours() {
    std::unordered_map<IpAddr, int, IpAddrHash> by_addr;
    std::unordered_map<int, std::pair<MacAddr, int>> mac_by_workload;
    for (int i = 0; i < c_.neighbours_size(); i++) {
      const config::Neighbour& n = c_.neighbours(i);
      std::string res = n.address().empty() ? idx("neighbours", i) : "neighbour " + n.address();
      MacAddr mac;
      bool mac_ok = false;
      if (n.mac().empty())
        err(res, "mac", "required");
      else if (!parse_mac_strict(n.mac(), &mac))
        err(res, "mac", quote(n.mac()) + " is not a MAC address (xx:xx:xx:xx:xx:xx)");
      else if (mac.is_zero() || (mac.b[0] & 1))
        err(res, "mac", quote(n.mac()) + " is not a unicast MAC");
      else
        mac_ok = true;
      IpAddr a;
      if (n.address().empty()) {
        err(res, "address", "required");
        continue;
      }
      if (!IpAddr::parse(n.address(), &a)) {
        err(res, "address", quote(n.address()) + " is not an IP address");
        continue;
      }
      auto [dup, fresh] = by_addr.emplace(a, i);
      if (!fresh) {
        err(res, "address", "listed twice (also neighbours[" + std::to_string(dup->second) + "])");
        continue;
      }
      auto wit = workload_by_addr_.find(a);
      if (wit == workload_by_addr_.end()) {
        err(res, "address", a.str() + " is not an address of any workload");
        continue;
      }
      const Workload& w = c_.workloads(wit->second);
      if (node_index(w.node()) < 0) continue;  // the workload's own error says why
      if (self_ >= 0 && w.node() != c_.this_node()) {
        err(res, "address",
            a.str() + " belongs to " + workload_resource(w, wit->second) + " on node " + w.node() +
                ", not on this node (" + c_.this_node() + ")");
        continue;
      }
      if (!mac_ok) continue;
      auto [prev, first] = mac_by_workload.emplace(wit->second, std::make_pair(mac, i));
      if (!first && !(prev->second.first == mac))
        err(res, "mac",
            n.mac() + " differs from " + prev->second.first.str() + " (neighbours[" +
                std::to_string(prev->second.second) + "]) for the same " +
                workload_resource(w, wit->second) + ": a workload has one MAC");
    }
  }

  // Authorization policies (istio.security.Authorization) and the workloads' references to
  // them. Host bits in a CIDR are allowed (ztunnel masks them); a match whose fields are all
  // empty is allowed (it never matches).
  void authorizations() {
    std::string root = authz::root_namespace(c_);
    std::unordered_map<std::string, int> by_key;
    for (int i = 0; i < c_.authorizations_size(); i++) {
      const istio::security::Authorization& a = c_.authorizations(i);
      std::string key = a.namespace_() + "/" + a.name();
      std::string res = a.name().empty() ? idx("authorizations", i) : "authorization " + key;
      if (a.name().empty()) err(res, "name", "required");
      if (a.namespace_().empty()) err(res, "namespace", "required");
      if (a.name().find('/') != std::string::npos)
        err(res, "name",
            quote(a.name()) + " must not contain '/' (policies are named namespace/name)");
      if (a.namespace_().find('/') != std::string::npos)
        err(res, "namespace", quote(a.namespace_()) + " must not contain '/'");
      if (!a.name().empty()) {
        auto [it, fresh] = by_key.emplace(key, i);
        if (!fresh)
          err(res, "name",
              "duplicate authorization policy (also authorizations[" + std::to_string(it->second) +
                  "])");
      }
      if (!istio::security::Scope_IsValid(a.scope()))
        err(res, "scope",
            "unknown scope " + std::to_string(a.scope()) +
                " (GLOBAL, NAMESPACE, WORKLOAD_SELECTOR)");
      else if (a.scope() == istio::security::GLOBAL && a.namespace_() != root)
        err(res, "scope",
            "GLOBAL policies must be in the root namespace " + quote(root) + " (this one is in " +
                quote(a.namespace_()) + "); use NAMESPACE for a namespace-wide policy");
      if (!istio::security::Action_IsValid(a.action()))
        err(res, "action", "unknown action " + std::to_string(a.action()) + " (ALLOW, DENY)");
      for (int r = 0; r < a.rules_size(); r++)
        for (int cl = 0; cl < a.rules(r).clauses_size(); cl++) {
          const auto& clause = a.rules(r).clauses(cl);
          for (int m = 0; m < clause.matches_size(); m++)
            policy_match(res, idx("rules", r) + "." + idx("clauses", cl) + "." + idx("matches", m),
                         clause.matches(m));
        }
    }
    // Workloads name WORKLOAD_SELECTOR policies as "namespace/name".
    for (int i = 0; i < c_.workloads_size(); i++) {
      const Workload& w = c_.workloads(i);
      std::unordered_map<std::string, int> seen;
      for (int k = 0; k < w.authorization_policies_size(); k++) {
        const std::string& ref = w.authorization_policies(k);
        std::string res = workload_resource(w, i), field = idx("authorization_policies", k);
        auto slash = ref.find('/');
        if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size() ||
            ref.find('/', slash + 1) != std::string::npos) {
          err(res, field, quote(ref) + " is not \"namespace/name\"");
          continue;
        }
        auto [dup, fresh] = seen.emplace(ref, k);
        if (!fresh) {
          err(res, field,
              quote(ref) + " is listed twice (also authorization_policies[" +
                  std::to_string(dup->second) + "])");
          continue;
        }
        auto it = by_key.find(ref);
        if (it == by_key.end()) {
          err(res, field, quote(ref) + " names no authorization policy");
          continue;
        }
        const auto& a = c_.authorizations(it->second);
        if (a.scope() != istio::security::WORKLOAD_SELECTOR)
          err(res, field,
              quote(ref) + " has scope " + istio::security::Scope_Name(a.scope()) +
                  "; a workload names only WORKLOAD_SELECTOR policies (the others apply by "
                  "namespace)");
      }
    }
  }

  void policy_match(const std::string& res, const std::string& at,
                    const istio::security::Match& m) {
    auto strings = [&](const char* field,
                       const google::protobuf::RepeatedPtrField<istio::security::StringMatch>& v) {
      for (int k = 0; k < v.size(); k++)
        if (v[k].match_type_case() == istio::security::StringMatch::MATCH_TYPE_NOT_SET)
          err(res, at + "." + idx(field, k),
              "empty StringMatch: set one of exact, prefix, suffix, presence");
    };
    auto cidrs = [&](const char* field,
                     const google::protobuf::RepeatedPtrField<istio::security::Address>& v) {
      for (int k = 0; k < v.size(); k++) {
        size_t n = v[k].address().size();
        if (n != 4 && n != 16) {
          err(res, at + "." + idx(field, k),
              "address must be 4 or 16 octets, got " + std::to_string(n));
          continue;
        }
        uint32_t max = n == 4 ? 32 : 128;
        if (v[k].length() > max)
          err(res, at + "." + idx(field, k),
              "prefix length " + std::to_string(v[k].length()) + " is outside 0.." +
                  std::to_string(max) + (n == 4 ? " (IPv4)" : " (IPv6)"));
      }
    };
    auto ports = [&](const char* field, const google::protobuf::RepeatedField<uint32_t>& v) {
      for (int k = 0; k < v.size(); k++)
        if (v[k] < 1 || v[k] > 65535)
          err(res, at + "." + idx(field, k), std::to_string(v[k]) + " is outside 1..65535");
    };
    auto sas =
        [&](const char* field,
            const google::protobuf::RepeatedPtrField<istio::security::ServiceAccountMatch>& v) {
          for (int k = 0; k < v.size(); k++) {
            if (v[k].namespace_().empty())
              err(res, at + "." + idx(field, k) + ".namespace", "required");
            if (v[k].service_account().empty())
              err(res, at + "." + idx(field, k) + ".service_account", "required");
          }
        };
    strings("namespaces", m.namespaces());
    strings("not_namespaces", m.not_namespaces());
    strings("principals", m.principals());
    strings("not_principals", m.not_principals());
    cidrs("source_ips", m.source_ips());
    cidrs("not_source_ips", m.not_source_ips());
    cidrs("destination_ips", m.destination_ips());
    cidrs("not_destination_ips", m.not_destination_ips());
    ports("destination_ports", m.destination_ports());
    ports("not_destination_ports", m.not_destination_ports());
    sas("service_accounts", m.service_accounts());
    sas("not_service_accounts", m.not_service_accounts());
  }

  const config::Config& c_;
  std::vector<ConfigError>* errors_;
  std::vector<NodeFacts> facts_;
  std::unordered_map<std::string, int> node_by_name_;
  std::set<std::string> peered_;
  std::unordered_map<IpAddr, int, IpAddrHash> workload_by_addr_;
  struct VipPortHash {
    size_t operator()(const std::pair<IpAddr, uint32_t>& k) const {
      return IpAddrHash{}(k.first) ^ (size_t(k.second) * 0x9E3779B97F4A7C15ull);
    }
  };
  std::unordered_map<std::pair<IpAddr, uint32_t>, int, VipPortHash> vip_owner_;
  int self_ = -1;
};

}  // namespace

bool validate_config(const config::Config& cfg, std::vector<ConfigError>* errors) {
  bool ok = Validator(cfg, errors).run();
  return validate_egress(cfg, errors) && ok;
}

}  // namespace vanish::ctl
