// Stage TtlDecrement: the appliance is a router hop. Decrements the IPv4 TTL (incremental
// checksum update) or IPv6 hop limit; a packet that would leave with 0 is answered with ICMP
// time exceeded and dropped (kTtlExpired).
// Contract: kept packets have TTL/hop limit already decremented; the rest are freed and counted.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class TtlDecrement final {
 public:
  void process(WorkerCtx& ctx, Burst& b);
};

}  // namespace vanish::dp
