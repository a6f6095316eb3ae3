// Stage FabricMtu: makes every packet bound for the fabric fit its MTU after encapsulation.
// - Fits: kept.
// - IPv4 with DF, or IPv6: ICMP "fragmentation needed" / ICMPv6 Packet Too Big carrying the
//   largest inner size that fits (fabric MTU minus encapsulation overhead), dropped (kMtuExceeded).
// - IPv4 without DF: fragmented (RFC 791) before encryption; fragments go to `frags`, the
//   original is freed. Each fragment is then encrypted as its own packet.
// Contract: every input packet is kept, replaced by fragments, or freed and counted.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

// Overflow burst for fragments (a burst of 32 packets may become more than 32 fragments).
struct FragBurst {
  static constexpr uint16_t kCap = 256;
  uint16_t n = 0;
  rte_mbuf* pkts[kCap];
  PacketInfo info[kCap];
};

class FabricMtu final {
 public:
  void process(WorkerCtx& ctx, Burst& b, FragBurst& frags);

  // Splits m (Ethernet at 0, IPv4 at info.l3_off) into fragments whose IP length <= max_ip.
  // Appends them to frags; returns false (frags unchanged) on failure. Does not free m.
  static bool fragment_ipv4(WorkerCtx& ctx, const rte_mbuf* m, const PacketInfo& info,
                            size_t max_ip, FragBurst& frags);
};

}  // namespace vanish::dp
