// The read-only views of the running data plane for vanishctl (ctl.proto fields 20..39):
// dataplane_status (ports, worker load), workloads, services, policies, sas, peers, stats.
//
// Contract (besides ctl_service.hpp's)
// - Reads the snapshot being served and the workers' counters; never writes either, never
//   reads key material (SAs: SPI, cipher, ESN, sequence numbers and counters only).
// - List replies are bounded by ctl::ViewFilter (match, limit, byte budget) and report total
//   and shown; rows come in a stable order (config order, SAs by direction, peer, SPI).
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "ctl/authz.hpp"
#include "ctl/view_filter.hpp"
#include "dataplane/ctl_service.hpp"
#include "dataplane/stats_report.hpp"

namespace vanish::dp {

namespace {

namespace v1 = ctl::v1;

// ---- worker load sampling (views_tick) ----

struct LoadSample {
  uint64_t tsc = 0;
  uint64_t rx[kMaxWorkers] = {};
  uint64_t busy[kMaxWorkers] = {};
  uint64_t idle[kMaxWorkers] = {};
  bool valid = false;
};

// Control thread only (one ControlContext per process).
struct LoadState {
  LoadSample prev, last;
};
LoadState g_load;

LoadSample sample(const ControlContext& c, uint64_t tsc) {
  LoadSample s;
  s.tsc = tsc;
  s.valid = true;
  for (size_t w = 0; w < c.workers.size() && w < kMaxWorkers; w++) {
    const WorkerCounters& k = c.workers[w]->counters();
    s.rx[w] = k.local_rx + k.fabric_rx;
    s.busy[w] = k.busy_polls;
    s.idle[w] = k.idle_polls;
  }
  return s;
}

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08" PRIx32, v);
  return b;
}

std::string ref(const WorkloadMeta& m) {
  return m.ns + "/" + m.name;
}

template <typename Rows>
void finish(Rows* rows, const ctl::ViewFilter& f) {
  rows->set_total(f.total());
  rows->set_shown(f.shown());
}

// ---- handlers ----

void dataplane_status(ControlContext& c, v1::DataplaneStatus* out) {
  const std::pair<const char*, uint16_t> ports[] = {{"local", c.local_port},
                                                    {"fabric", c.fabric_port}};
  for (auto [role, id] : ports) {
    v1::PortRow* p = out->add_ports();
    p->set_role(role);
    p->set_port_id(id);
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    if (rte_eth_dev_get_name_by_port(id, name) == 0) p->set_name(name);
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(id, &link) == 0) {
      p->set_link_up(link.link_status == RTE_ETH_LINK_UP);
      if (link.link_speed != RTE_ETH_SPEED_NUM_UNKNOWN) p->set_speed_mbps(link.link_speed);
    }
    rte_eth_stats st{};
    if (rte_eth_stats_get(id, &st) == 0) {
      p->set_rx_packets(st.ipackets);
      p->set_tx_packets(st.opackets);
      p->set_rx_bytes(st.ibytes);
      p->set_tx_bytes(st.obytes);
      p->set_rx_missed(st.imissed);
      p->set_rx_errors(st.ierrors);
      p->set_tx_errors(st.oerrors);
      p->set_rx_nombuf(st.rx_nombuf);
    }
  }
  const uint64_t hz = rte_get_tsc_hz();
  LoadSample now = sample(c, rte_rdtsc());
  // The base: the last tick sample if it is at least half a second old, else the one before;
  // right after start, the start (all zero).
  LoadSample base;
  base.tsc = c.start_tsc;
  base.valid = true;
  if (g_load.last.valid && now.tsc - g_load.last.tsc >= hz / 2)
    base = g_load.last;
  else if (g_load.prev.valid)
    base = g_load.prev;
  double dt = double(now.tsc - base.tsc) / double(hz);
  out->set_interval_s(dt);
  for (size_t w = 0; w < c.workers.size() && w < kMaxWorkers; w++) {
    v1::WorkerLoad* l = out->add_workers();
    l->set_id(uint32_t(w));
    l->set_rx_packets(now.rx[w]);
    l->set_mpps(dt > 0 ? double(now.rx[w] - base.rx[w]) / dt / 1e6 : 0.0);
    uint64_t busy = now.busy[w] - base.busy[w], all = busy + (now.idle[w] - base.idle[w]);
    l->set_busy_pct(all ? 100.0 * double(busy) / double(all) : 0.0);
  }
}

