// Stage LocalDeliver: hands IP packets to local workloads on the local port.
// Writes the Ethernet header (destination = the workload's MAC from the neighbour table, source =
// the gateway MAC). With no MAC known yet, solicits it (ARP/NS, rate limited) and drops the packet
// (kNeighbourMiss).
// Contract: input packets have their IP header at info.l3_off (anything in front is replaced) and
// info.dst_workload set; each is queued to the local port or freed and counted.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class LocalDeliver final {
 public:
  void process(WorkerCtx& ctx, Burst& b, bool hairpin);
};

}  // namespace vanish::dp
