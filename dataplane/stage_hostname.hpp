// Stage HostnameInspect: egress classification by host name (Config.egress, host_policy.hpp).
//
// OutboundClassify calls classify_egress() for a new flow whose destination is outside the mesh
// (not a workload, VIP or address inside any node's workload_prefixes): it decides at once when
// no hostname rule applies to the flow (ALLOW_ANY / REGISTRY_ONLY), else marks it kEgress with
// host_state kHostPending (TCP) or kHostDns (UDP 53).
// process() runs after OutboundClassify on kEgress packets only, and costs one branch per packet
// for every other flow and for decided ones:
//   - kHostPending: packets without payload (SYN, ACK, FIN, RST: the handshake) pass; the first
//     packet with payload is parsed (TLS ClientHello SNI, else HTTP/1.x Host), whenever it comes,
//     and the flow is decided once: allowed flows pass from then on, denied ones are dropped
//     (the flow entry keeps the drop, so later packets cost one lookup);
//   - kHostDns: every query is parsed and decided on its own (a socket may ask many names);
//     a denied query is dropped, the flow stays.
// Malformed, truncated, oversized or fragmented input is denied (host_malformed); a payload that
// carries no name (no SNI, not HTTP/DNS) is decided as "no name" (host_unknown when denied).
// Contract: every input packet is kept (in order) or freed and counted under one drop reason.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

enum HostState : uint8_t {
  kHostNone = 0,     // not governed by a hostname rule (or not egress)
  kHostPending = 1,  // TCP: waiting for the first payload
  kHostDecided = 2,  // TCP: decided (allowed: action kEgress; denied: action kDrop)
  kHostDns = 3,      // UDP 53: every query is inspected
};

class HostnameInspect final {
 public:
  void process(WorkerCtx& ctx, Burst& b);

  // For OutboundClassify::classify(): the decision for a flow from local workload src_w to a
  // destination that is no workload or VIP. False when the destination is not outside the mesh
  // (or there is no egress): the caller drops it as no_route. prev_* are the entry's fields
  // before re-classification (a flow decided by its name keeps that decision across generations).
  static bool classify_egress(WorkerCtx& ctx, const FlowKey& key, FlowEntry& e, uint32_t src_w,
                              uint8_t prev_state, FlowAction prev_action, uint8_t prev_drop);
};

}  // namespace vanish::dp
