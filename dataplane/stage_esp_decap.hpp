// Stage EspDecap: opens the ESP packet (anti-replay check, decrypt + ICV verify, window update),
// removes UDP/Geneve, and verifies the source identity:
//   - the Geneve header carries the vanish identity option (unknown critical options: drop);
//   - the inner source address is a workload hosted by the node the SA belongs to, and its
//     identity is the one in the option (an appliance cannot speak for workloads it does not host);
//   - the inner destination is a workload hosted here, or a destination (service VIP:port or
//     workload) whose waypoint is hosted here (the waypoint receives it unchanged).
// Contract: kept packets start at the inner IP header (data offset 0, trimmed to its length) with
// info describing it; every other packet is freed and counted under its reason.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class EspDecap final {
 public:
  void process(WorkerCtx& ctx, Burst& b);

  // Finds the identity option in a Geneve header of total length geneve_len. Returns false on a
  // malformed header, a control message (O bit) or an unknown critical option; *identity = 0 when
  // there is no identity option.
  static bool parse_geneve(const uint8_t* g, size_t geneve_len, uint32_t* identity,
                           uint16_t* protocol);
};

}  // namespace vanish::dp
