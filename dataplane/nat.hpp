// Service NAT rewrites: DNAT of an outbound packet to a service VIP onto the chosen endpoint, and
// the reverse (source VIP restored) on the endpoint's replies. Header-only, inlined per packet.
//
// Contract
// - The packet's IP header is at info.l3_off and parse_ip() accepted it; info.l4_off is the L4
//   header (0 for a non-first fragment: only the IP part is rewritten).
// - Checksums are updated incrementally (RFC 1624 eqn. 3) so that they stay exactly what a full
//   recomputation would give: the IPv4 header checksum, the TCP checksum and a non-zero UDP
//   checksum (pseudo-header address + port). An IPv4 UDP checksum of 0 (none) stays 0; a
//   result of 0 is sent as 0xFFFF (RFC 768). ICMP packets are never rewritten (not a service).
// - Neither the flow key in info nor anything else than the header bytes changes.
#pragma once

#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <cstdint>
#include <cstring>

#include "dataplane/burst.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

namespace nat_detail {

// Adds the one's-complement difference of replacing `old_words` by `new_words` (n 16-bit words,
// any alignment) to a folded partial sum.
inline uint32_t diff(uint32_t acc, const uint8_t* old_bytes, const uint8_t* new_bytes, size_t n) {
  for (size_t i = 0; i < n; i += 2) {
    uint16_t o, w;
    std::memcpy(&o, old_bytes + i, 2);
    std::memcpy(&w, new_bytes + i, 2);
    acc += uint16_t(~o);
    acc += w;
  }
  return acc;
}

inline uint16_t apply(uint16_t cksum, uint32_t acc) {
  uint32_t sum = uint32_t(uint16_t(~cksum)) + acc;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// Rewrites one address (4 or 16 bytes at `addr`) and one port (at `port`, may be null) and fixes
// the checksums. `is_dst` selects the L4 port field.
inline void rewrite(rte_mbuf* m, const PacketInfo& info, bool is_dst, const IpAddr& a,
                    uint16_t port_be) {
  uint8_t* l3 = at<uint8_t>(m, info.l3_off);
  const uint8_t* new_addr = info.is_v6 ? a.b.data() : a.v4_bytes();
  size_t alen = info.is_v6 ? 16 : 4;
  uint8_t* addr = info.is_v6 ? l3 + (is_dst ? 24 : 8) : l3 + (is_dst ? 16 : 12);
  uint32_t pseudo = diff(0, addr, new_addr, alen);
  if (!info.is_v6) {
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(l3);
    ip->hdr_checksum = apply(ip->hdr_checksum, pseudo);
  }
  std::memcpy(addr, new_addr, alen);
  if (!info.l4_off || (info.l4_proto != IPPROTO_TCP && info.l4_proto != IPPROTO_UDP)) return;
  uint8_t* l4 = at<uint8_t>(m, info.l4_off);
  uint8_t* port = l4 + (is_dst ? 2 : 0);
  uint32_t acc = diff(pseudo, port, reinterpret_cast<const uint8_t*>(&port_be), 2);
  std::memcpy(port, &port_be, 2);
  if (info.l4_proto == IPPROTO_TCP) {
    auto* th = reinterpret_cast<rte_tcp_hdr*>(l4);
    th->cksum = apply(th->cksum, acc);
  } else if (info.l4_proto == IPPROTO_UDP) {
    auto* uh = reinterpret_cast<rte_udp_hdr*>(l4);
    if (uh->dgram_cksum == 0 && !info.is_v6) return;
    uint16_t c = apply(uh->dgram_cksum, acc);
    uh->dgram_cksum = c == 0 ? 0xffff : c;
  }
}

}  // namespace nat_detail

// Destination -> endpoint (outbound DNAT to a service VIP).
inline void nat_rewrite_dst(rte_mbuf* m, const PacketInfo& info, const IpAddr& a,
                            uint16_t port_be) {
  nat_detail::rewrite(m, info, true, a, port_be);
}

// Source -> VIP (the endpoint's reply, un-DNAT).
inline void nat_rewrite_src(rte_mbuf* m, const PacketInfo& info, const IpAddr& a,
                            uint16_t port_be) {
  nat_detail::rewrite(m, info, false, a, port_be);
}

}  // namespace vanish::dp
