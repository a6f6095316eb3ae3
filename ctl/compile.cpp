#include "ctl/compile.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <map>
#include <unordered_map>

#include "ctl/authz.hpp"
#include "ctl/egress.hpp"

namespace vanish::ctl {
namespace {

using Fingerprint = std::array<uint8_t, 32>;

// Deleter of every SA this compiler creates. It carries a digest of everything that makes the
// SA "the same SA" (never the key itself), so the next compile can find it again in
// Snapshot::sa_owner through std::get_deleter without keeping key material around.
struct SaTag {
  Fingerprint fingerprint{};
  void operator()(crypto::EspSa* sa) const { delete sa; }
};

struct SaSpec {
  bool inbound = false;
  std::string peer;     // the other node's name
  unsigned worker = 0;  // outbound: sending worker; inbound: owner worker
  unsigned n_workers = 0;
  crypto::EspSaParams params;
};

Fingerprint fingerprint(const SaSpec& s) {
  std::vector<uint8_t> buf;
  auto add_u32 = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) buf.push_back(uint8_t(v >> shift));
  };
  auto add_bytes = [&](const uint8_t* p, size_t n) {
    add_u32(uint32_t(n));
    buf.insert(buf.end(), p, p + n);
  };
  add_u32(s.inbound ? 1 : 0);
  add_bytes(reinterpret_cast<const uint8_t*>(s.peer.data()), s.peer.size());
  add_u32(s.worker);
  add_u32(s.n_workers);
  add_u32(s.params.spi);
  add_u32(uint32_t(s.params.alg));
  add_bytes(s.params.key.data(), s.params.key.size());
  add_bytes(s.params.salt.data(), s.params.salt.size());
  add_u32(s.params.esn ? 1 : 0);
  add_u32(s.params.replay_window_bits);
  Fingerprint fp{};
  unsigned int len = 0;
  EVP_Digest(buf.data(), buf.size(), fp.data(), &len, EVP_sha256(), nullptr);
  OPENSSL_cleanse(buf.data(), buf.size());
  return fp;
}

class Compiler {
 public:
  Compiler(const config::Config& c, const CompileOptions& o, const dp::Snapshot* prev,
           std::vector<ConfigError>* errors)
      : c_(c), o_(o), prev_(prev), errors_(errors) {}

  std::unique_ptr<dp::Snapshot> run() {
    s_ = std::make_unique<dp::Snapshot>();
    const bool sa_only = sas_only();
    if (sa_only) reuse_previous();
    s_->generation = o_.generation;
    s_->n_workers = o_.n_workers;
    s_->fabric_mtu = fabric_mtu(c_);
    s_->outer_ipv6 = c_.fabric().ipv6();
    index_previous_sas();
    if (!sa_only) {
      nodes();
      workloads();
      services();
      waypoints();
      neighbours();
    }
    if (!static_sas()) return nullptr;
    if (!sa_only) {
      s_->authz = authz::Engine::build(c_);
      if (!egress()) return nullptr;
    }
    s_->decision_generation = decisions_unchanged() ? prev_->decision_generation : o_.generation;
    return std::move(s_);
  }

 private:
  // A republish of the config `prev_` was compiled from (CompileOptions::same_config): only the
  // SAs can differ, so everything else is taken from prev_ as it is (copied, or shared where the
  // snapshot holds it by shared_ptr: the authz engine, the egress policy and the neighbour
  // table, whose learned MACs then carry on without a gap) and only the SA tables are rebuilt.
  // At 100k workloads this is the difference between a rekey costing the control thread a full
  // compile (about a second) and a few milliseconds.
  bool sas_only() const {
    return o_.same_config && prev_ && prev_->n_workers == o_.n_workers &&
           prev_->nodes.size() == size_t(c_.nodes_size()) && prev_->neighbours && prev_->authz;
  }

  // Everything of prev_ but its SA tables (static_sas and dynamic_sas rebuild them).
  void reuse_previous() {
    const dp::Snapshot& p = *prev_;
    *s_ = p;
    s_->peer_tx.clear();
    s_->sa_in = {};
    s_->sa_owner.clear();
    for (size_t i = 0; i < s_->nodes.size(); i++) node_by_name_[s_->nodes[i].name] = uint32_t(i);
  }

  // Same config and the same peers reachable: every cached flow decision still holds (see
  // Snapshot::decision_generation).
  bool decisions_unchanged() const {
    if (!o_.same_config || !prev_ || prev_->peer_tx.size() != s_->peer_tx.size()) return false;
    for (size_t n = 0; n < s_->peer_tx.size(); n++)
      if (prev_->peer_tx[n].reachable != s_->peer_tx[n].reachable) return false;
    return true;
  }

