// Stage OutboundClassify: decides what happens to each packet from the local port.
// Two-phase: bulk flow-table lookup for the whole burst, then the slow path (snapshot lookups)
// only for misses and for entries made under an older config generation.
// Decision: source must be a workload hosted here. Destination:
//   - a service VIP:port (TCP/UDP): an endpoint is chosen by weighted random (capacity), sticky
//     per connection (the flow entry keeps it, across config generations while it stays an
//     endpoint); the packet is DNATed to it, and a reply-index key is added so the endpoint's
//     replies are translated back (conntrack.hpp) on whichever worker receives them;
//   - a workload;
//   - either may name a waypoint: then the waypoint receives the packet unchanged (original
//     destination preserved), except for traffic the waypoint itself sends.
// The destination workload on a peer node with a valid SA -> kEncrypt; on this node -> kHairpin
// after this node's authorization (InboundAuthorize::decide); a destination outside the mesh ->
// kEgress or a drop, as HostnameInspect::classify_egress decides (Config.egress; without it
// no_route); anything else is dropped and counted.
// Contract: kept packets have info.flow/action/node/dst_workload/identity set and are rewritten
// by the flow's NAT; denied ones are freed and counted; the decision (including a drop) is cached
// in the flow entry.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class OutboundClassify final {
 public:
  void process(WorkerCtx& ctx, Burst& b);
  // The slow-path decision for one flow key under ctx.snap (exposed for tests). Reads e.nat*
  // first (sticky endpoint), then overwrites the decision fields.
  static void classify(WorkerCtx& ctx, const FlowKey& key, FlowEntry& e);

  // Adds (or refreshes) the reply-index key of DNATed flow (key, e) in the worker's table (also
  // used for operator-pinned VIP flows, worker_mailbox.cpp). False when the table is full.
  static bool index_reply(WorkerCtx& ctx, const FlowKey& key, const FlowEntry& e);
};

}  // namespace vanish::dp
