// ICMP/ICMPv6 errors the appliance sends as a router on the local port: time exceeded, IPv4
// fragmentation needed (type 3 code 4, RFC 1191) and ICMPv6 Packet Too Big (RFC 4443/8201).
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

enum class IcmpError : uint8_t { kTimeExceeded, kTooBig };

// Builds and queues (to the local port) an error about packet m, whose Ethernet header is at
// offset 0 and IP header at info.l3_off. Does not consume m. Never answers an ICMP error, a
// non-first fragment or an unspecified/multicast source; rate limited per worker.
// Returns true if an error was queued.
bool send_icmp_error(WorkerCtx& ctx, const rte_mbuf* m, const PacketInfo& info, IcmpError kind,
                     uint32_t mtu);

}  // namespace vanish::dp
