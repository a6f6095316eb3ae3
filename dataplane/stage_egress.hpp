// Stage EgressForward: traffic between local workloads and destinations outside the mesh
// (Config.egress), through the egress next hop on the fabric port, unencrypted (there is no peer
// appliance to encrypt to: the next hop is an egress router or NAT gateway).
//   send():    kEgress packets (after TtlDecrement): Ethernet rewritten (destination = the next
//              hop's MAC, source = this node's fabric MAC) and queued to the fabric port. Larger
//              than the fabric MTU: dropped (mtu_exceeded; no fragmentation, no ICMP).
//   receive(): plain IP packets FabricIngress set aside (addressed to this node's fabric MAC,
//              not to its fabric address): delivered only when they are the reverse of a kEgress
//              flow a local workload opened (any worker's table, conntrack-style shared reads),
//              TTL/hop limit decremented; anything else is dropped (not_for_us, no_route).
// Contract: every input packet is queued (fabric TX for send(); for receive(), kept in `b` with
// dst_workload set, for LocalDeliver) or freed and counted.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class EgressForward final {
 public:
  void send(WorkerCtx& ctx, Burst& b);
  void receive(WorkerCtx& ctx, Burst& b);
};

}  // namespace vanish::dp