void workloads(const Snapshot& s, const v1::GetView& q, v1::WorkloadRows* out) {
  ctl::ViewFilter f(q.match(), q.limit());
  std::vector<std::string> addrs;
  for (size_t i = 0; i < s.workloads.size() && i < s.workload_meta.size(); i++) {
    const WorkloadInfo& wi = s.workloads[i];
    const WorkloadMeta& m = s.workload_meta[i];
    const std::string& node = s.nodes[wi.node.value].name;
    const IdentityMeta* id =
        wi.identity_index < s.identities.size() ? &s.identities[wi.identity_index] : nullptr;
    addrs.clear();
    for (const IpAddr& a : m.addresses) addrs.push_back(a.str());
    bool match = f.matches({m.name, m.ns, node, id ? std::string_view(id->principal) : ""});
    for (size_t k = 0; !match && k < addrs.size(); k++) match = f.matches_one(addrs[k]);
    if (!match || !f.take()) continue;
    v1::WorkloadRow* r = out->add_rows();
    r->set_name(m.name);
    r->set_namespace_(m.ns);
    r->set_node(node);
    r->set_uid(m.uid);
    for (const auto& a : addrs) r->add_addresses(a);
    if (id) {
      r->set_principal(id->principal);
      r->set_identity_id(id->id.value);
    }
    r->set_local(wi.node == s.self);
    MacAddr mac;
    if (r->local() && s.neighbours && wi.neighbour_slot != kInvalidIdx &&
        s.neighbours->get(wi.neighbour_slot, &mac))
      r->set_mac(mac.str());
    f.add_bytes(r->ByteSizeLong());
  }
  finish(out, f);
}

void services(const Snapshot& s, const v1::GetView& q, v1::ServiceRows* out) {
  constexpr uint32_t kMaxEndpointsShown = 64;
  // VIP:port entries grouped by service, in a stable order (IPv4 first, address, port).
  std::vector<std::pair<VipKey, const VipEntry*>> vips;
  vips.reserve(s.vips.size());
  s.vips.for_each([&](const VipKey& k, const VipEntry& e) { vips.emplace_back(k, &e); });
  std::sort(vips.begin(), vips.end(), [](const auto& a, const auto& b) {
    return std::make_tuple(a.second->service, !a.first.addr.is_v4(), a.first.addr.b, a.first.port) <
           std::make_tuple(b.second->service, !b.first.addr.is_v4(), b.first.addr.b, b.first.port);
  });
  ctl::ViewFilter f(q.match(), q.limit());
  size_t vi = 0;
  std::vector<std::string> vip_strs;
  for (uint32_t svc = 0; svc < s.service_meta.size(); svc++) {
    while (vi < vips.size() && vips[vi].second->service < svc) vi++;
    size_t vend = vi;
    while (vend < vips.size() && vips[vend].second->service == svc) vend++;
    const ServiceMeta& m = s.service_meta[svc];
    vip_strs.clear();
    for (size_t k = vi; k < vend; k++) vip_strs.push_back(vips[k].first.addr.str());
    bool match = f.matches({m.name, m.ns, m.hostname});
    for (size_t k = 0; !match && k < vip_strs.size(); k++) match = f.matches_one(vip_strs[k]);
    if (!match || !f.take()) {
      vi = vend;
      continue;
    }
    v1::ServiceRow* r = out->add_rows();
    r->set_name(m.name);
    r->set_namespace_(m.ns);
    r->set_hostname(m.hostname);
    for (size_t k = vi; k < vend; k++) {
      const VipEntry& e = *vips[k].second;
      if (e.waypoint != kInvalidIdx && e.waypoint < s.workload_meta.size() && r->waypoint().empty())
        r->set_waypoint(ref(s.workload_meta[e.waypoint]));
      v1::VipRow* v = r->add_vips();
      v->set_address(vip_strs[k - vi]);
      v->set_port(vips[k].first.port);
      v->set_endpoints_total(e.n_endpoints);
      uint32_t prev_cum = 0;
      for (uint32_t j = 0; j < e.n_endpoints; j++) {
        const ServiceEndpoint& ep = s.endpoints[e.first_endpoint + j];
        uint32_t weight = ep.cum_weight - prev_cum;
        prev_cum = ep.cum_weight;
        if (j >= kMaxEndpointsShown) continue;
        v1::EndpointRow* er = v->add_endpoints();
        if (ep.workload < s.workload_meta.size()) {
          er->set_workload(ref(s.workload_meta[ep.workload]));
          er->set_node(s.nodes[s.workloads[ep.workload].node.value].name);
        }
        er->set_address(ep.addr.str());
        er->set_target_port(ep.target_port);
        er->set_weight(weight);
      }
    }
    f.add_bytes(r->ByteSizeLong());
    vi = vend;
  }
  finish(out, f);
}

