// Conntrack: is a new flow towards a local workload a reply to a flow a local workload opened?
//
// A reply needs no authorization at its destination (the connection was authorized where it was
// opened, at the other end) and, when the opening flow went to a service VIP, its source must be
// translated back to the VIP. The opening flow may live in any worker's flow table (the local
// port spreads flows by RSS, the fabric by SPI), so the search reads every worker's table through
// the lock-free shared-reader path (FlowTable::lookup_shared). It runs once per new flow, never
// per packet.
//
// Contract: find_reply(ctx, key) with `key` the new flow as received (any zone). It returns true
// and fills *r when
//   - a DNATed outbound flow's reply-index key (FlowTable::reply_index_key) equals key: the reply
//     must be un-DNATed to r->nat_addr:r->nat_port (r->nat = kUnDnat); or
//   - an outbound flow reverse_key(key) exists with action kEncrypt or kHairpin (r->nat = kNone).
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

struct ReplyMatch {
  NatKind nat = NatKind::kNone;
  IpAddr nat_addr;
  uint16_t nat_port = 0;  // network order
  uint32_t service = kInvalidIdx;
};

bool find_reply(WorkerCtx& ctx, const FlowKey& key, ReplyMatch* r);

}  // namespace vanish::dp
