// Stage OutboundClassify: decides what happens to each packet from the local port.
// Two-phase: bulk flow-table lookup for the whole burst, then the slow path (snapshot lookups)
// only for misses and for entries made under an older config generation.
// Decision: source must be a workload hosted here; destination a workload on a peer node with
// a valid SA (kEncrypt) or on this node (kHairpin); anything else is dropped and counted.
// Contract: kept packets have info.flow/action/node/dst_workload/identity set; denied ones are
// freed and counted; the decision (including a drop) is cached in the flow entry.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class OutboundClassify final {
 public:
  void process(WorkerCtx& ctx, Burst& b);

  // The slow-path decision for one flow key (exposed for tests and vanishctl).
  static void classify(const Snapshot& s, const FlowKey& key, FlowEntry& e);
};

}  // namespace vanish::dp