  bool egress() {
    std::string e;
    s_->egress = build_host_policy(c_, o_.n_workers, prev_ ? prev_->egress.get() : nullptr, &e);
    if (c_.has_egress() && !s_->egress) {
      errors_->push_back(ConfigError{"egress", "rules", e});
      return false;
    }
    return true;
  }

  static IpAddr addr_or_unspecified(const std::string& s) {
    IpAddr a;
    if (s.empty() || !IpAddr::parse(s, &a)) return IpAddr{};
    return a;
  }
  static MacAddr mac_or_zero(const std::string& s) {
    MacAddr m;
    if (s.empty() || !MacAddr::parse(s, &m)) return MacAddr{};
    return m;
  }

  void nodes() {
    s_->nodes.reserve(c_.nodes_size());
    for (int i = 0; i < c_.nodes_size(); i++) {
      const config::Node& n = c_.nodes(i);
      dp::NodeInfo info;
      info.name = n.name();
      info.spiffe_id = n.spiffe_id();
      info.fabric_v4 = addr_or_unspecified(n.fabric_ipv4());
      info.fabric_v6 = addr_or_unspecified(n.fabric_ipv6());
      info.fabric_mac = mac_or_zero(n.fabric_mac());
      info.gateway_v4 = addr_or_unspecified(n.gateway_ipv4());
      info.gateway_v6 = addr_or_unspecified(n.gateway_ipv6());
      info.local_mac = mac_or_zero(n.local_mac());
      for (const auto& p : n.workload_prefixes()) {
        IpPrefix pre;
        if (IpPrefix::parse(p, &pre)) info.workload_prefixes.push_back(pre);
      }
      node_by_name_[n.name()] = uint32_t(i);
      s_->nodes.push_back(std::move(info));
    }
    s_->self = NodeIdx(node_by_name_.at(c_.this_node()));
  }

  void workloads() {
    size_t n_addrs = 0;
    for (const auto& w : c_.workloads()) n_addrs += size_t(w.addresses_size());
    s_->workload_by_ip = FlatMap<IpAddr, uint32_t, IpAddrHash>(n_addrs);
    s_->workloads.reserve(c_.workloads_size());
    s_->workload_meta.reserve(c_.workloads_size());
    std::unordered_map<std::string, uint32_t> identity_by_principal;
    uint32_t next_slot = 0;
    for (int i = 0; i < c_.workloads_size(); i++) {
      const istio::workload::Workload& w = c_.workloads(i);
      std::string principal = workload_principal(w);
      auto it = identity_by_principal.find(principal);
      if (it == identity_by_principal.end()) {
        dp::IdentityMeta im;
        im.id = identity_id_for(principal);
        im.principal = principal;
        im.ns = w.namespace_();
        im.service_account = workload_service_account(w);
        uint32_t index = uint32_t(s_->identities.size());
        s_->identity_by_id.insert(im.id.value, index);
        s_->identities.push_back(std::move(im));
        it = identity_by_principal.emplace(principal, index).first;
      }
      dp::WorkloadInfo info;
      info.node = NodeIdx(node_by_name_.at(w.node()));
      info.identity = s_->identities[it->second].id;
      info.identity_index = it->second;
      if (info.node == s_->self) info.neighbour_slot = next_slot++;
      s_->workloads.push_back(info);

      dp::WorkloadMeta meta;
      meta.uid = w.uid();
      meta.name = w.name();
      meta.ns = w.namespace_();
      meta.service_account = workload_service_account(w);
      for (const auto& raw : w.addresses()) {
        IpAddr a;
        if (!IpAddr::from_bytes(raw, &a)) continue;
        meta.addresses.push_back(a);
        s_->workload_by_ip.insert(a, uint32_t(i));
      }
      s_->workload_meta.push_back(std::move(meta));
    }
    n_local_ = next_slot;
  }

