// Stage EspDecap: opens the ESP packet (anti-replay check, decrypt + ICV verify, window update)
// and removes UDP/Geneve. The Geneve header must carry the vanish identity option (unknown
// critical options: drop).
// Contract: kept packets start at the inner IP header (data offset 0, trimmed to its length) with
// info describing it: key (zone kZoneInbound), identity (from the option), node (the SA's peer
// node); dst_workload is left kInvalidIdx. Whether that peer may speak for the inner source, and
// where the packet goes, is InboundAuthorize's source check (once per flow). Every other packet is
// freed and counted under its reason.
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
