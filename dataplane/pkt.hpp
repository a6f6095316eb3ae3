// Small helpers for reading and writing headers inside an mbuf. Header-only, inlined.
#pragma once

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/types.hpp"

namespace vanish::dp {

template <typename T>
inline T* at(rte_mbuf* m, size_t off) {
  return rte_pktmbuf_mtod_offset(m, T*, off);
}
template <typename T>
inline const T* at(const rte_mbuf* m, size_t off) {
  return rte_pktmbuf_mtod_offset(m, const T*, off);
}

inline void put_mac(rte_ether_addr* dst, const MacAddr& mac) {
  std::memcpy(dst->addr_bytes, mac.b.data(), 6);
}
inline MacAddr get_mac(const rte_ether_addr* src) {
  MacAddr m;
  std::memcpy(m.b.data(), src->addr_bytes, 6);
  return m;
}

// One's-complement checksum of a buffer, folded and inverted (ICMPv4).
inline uint16_t inet_cksum(const void* p, size_t len) {
  uint16_t c = rte_raw_cksum(p, len);
  return c == 0xffff ? c : uint16_t(~c);
}

// RFC 1624 incremental update of an IPv4 header checksum when the TTL drops by one:
// HC' = ~(~HC + ~m + m') (eqn. 3) with m' - m = -0x0100, i.e. ~(~HC + 0xFEFF). Unlike HC + 0x0100
// it never yields 0xFFFF, so the result equals a checksum computed from scratch.
inline void ipv4_dec_ttl(rte_ipv4_hdr* ip) {
  ip->time_to_live--;
  uint32_t sum = uint32_t(uint16_t(~ip->hdr_checksum)) + rte_cpu_to_be_16(0xFEFF);
  sum = (sum & 0xffff) + (sum >> 16);
  ip->hdr_checksum = uint16_t(~sum);
}

}  // namespace vanish::dp