  // VIP:port -> endpoints. Endpoints of a service are the healthy workloads whose `services` map
  // names it ("namespace/hostname"), with capacity > 0 (default 1), each at its address of the
  // VIP's family (a workload without one is not an endpoint of that VIP). Target port: the
  // workload's own PortList entry for the service port if it sets one, else the service's
  // target_port, else the service port.
  void services() {
    std::unordered_map<std::string, std::vector<uint32_t>> members;  // "ns/hostname" -> workloads
    for (int i = 0; i < c_.workloads_size(); i++) {
      const istio::workload::Workload& w = c_.workloads(i);
      if (w.status() != istio::workload::HEALTHY) continue;
      if (w.has_capacity() && w.capacity().value() == 0) continue;
      for (const auto& [key, ports] : w.services()) members[key].push_back(uint32_t(i));
    }
    size_t n_keys = 0;
    for (const auto& sv : c_.services()) n_keys += size_t(sv.addresses_size() * sv.ports_size());
    s_->vips = FlatMap<dp::VipKey, dp::VipEntry, dp::VipKeyHash>(n_keys);
    for (int si = 0; si < c_.services_size(); si++) {
      const istio::workload::Service& sv = c_.services(si);
      std::string key = sv.namespace_() + "/" + sv.hostname();
      service_by_key_[key] = uint32_t(si);
      s_->service_meta.push_back({sv.name(), sv.namespace_(), sv.hostname()});
      auto mit = members.find(key);
      static const std::vector<uint32_t> none;
      const std::vector<uint32_t>& eps = mit == members.end() ? none : mit->second;
      service_first_endpoint_.push_back(eps.empty() ? kInvalidIdx : eps.front());
      for (const auto& na : sv.addresses()) {
        IpAddr vip;
        if (!IpAddr::from_bytes(na.address(), &vip)) continue;
        for (const auto& port : sv.ports()) {
          dp::VipEntry ve;
          ve.service = uint32_t(si);
          ve.first_endpoint = uint32_t(s_->endpoints.size());
          for (uint32_t wi : eps) {
            const istio::workload::Workload& w = c_.workloads(int(wi));
            const IpAddr* addr = nullptr;
            for (const IpAddr& a : s_->workload_meta[wi].addresses)
              if (a.is_v4() == vip.is_v4()) {
                addr = &a;
                break;
              }
            if (!addr) continue;
            uint32_t target = port.target_port() ? port.target_port() : port.service_port();
            for (const auto& wp : w.services().at(key).ports())
              if (wp.service_port() == port.service_port() && wp.target_port()) {
                target = wp.target_port();
                break;
              }
            uint32_t weight = w.has_capacity() ? w.capacity().value() : 1;
            ve.total_weight += weight;
            dp::ServiceEndpoint ep;
            ep.addr = *addr;
            ep.workload = wi;
            ep.cum_weight = ve.total_weight;
            ep.target_port = uint16_t(target);
            s_->endpoints.push_back(ep);
            ve.n_endpoints++;
          }
          s_->vips.insert(dp::VipKey{vip, uint16_t(port.service_port()), 0}, ve);
        }
      }
    }
  }

  // A waypoint reference: an address (a workload's) or a service hostname (its first endpoint
  // workload). kInvalidIdx when it names nothing (validation reports that).
  uint32_t resolve_waypoint(const istio::workload::GatewayAddress& g) const {
    if (g.has_address()) {
      IpAddr a;
      if (!IpAddr::from_bytes(g.address().address(), &a)) return kInvalidIdx;
      const uint32_t* w = s_->workload_by_ip.find(a);
      return w ? *w : kInvalidIdx;
    }
    if (g.has_hostname()) {
      auto it = service_by_key_.find(g.hostname().namespace_() + "/" + g.hostname().hostname());
      if (it == service_by_key_.end()) return kInvalidIdx;
      uint32_t first = service_first_endpoint_[it->second];
      return first;
    }
    return kInvalidIdx;
  }

  void waypoints() {
    s_->is_waypoint.assign(s_->workloads.size(), 0);
    for (int i = 0; i < c_.workloads_size(); i++) {
      if (!c_.workloads(i).has_waypoint()) continue;
      uint32_t wp = resolve_waypoint(c_.workloads(i).waypoint());
      s_->workloads[size_t(i)].waypoint = wp;
      if (wp != kInvalidIdx) s_->is_waypoint[wp] = 1;
    }
    std::vector<uint32_t> service_wp(size_t(c_.services_size()), kInvalidIdx);
    for (int si = 0; si < c_.services_size(); si++)
      if (c_.services(si).has_waypoint())
        service_wp[size_t(si)] = resolve_waypoint(c_.services(si).waypoint());
    std::vector<std::pair<dp::VipKey, dp::VipEntry>> updates;
    s_->vips.for_each([&](const dp::VipKey& k, const dp::VipEntry& v) {
      if (service_wp[v.service] == kInvalidIdx) return;
      dp::VipEntry nv = v;
      nv.waypoint = service_wp[v.service];
      s_->is_waypoint[nv.waypoint] = 1;
      updates.emplace_back(k, nv);
    });
    for (auto& [k, v] : updates) s_->vips.insert(k, v);
    for (uint8_t w : s_->is_waypoint) s_->has_waypoints = s_->has_waypoints || w;
  }

