#include "dataplane/stage_hostname.hpp"

#include <rte_byteorder.h>

#include "dataplane/host_policy.hpp"
#include "dataplane/hostname_parse.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

namespace {

bool inside_mesh(const Snapshot& s, const IpAddr& a) {
  for (const NodeInfo& n : s.nodes)
    for (const IpPrefix& p : n.workload_prefixes)
      if (p.contains(a)) return true;
  return false;
}

}  // namespace

bool HostnameInspect::classify_egress(WorkerCtx& ctx, const FlowKey& key, FlowEntry& e,
                                      uint32_t src_w, uint8_t prev_state, FlowAction prev_action,
                                      uint8_t prev_drop) {
  const Snapshot& s = *ctx.snap;
  const HostPolicy* p = s.egress.get();
  if (!p || inside_mesh(s, key.dst_ip())) return false;
  const uint16_t port = (key.proto == 6 || key.proto == 17) ? rte_be_to_cpu_16(key.dport) : 0;
  const uint8_t flags = p->scope_flags(p->ns_of(src_w), port);
  const bool dns = key.proto == 17 && port == 53;
  e.host_state = kHostNone;
  e.host_pattern = kInvalidIdx;
  if (e.packets == 0) ctx.ctr->egress_flows++;  // a new flow, not a re-classified one
  if (flags == 0 || !(key.proto == 6 || dns)) {
    // No rule applies, or nothing to read a name from: decided without one.
    if (flags == 0 ? !p->registry_only : p->allow_without_name(flags)) {
      e.action = FlowAction::kEgress;
    } else {
      e.action = FlowAction::kDrop;
      e.drop_reason = uint8_t(DropReason::kEgressDenied);
    }
    return true;
  }
  if (dns) {
    e.host_state = kHostDns;
    e.action = FlowAction::kEgress;
    return true;
  }
  if (prev_state == kHostDecided) {
    // Decided by its name under an earlier generation: the name is gone, the decision stays.
    e.host_state = kHostDecided;
    e.action = prev_action == FlowAction::kEgress ? FlowAction::kEgress : FlowAction::kDrop;
    e.drop_reason = prev_drop;
    return true;
  }
  e.host_state = kHostPending;
  e.action = FlowAction::kEgress;
  return true;
}

void HostnameInspect::process(WorkerCtx& ctx, Burst& b) {
  const HostPolicy* p = ctx.snap->egress.get();
  if (!p) return;
  uint16_t keep = 0;
  for (uint16_t i = 0; i < b.n; i++) {
    PacketInfo& info = b.info[i];
    if (info.action != FlowAction::kEgress) {
      b.keep(i, keep);
      continue;
    }
    FlowEntry& e = ctx.flows->entry(int32_t(info.flow));
    if (e.host_state != kHostPending && e.host_state != kHostDns) [[likely]] {
      b.keep(i, keep);
      continue;
    }
    rte_mbuf* m = b.pkts[i];
    const size_t end = size_t(info.l3_off) + info.ip_len;
    NameStatus st;
    HostName name;
    if (info.is_fragment || info.l4_off == 0) {
      st = NameStatus::kTruncated;
    } else if (e.host_state == kHostPending) {
      size_t l4 = info.l4_off;
      if (l4 + 20 > end) {
        st = NameStatus::kMalformed;
      } else {
        size_t doff = size_t(*at<uint8_t>(m, l4 + 12) >> 4) * 4;
        if (doff < 20 || l4 + doff > end) {
          st = NameStatus::kMalformed;
        } else if (l4 + doff == end) {
          b.keep(i, keep);  // no payload: the handshake (or a bare ACK/FIN/RST) passes
          continue;
        } else {
          st = parse_tcp_first_payload(at<uint8_t>(m, l4 + doff), end - l4 - doff, &name);
        }
      }
    } else {
      size_t l4 = info.l4_off;
      st = l4 + 8 > end ? NameStatus::kMalformed
                        : parse_dns_qname(at<uint8_t>(m, l4 + 8), end - l4 - 8, &name);
    }
    ctx.ctr->host_inspected++;
    const uint32_t ns = p->ns_of(e.src_workload);
    const uint16_t port = rte_be_to_cpu_16(info.key.dport);
    HostDecision d;
    DropReason why = DropReason::kHostDenied;
    if (st == NameStatus::kFound) {
      d = p->decide(name.view(), ns, port, p->scratch(ctx.id));
    } else if (st == NameStatus::kNoName || st == NameStatus::kNotProtocol) {
      d = p->decide({}, ns, port, nullptr);
      why = DropReason::kHostUnknown;
    } else {
      d.allow = false;  // fail closed on what we cannot read
      why = DropReason::kHostMalformed;
    }
    e.host_pattern = d.pattern;
    if (e.host_state == kHostPending) e.host_state = kHostDecided;
    if (d.allow) {
      ctx.ctr->host_allowed++;
      b.keep(i, keep);
      continue;
    }
    ctx.ctr->host_denied_flows++;
    if (e.host_state == kHostDecided) {
      e.action = FlowAction::kDrop;
      e.drop_reason = uint8_t(why);
    }
    ctx.drop(m, why);
  }
  b.n = keep;
}

}  // namespace vanish::dp
