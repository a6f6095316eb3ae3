#include "dataplane/stage_egress.hpp"

#include "dataplane/host_policy.hpp"
#include "dataplane/pkt.hpp"
#include "dataplane/stage_local_ingress.hpp"

namespace vanish::dp {

namespace {

// The kEgress flow `fwd` (zone outbound) in any worker's table.
bool egress_flow_exists(WorkerCtx& ctx, const FlowKey& fwd) {
  int32_t p = ctx.flows->lookup(fwd);
  if (p >= 0) return ctx.flows->entry(p).action == FlowAction::kEgress;
  for (unsigned w = 0; w < ctx.n_all_flows; w++) {
    FlowTable* t = ctx.all_flows[w];
    if (!t || t == ctx.flows) continue;
    p = t->lookup_shared(fwd);
    if (p >= 0) return t->entry(p).action == FlowAction::kEgress;
  }
  return false;
}

}  // namespace

void EgressForward::send(WorkerCtx& ctx, Burst& b) {
  const Snapshot& s = *ctx.snap;
  const HostPolicy* p = s.egress.get();
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    const PacketInfo& info = b.info[i];
    if (!p) {  // cannot happen: kEgress flows exist only with an egress block
      ctx.drop(m, DropReason::kNoRoute);
      continue;
    }
    if (info.ip_len > s.fabric_mtu) {
      ctx.drop(m, DropReason::kMtuExceeded);
      continue;
    }
    if (!put_ether_before_l3(m, info.l3_off, p->next_hop, s.self_node().fabric_mac, info.is_v6)) {
      ctx.drop(m, DropReason::kEncapNoRoom);
      continue;
    }
    ctx.ctr->egress_tx++;
    ctx.send_fabric(m);
  }
  b.n = 0;
}

void EgressForward::receive(WorkerCtx& ctx, Burst& b) {
  const Snapshot& s = *ctx.snap;
  uint16_t keep = 0;
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    if (!s.egress || !parse_ip(m, uint16_t(kEthLen), info)) {
      ctx.drop(m, s.egress ? DropReason::kParseError : DropReason::kNotForUs);
      continue;
    }
    const uint32_t* w = s.workload_by_ip.find(info.key.dst_ip());
    if (!w || !(s.workloads[*w].node == s.self)) {
      ctx.drop(m, DropReason::kNotForUs);
      continue;
    }
    FlowKey fwd = reverse_key(info.key);
    fwd.zone = kZoneOutbound;
    if (info.is_fragment || !egress_flow_exists(ctx, fwd)) {
      ctx.drop(m, DropReason::kNoRoute);
      continue;
    }
    if (!info.is_v6) {
      auto* ip = at<rte_ipv4_hdr>(m, info.l3_off);
      if (ip->time_to_live <= 1) {
        ctx.drop(m, DropReason::kTtlExpired);
        continue;
      }
      ipv4_dec_ttl(ip);
    } else {
      auto* ip6 = at<rte_ipv6_hdr>(m, info.l3_off);
      if (ip6->hop_limits <= 1) {
        ctx.drop(m, DropReason::kTtlExpired);
        continue;
      }
      ip6->hop_limits--;
    }
    info.dst_workload = *w;
    ctx.ctr->egress_rx++;
    b.keep(i, keep);
  }
  b.n = keep;
}

}  // namespace vanish::dp