  void neighbours() {
    auto table = std::make_shared<dp::NeighbourTable>(n_local_);
    // Learned MACs of addresses that were local workloads in the previous generation.
    if (prev_ && prev_->neighbours) {
      for (size_t i = 0; i < s_->workloads.size(); i++) {
        uint32_t slot = s_->workloads[i].neighbour_slot;
        if (slot == kInvalidIdx) continue;
        for (const IpAddr& a : s_->workload_meta[i].addresses) {
          const uint32_t* old = prev_->workload_by_ip.find(a);
          if (!old || *old >= prev_->workloads.size()) continue;
          MacAddr mac;
          if (prev_->neighbours->get(prev_->workloads[*old].neighbour_slot, &mac)) {
            table->learn(slot, mac);
            break;
          }
        }
      }
    }
    // Static entries (validated: each names an address of a local workload).
    for (const auto& n : c_.neighbours()) {
      IpAddr a;
      MacAddr mac;
      if (!IpAddr::parse(n.address(), &a) || !MacAddr::parse(n.mac(), &mac)) continue;
      const dp::WorkloadInfo* w = s_->workload(a);
      if (w && w->neighbour_slot != kInvalidIdx) table->learn(w->neighbour_slot, mac);
    }
    s_->neighbours = std::move(table);
  }

  void index_previous_sas() {
    if (!prev_) return;
    for (const auto& sa : prev_->sa_owner) {
      if (const SaTag* tag = std::get_deleter<SaTag>(sa)) previous_sas_[tag->fingerprint] = sa;
    }
  }

  // The previous generation's SA for `spec` if there is one, else a new one. Null on failure.
  crypto::EspSa* sa_for(const SaSpec& spec, const std::string& resource) {
    Fingerprint fp = fingerprint(spec);
    std::shared_ptr<crypto::EspSa> sa;
    auto it = previous_sas_.find(fp);
    if (it != previous_sas_.end()) {
      sa = it->second;
    } else {
      sa = std::shared_ptr<crypto::EspSa>(new crypto::EspSa(), SaTag{fp});
      if (!sa->init(spec.params)) {
        errors_->push_back({resource, "",
                            "the ESP layer refused SPI " + std::to_string(spec.params.spi) + " (" +
                                (spec.inbound ? "inbound" : "outbound") + ")"});
        return nullptr;
      }
    }
    s_->sa_owner.push_back(sa);
    return sa.get();
  }

  bool static_sas() {
    s_->peer_tx.assign(s_->nodes.size(), dp::PeerTx{});
    for (dp::PeerTx& pt : s_->peer_tx) pt.outer_ipv6 = s_->outer_ipv6;
    const std::string& self = c_.this_node();
    bool ok = true;
    for (const config::StaticSa& sa : c_.static_sas()) {
      bool out = sa.from_node() == self, in = sa.to_node() == self;
      if (!out && !in) continue;
      std::string resource = "static_sa " + sa.from_node() + "->" + sa.to_node();
      std::vector<uint8_t> key, salt;
      crypto::AeadAlg alg{};
      parse_hex(sa.key_hex(), &key);  // validated
      parse_hex(sa.salt_hex(), &salt);
      parse_cipher(sa.cipher(), &alg);
      SaSpec spec;
      spec.n_workers = o_.n_workers;
      spec.params.alg = alg;
      spec.params.key = std::span<const uint8_t>(key.data(), key.size());
      std::copy_n(salt.begin(), std::min<size_t>(salt.size(), 4), spec.params.salt.begin());
      spec.params.esn = static_sa_esn(sa);
      spec.params.replay_window_bits = static_sa_replay_window(sa);
      spec.params.deterministic_iv = o_.deterministic_iv;

      if (out) {
        uint32_t peer = node_by_name_.at(sa.to_node());
        dp::PeerTx& pt = s_->peer_tx[peer];
        spec.inbound = false;
        spec.peer = sa.to_node();
        bool all = true;
        for (unsigned w = 0; w < o_.n_workers; w++) {
          spec.worker = w;
          spec.params.spi = sa.spi_base() + w;
          pt.sa[w] = sa_for(spec, resource);
          pt.udp_sport[w] = static_sa_udp_sport(sa, w);
          all = all && pt.sa[w] != nullptr;
        }
        const dp::NodeInfo& pn = s_->nodes[peer];
        bool has_addr =
            pt.outer_ipv6 ? !pn.fabric_v6.is_unspecified() : !pn.fabric_v4.is_unspecified();
        pt.reachable = all && has_addr;
        ok = ok && all;
      }
      if (in) {
        uint32_t peer = node_by_name_.at(sa.from_node());
        spec.inbound = true;
        spec.peer = sa.from_node();
        for (unsigned k = 0; k < dp::kMaxWorkers; k++) {
          spec.params.spi = sa.spi_base() + k;
          spec.worker = k % o_.n_workers;
          dp::InboundSa entry;
          entry.sa = sa_for(spec, resource);
          entry.peer = NodeIdx(peer);
          entry.owner_worker = uint16_t(spec.worker);
          if (!entry.sa) {
            ok = false;
            continue;
          }
          s_->sa_in.insert(spec.params.spi, entry);
        }
      }
      OPENSSL_cleanse(key.data(), key.size());
    }
    return ok && dynamic_sas();
  }

