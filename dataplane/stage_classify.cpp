#include "dataplane/stage_classify.hpp"

#include <rte_hash_crc.h>

#include "dataplane/nat.hpp"
#include "dataplane/neighbour.hpp"
#include "dataplane/pkt.hpp"
#include "dataplane/stage_authorize.hpp"
#include "dataplane/stage_hostname.hpp"

namespace vanish::dp {

namespace {

// Weighted random choice among a VIP's endpoints (capacities as weights).
const ServiceEndpoint* pick_endpoint(WorkerCtx& ctx, const VipEntry& v) {
  const ServiceEndpoint* eps = ctx.snap->endpoints.data() + v.first_endpoint;
  uint32_t r = uint32_t(ctx.random() % v.total_weight);
  uint32_t lo = 0, hi = v.n_endpoints - 1;
  while (lo < hi) {  // first endpoint whose cumulative weight exceeds r
    uint32_t mid = (lo + hi) / 2;
    if (eps[mid].cum_weight > r)
      hi = mid;
    else
      lo = mid + 1;
  }
  return &eps[lo];
}

// The previous generation's endpoint if this VIP still has it (sticky across config changes).
const ServiceEndpoint* same_endpoint(const Snapshot& s, const VipEntry& v, const IpAddr& a,
                                     uint16_t port_be) {
  for (uint32_t i = 0; i < v.n_endpoints; i++) {
    const ServiceEndpoint& ep = s.endpoints[v.first_endpoint + i];
    if (ep.addr == a && rte_cpu_to_be_16(ep.target_port) == port_be) return &ep;
  }
  return nullptr;
}

}  // namespace

void OutboundClassify::classify(WorkerCtx& ctx, const FlowKey& key, FlowEntry& e) {
  const Snapshot& s = *ctx.snap;
  const NatKind prev_nat = e.nat;
  const IpAddr prev_addr = e.nat_addr;
  const uint16_t prev_port = e.nat_port;
  const uint8_t prev_host = e.host_state;
  const FlowAction prev_action = e.action;
  const uint8_t prev_drop = e.drop_reason;
  e.host_state = kHostNone;
  e.host_pattern = kInvalidIdx;
  e.generation = gen32(s.decision_generation);
  e.action = FlowAction::kDrop;
  e.src_workload = e.dst_workload = kInvalidIdx;
  e.node = kInvalidIdx;
  e.identity = 0;
  e.nat = NatKind::kNone;
  e.is_reply = 0;
  e.service = kInvalidIdx;
  e.policy = kInvalidIdx;
  e.authz_reason = 0;
  const uint32_t* src = s.workload_by_ip.find(key.src_ip());
  if (!src || !(s.workloads[*src].node == s.self)) {
    e.drop_reason = uint8_t(DropReason::kUnknownSource);
    return;
  }
  const WorkloadInfo& sw = s.workloads[*src];
  e.src_workload = *src;
  e.identity = sw.identity.value;

  // Destination: a service VIP:port (DNAT to an endpoint), or a workload; either may name a
  // waypoint, which then receives the packet unchanged (the waypoint itself goes direct).
  uint32_t dst_w;
  if (const VipEntry* v = s.vip(key.dst_ip(), key.dport, key.proto)) {
    e.service = v->service;
    ctx.ctr->service_flows++;
    if (v->waypoint != kInvalidIdx && v->waypoint != *src) {
      dst_w = v->waypoint;
    } else {
      if (v->n_endpoints == 0 || v->total_weight == 0) {
        e.drop_reason = uint8_t(DropReason::kNoEndpoint);
        return;
      }
      const ServiceEndpoint* ep =
          prev_nat == NatKind::kDnat ? same_endpoint(s, *v, prev_addr, prev_port) : nullptr;
      if (!ep) ep = pick_endpoint(ctx, *v);
      e.nat = NatKind::kDnat;
      e.nat_addr = ep->addr;
      e.nat_port = rte_cpu_to_be_16(ep->target_port);
      dst_w = ep->workload;
    }
  } else {
    const uint32_t* dst = s.workload_by_ip.find(key.dst_ip());
    if (!dst) {
      // Outside the mesh: egress (Config.egress), else no route.
      if (!HostnameInspect::classify_egress(ctx, key, e, *src, prev_host, prev_action, prev_drop))
        e.drop_reason = uint8_t(DropReason::kNoRoute);
      return;
    }
    dst_w = *dst;
    uint32_t wp = s.workloads[dst_w].waypoint;
    if (wp != kInvalidIdx && wp != *src) dst_w = wp;
  }
  const WorkloadInfo& dw = s.workloads[dst_w];
  e.dst_workload = dst_w;
  e.node = dw.node.value;
  if (dw.node == s.self) {
    // This node is the destination too: authorize here, on the translated destination.
    FlowKey k = key;
    if (e.nat == NatKind::kDnat) {
      std::memcpy(k.dst, e.nat_addr.b.data(), 16);
      k.dport = e.nat_port;
    }
    const NatKind nat = e.nat;
    const uint32_t service = e.service;
    if (!InboundAuthorize::decide(ctx, k, sw.identity_index, dst_w, e)) return;
    if (!e.is_reply) {  // decide() only sets NAT for replies; keep our DNAT otherwise
      e.nat = nat;
      e.service = service;
    }
    e.action = FlowAction::kHairpin;
    return;
  }
  if (dw.node.value >= s.peer_tx.size() || !s.peer_tx[dw.node.value].reachable) {
    e.drop_reason = uint8_t(DropReason::kNoSa);  // fail closed: never plaintext to the fabric
    return;
  }
  e.action = FlowAction::kEncrypt;
}

bool OutboundClassify::index_reply(WorkerCtx& ctx, const FlowKey& key, const FlowEntry& e) {
  FlowKey ri = FlowTable::reply_index_key(key, e);
  int32_t p = ctx.flows->insert(ri);
  if (p < 0) return false;
  FlowEntry& r = ctx.flows->reset(p);
  r.generation = e.generation;
  r.created_tsc = ctx.now;
  r.touch(ctx.now);
  r.action = FlowAction::kDeliver;
  r.nat = NatKind::kUnDnat;
  r.nat_addr = key.dst_ip();
  r.nat_port = key.dport;
  r.service = e.service;
  r.src_workload = e.dst_workload;
  r.dst_workload = e.src_workload;
  r.policy = kInvalidIdx;
  return true;
}

void OutboundClassify::process(WorkerCtx& ctx, Burst& b) {
  const Snapshot& s = *ctx.snap;
  const int32_t* idx = ctx.lookup(b);

  uint16_t keep = 0;
  uint64_t hits = 0;      // added to the counters once per burst
  bool inserted = false;  // a miss earlier in this burst may have created this packet's flow
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    bool fresh;
    int32_t fi = ctx.flows->find_or_insert(info.key, idx[i], &inserted, &fresh);
    if (fresh) ctx.ctr->flow_misses++;
    if (fi < 0) {
      ctx.drop(m, DropReason::kFlowTableFull);
      continue;
    }
    if (fresh) {
      FlowEntry& e = ctx.flows->reset(fi);
      e.created_tsc = ctx.now;
      e.entropy = uint16_t(0xC000 | (rte_hash_crc(&info.key, sizeof(FlowKey), 0) & 0x3fff));
      classify(ctx, info.key, e);
      if (e.nat == NatKind::kDnat && !index_reply(ctx, info.key, e)) {
        e.action = FlowAction::kDrop;  // its replies could not be translated back
        e.drop_reason = uint8_t(DropReason::kFlowTableFull);
      }
      ctx.ctr->flows_created++;
      conn_attach(ctx, info.key, e);
      // A new flow from a local workload refreshes its MAC in the neighbour table.
      if (e.src_workload != kInvalidIdx)
        learn_neighbour(ctx, info.key.src_ip(), get_mac(&at<rte_ether_hdr>(m, 0)->src_addr));
    } else {
      hits++;
      FlowEntry& e = ctx.flows->entry(fi);
      if (e.generation != gen32(s.decision_generation) && !e.is_static &&
          info.key.zone == kZoneOutbound) {
        bool had = e.nat == NatKind::kDnat;
        FlowKey old_ri = had ? FlowTable::reply_index_key(info.key, e) : FlowKey{};
        classify(ctx, info.key, e);
        bool has = e.nat == NatKind::kDnat;
        FlowKey new_ri = has ? FlowTable::reply_index_key(info.key, e) : FlowKey{};
        if (had && (!has || !FlowTable::key_eq(old_ri, new_ri))) ctx.flows->erase(old_ri);
        if (has && !index_reply(ctx, info.key, e)) {
          e.action = FlowAction::kDrop;
          e.drop_reason = uint8_t(DropReason::kFlowTableFull);
        }
        ctx.ctr->flows_reclassified++;
        if (e.conn <= kConnUntracked) conn_attach(ctx, info.key, e);
      }
    }
    FlowEntry& e = ctx.flows->entry(fi);
    e.packets++;
    e.bytes += info.ip_len;
    ctx.conn_bytes[e.conn] += info.ip_len;  // istio_tcp_* bytes (conn_metrics.hpp)
    e.touch(ctx.now);
    if (e.action == FlowAction::kDrop) {
      ctx.drop(m, DropReason(e.drop_reason));
      continue;
    }
    if (e.nat == NatKind::kDnat)
      nat_rewrite_dst(m, info, e.nat_addr, e.nat_port);
    else if (e.nat == NatKind::kUnDnat)
      nat_rewrite_src(m, info, e.nat_addr, e.nat_port);
    info.flow = uint32_t(fi);
    info.action = e.action;
    info.node = e.node;
    if (e.action == FlowAction::kHairpin) info.dst_workload = e.dst_workload;
    info.identity = e.identity;
    info.entropy = e.entropy;
    b.keep(i, keep);
  }
  ctx.ctr->flow_hits += hits;
  b.n = keep;
}

}  // namespace vanish::dp