const char* scope_str(authz::Scope s) {
  switch (s) {
    case authz::Scope::kGlobal:
      return "GLOBAL";
    case authz::Scope::kNamespace:
      return "NAMESPACE";
    case authz::Scope::kWorkloadSelector:
      return "WORKLOAD_SELECTOR";
  }
  return "?";
}

void policies(const Snapshot& s, const v1::GetView& q, v1::PolicyRows* out) {
  ctl::ViewFilter f(q.match(), q.limit());
  const authz::Engine* e = s.authz.get();
  if (!e) {
    finish(out, f);
    return;
  }
  // Workloads each policy applies to: one pass over every workload's applicable lists.
  std::vector<uint32_t> applies(e->n_policies(), 0);
  for (uint32_t w = 0; w < e->n_workloads(); w++)
    for (size_t b = 0; b < authz::kBuckets; b++)
      for (authz::PolicyId p : e->applicable(w, authz::Bucket(b)))
        if (p.value < applies.size()) applies[p.value]++;
  for (uint32_t i = 0; i < e->n_policies(); i++) {
    const authz::PolicyInfo& p = e->policy(authz::PolicyId(i));
    const char* scope = scope_str(p.scope);
    const char* action = p.action == authz::Action::kAllow ? "ALLOW" : "DENY";
    if (!f.matches({p.ns, p.name, p.key(), scope, action}) || !f.take()) continue;
    v1::PolicyRow* r = out->add_rows();
    r->set_namespace_(p.ns);
    r->set_name(p.name);
    r->set_scope(scope);
    r->set_action(action);
    r->set_dry_run(p.dry_run);
    r->set_rules(p.n_rules);
    r->set_workloads(applies[i]);
    f.add_bytes(r->ByteSizeLong());
  }
  finish(out, f);
}

void fill_sa(v1::SaRow* r, const crypto::EspSa& sa) {
  r->set_spi(sa.spi());
  r->set_cipher(crypto::aead_alg_name(sa.alg()));
  r->set_esn(sa.esn());
  const crypto::EspSa::Stats& st = sa.stats();
  r->set_packets(st.packets);
  r->set_bytes(st.bytes);
}

void sas(const Snapshot& s, const v1::GetView& q, v1::SaRows* out) {
  ctl::ViewFilter f(q.match(), q.limit());
  for (uint32_t p = 0; p < s.peer_tx.size() && p < s.nodes.size(); p++) {
    const PeerTx& pt = s.peer_tx[p];
    const std::string& peer = s.nodes[p].name;
    for (unsigned w = 0; w < s.n_workers && w < kMaxWorkers; w++) {
      const crypto::EspSa* sa = pt.sa[w];
      if (!sa) continue;
      std::string spi = hex32(sa->spi());
      if (!f.matches({spi, std::to_string(sa->spi()), peer, "out"}) || !f.take()) continue;
      v1::SaRow* r = out->add_rows();
      fill_sa(r, *sa);
      r->set_direction("out");
      r->set_peer(peer);
      r->set_worker(w);
      r->set_seq(sa->next_seq() - 1);
      r->set_udp_sport(pt.udp_sport[w]);
      f.add_bytes(r->ByteSizeLong());
    }
  }
  std::vector<std::pair<uint32_t, const InboundSa*>> in;
  in.reserve(s.sa_in.size());
  s.sa_in.for_each([&](uint32_t spi, const InboundSa& e) { in.emplace_back(spi, &e); });
  std::sort(in.begin(), in.end(), [&](const auto& a, const auto& b) {
    return std::make_tuple(s.nodes[a.second->peer.value].name, a.first) <
           std::make_tuple(s.nodes[b.second->peer.value].name, b.first);
  });
  for (const auto& [spi_v, e] : in) {
    if (!e->sa) continue;
    const std::string& peer = s.nodes[e->peer.value].name;
    std::string spi = hex32(spi_v);
    if (!f.matches({spi, std::to_string(spi_v), peer, "in"}) || !f.take()) continue;
    v1::SaRow* r = out->add_rows();
    fill_sa(r, *e->sa);
    r->set_direction("in");
    r->set_peer(peer);
    r->set_worker(e->owner_worker);
    r->set_seq(e->sa->replay_top());
    const crypto::EspSa::Stats& st = e->sa->stats();
    r->set_replay_drops(st.replay + st.too_old);
    r->set_replay_window(e->sa->anti_replay() ? e->sa->replay_window().size_bits() : 0);
    r->set_auth_failures(st.bad_icv);
    f.add_bytes(r->ByteSizeLong());
  }
  finish(out, f);
}