  // Peering SAs: shared objects, used as they are (see compile.hpp).
  bool dynamic_sas() {
    std::shared_ptr<const DynamicSas> dyn = o_.dynamic_sas ? o_.dynamic_sas() : nullptr;
    if (!dyn) return true;
    bool ok = true;
    for (const DynamicPeerSas& p : dyn->peers) {
      auto it = node_by_name_.find(p.node);
      if (it == node_by_name_.end() || p.node == c_.this_node()) continue;  // node left config
      uint32_t peer = it->second;
      dp::PeerTx& pt = s_->peer_tx[peer];
      bool all = o_.n_workers > 0;
      for (unsigned w = 0; w < o_.n_workers; w++) all = all && p.outbound[w] != nullptr;
      if (all) {
        for (unsigned w = 0; w < o_.n_workers; w++) {
          pt.sa[w] = p.outbound[w].get();
          pt.udp_sport[w] = p.udp_sport[w];
          s_->sa_owner.push_back(p.outbound[w]);
        }
        const dp::NodeInfo& pn = s_->nodes[peer];
        pt.reachable =
            pt.outer_ipv6 ? !pn.fabric_v6.is_unspecified() : !pn.fabric_v4.is_unspecified();
      }
      for (const DynamicPeerSas::Inbound& in : p.inbound) {
        if (!in.sa) continue;
        uint32_t spi = in.sa->spi();
        if (s_->sa_in.find(spi)) {
          errors_->push_back({"peering " + p.node, "inbound_spis",
                              "SPI " + std::to_string(spi) + " is already in use"});
          ok = false;
          continue;
        }
        dp::InboundSa entry;
        entry.sa = in.sa.get();
        entry.peer = NodeIdx(peer);
        entry.owner_worker = uint16_t(in.owner_worker % o_.n_workers);
        s_->sa_in.insert(spi, entry);
        s_->sa_owner.push_back(in.sa);
      }
    }
    return ok;
  }

  const config::Config& c_;
  const CompileOptions& o_;
  const dp::Snapshot* prev_;
  std::vector<ConfigError>* errors_;
  std::unique_ptr<dp::Snapshot> s_;
  std::unordered_map<std::string, uint32_t> node_by_name_;
  std::unordered_map<std::string, uint32_t> service_by_key_;  // "ns/hostname" -> ServiceIdx
  std::vector<uint32_t> service_first_endpoint_;              // ServiceIdx -> WorkloadIdx
  std::map<Fingerprint, std::shared_ptr<crypto::EspSa>> previous_sas_;
  uint32_t n_local_ = 0;
};

}  // namespace

std::unique_ptr<dp::Snapshot> compile_snapshot(const config::Config& cfg,
                                               const CompileOptions& opts,
                                               const dp::Snapshot* previous,
                                               std::vector<ConfigError>* errors) {
  if (opts.n_workers < 1 || opts.n_workers > dp::kMaxWorkers) {
    errors->push_back(
        {"options", "n_workers",
         std::to_string(opts.n_workers) + " is outside 1.." + std::to_string(dp::kMaxWorkers)});
    return nullptr;
  }
  // A republish of the running config (same_config with its snapshot) was validated when it
  // was applied; the SAs it adds are checked as they are built.
  if (!(opts.same_config && previous) && !validate_config(cfg, errors)) return nullptr;
  return Compiler(cfg, opts, previous, errors).run();
}

}  // namespace vanish::ctl
