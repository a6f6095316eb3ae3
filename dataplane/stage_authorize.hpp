// Stage InboundAuthorize (fabric side, after EspDecap): the destination node's verdict.
//
// The source check comes first (check_source): the inner source address must be a workload hosted
// by the node the SA belongs to, with the identity the Geneve option names (an appliance cannot
// speak for workloads it does not host: identity_spoof), and the inner destination a workload
// hosted here, or a destination (service VIP:port or workload) whose waypoint is hosted here
// (not_local). It runs for a flow's first packet; the flow entry then records the peer node and
// identity it was verified with, and later packets of the same key, peer and identity under the
// same decision generation skip it. Any other packet is checked in full before it touches the
// table, so a spoofed packet never creates, counts on or re-decides an entry.
//
// Per new inbound flow (zone kZoneInbound, keyed by the decrypted inner packet) the stage decides
// once and caches the verdict in the worker's flow table, so the per-packet cost is one bulk
// lookup whatever the number of policies:
//   1. a reply to a flow a local workload opened (conntrack.hpp) is allowed without policy, and
//      when that flow went to a service VIP its source is translated back to the VIP;
//   2. otherwise the authorization engine (ctl/authz.hpp, ztunnel's semantics) evaluates the
//      policies of the destination workload for (source identity, source address, destination
//      address, destination port): denied -> every packet of the flow is dropped as authz_denied.
// Entries made under an older config generation are decided again (a newly denied flow stops
// within one generation). decide() is shared with OutboundClassify for hairpin flows.
// Contract: kept packets are unchanged except for the un-DNAT rewrite; others are freed and
// counted.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class InboundAuthorize final {
 public:
  void process(WorkerCtx& ctx, Burst& b);

  // The source check of one decrypted packet (key, identity and node as EspDecap left them).
  // True: info.dst_workload set to the receiving workload, *src_workload to the source's.
  // False: *why is identity_spoof or not_local.
  static bool check_source(const Snapshot& s, PacketInfo& info, uint32_t* src_workload,
                           DropReason* why);

  // The destination's decision for a new flow `key` (as received) from the identity with index
  // src_identity (Snapshot::identities; kInvalidIdx: none) to local workload dst_workload.
  // Sets e.is_reply, e.nat/nat_addr/nat_port (reply un-DNAT), e.policy, e.authz_reason and, when
  // denied, e.drop_reason = authz_denied. Returns whether the flow may pass.
  static bool decide(WorkerCtx& ctx, const FlowKey& key, uint32_t src_identity,
                     uint32_t dst_workload, FlowEntry& e);
};

}  // namespace vanish::dp