void peers(const Snapshot& s, const v1::GetView& q, v1::PeerRows* out) {
  ctl::ViewFilter f(q.match(), q.limit());
  std::vector<uint32_t> in(s.nodes.size(), 0);
  s.sa_in.for_each([&](uint32_t, const InboundSa& e) {
    if (e.peer.value < in.size()) in[e.peer.value]++;
  });
  for (uint32_t p = 0; p < s.nodes.size(); p++) {
    if (NodeIdx(p) == s.self) continue;
    const NodeInfo& n = s.nodes[p];
    std::string v4 = n.fabric_v4.is_unspecified() ? "" : n.fabric_v4.str();
    std::string v6 = n.fabric_v6.is_unspecified() ? "" : n.fabric_v6.str();
    const PeerTx* pt = p < s.peer_tx.size() ? &s.peer_tx[p] : nullptr;
    const char* state = pt && pt->reachable ? "reachable" : "unreachable";
    if (!f.matches({n.name, v4, v6, state}) || !f.take()) continue;
    v1::PeerRow* r = out->add_rows();
    r->set_name(n.name);
    r->set_fabric_ipv4(v4);
    r->set_fabric_ipv6(v6);
    r->set_state(state);
    uint32_t n_out = 0;
    for (unsigned w = 0; pt && w < s.n_workers && w < kMaxWorkers; w++)
      n_out += pt->sa[w] != nullptr;
    r->set_sas_out(n_out);
    r->set_sas_in(in[p]);
    // Every SA comes from config static_sas until mTLS peering lands.
    r->set_keying(n_out + in[p] ? "static" : "none");
    r->set_spiffe_id(n.spiffe_id);
    f.add_bytes(r->ByteSizeLong());
  }
  finish(out, f);
}

void stats(const ControlContext& c, const Snapshot& s, v1::StatsReport* out) {
  out->set_node(s.self_node().name);
  out->set_time_ns(uint64_t(double(rte_rdtsc() - c.start_tsc) * 1e9 / double(rte_get_tsc_hz())));
  for (size_t w = 0; w < c.workers.size(); w++) {
    const WorkerCounters& k = c.workers[w]->counters();
    v1::WorkerStats* ws = out->add_workers();
    ws->set_id(uint32_t(w));
    for (auto& [name, val] : counter_fields(k)) {
      v1::Counter* ctr = ws->add_counters();
      ctr->set_name(name);
      ctr->set_value(val);
    }
    for (unsigned r = 0; r < kDropReasonCount; r++) {
      uint64_t v = k.drops[r];
      if (!v) continue;
      v1::Counter* ctr = ws->add_drops();
      ctr->set_name(drop_reason_name(DropReason(r)));
      ctr->set_value(v);
      ctr->set_description(drop_reason_description(DropReason(r)));
    }
  }
}

}  // namespace

void views_tick(ControlContext& c) {
  uint64_t now = rte_rdtsc();
  if (g_load.last.valid && now - g_load.last.tsc < rte_get_tsc_hz()) return;
  g_load.prev = g_load.last;
  g_load.last = sample(c, now);
}

bool handle_views(ControlContext& c, const v1::Request& req, v1::Response* resp) {
  using R = v1::Request;
  switch (req.command_case()) {
    case R::kDataplaneStatus:
    case R::kWorkloads:
    case R::kServices:
    case R::kPolicies:
    case R::kSas:
    case R::kPeers:
    case R::kStats:
      break;
    default:
      return false;
  }
  const Snapshot* s = c.pub ? c.pub->current() : nullptr;
  if (!s) {
    resp->set_ok(false);
    resp->set_error("no config snapshot is being served");
    return true;
  }
  resp->set_generation(s->generation);
  switch (req.command_case()) {
    case R::kDataplaneStatus:
      dataplane_status(c, resp->mutable_dataplane_status());
      break;
    case R::kWorkloads:
      workloads(*s, req.workloads(), resp->mutable_workloads());
      break;
    case R::kServices:
      services(*s, req.services(), resp->mutable_services());
      break;
    case R::kPolicies:
      policies(*s, req.policies(), resp->mutable_policies());
      break;
    case R::kSas:
      sas(*s, req.sas(), resp->mutable_sas());
      break;
    case R::kPeers:
      peers(*s, req.peers(), resp->mutable_peers());
      break;
    case R::kStats:
      stats(c, *s, resp->mutable_stats());
      break;
    default:
      break;
  }
  resp->set_ok(true);
  return true;
}

}  // namespace vanish::dp
