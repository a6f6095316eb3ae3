// Small helpers for reading and writing headers inside an mbuf. Header-only, inlined.
#pragma once

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstring>

#include "dataplane/types.hpp"
#include "dataplane/wire.hpp"

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

// Makes the packet start with an Ethernet header right before its L3 header at `l3_off` (drops
// whatever was before it, or prepends) and fills it: dst, src, the L3 family's EtherType.
// Null when the mbuf has no headroom for it.
inline rte_ether_hdr* put_ether_before_l3(rte_mbuf* m, uint16_t l3_off, const MacAddr& dst,
                                          const MacAddr& src, bool is_v6) {
  rte_ether_hdr* eth;
  if (l3_off >= kEthLen) {
    rte_pktmbuf_adj(m, uint16_t(l3_off - kEthLen));
    eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  } else {
    eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, uint16_t(kEthLen - l3_off)));
    if (!eth) return nullptr;
  }
  put_mac(&eth->dst_addr, dst);
  put_mac(&eth->src_addr, src);
  eth->ether_type = rte_cpu_to_be_16(is_v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
  return eth;
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

// True if an IPv4 header of ihl_bytes (20..60, a multiple of 4, all in the buffer) has a right
// checksum: its one's-complement sum is 0xFFFF. Sums 32-bit words into 64 bits, then folds; the
// sum does not depend on byte order (RFC 1071 1.2.B). A header without options is five loads,
// against rte_ipv4_cksum's 16-bit loop. The words are loaded from the header itself: copied into
// a local array first, the compiler moved them with one 16-byte store and read them back with
// 4-byte loads, which the store buffer cannot forward (a stall on every packet).
inline bool ipv4_header_sum_ok(const void* hdr, unsigned ihl_bytes) {
  const auto* p = static_cast<const uint8_t*>(hdr);
  uint64_t s = 0;
  if (ihl_bytes == 20) [[likely]] {
    uint64_t a, b;
    uint32_t c;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + 8, 8);
    std::memcpy(&c, p + 16, 4);
    s = (a & 0xffffffffu) + (a >> 32) + (b & 0xffffffffu) + (b >> 32) + c;
  } else {
    for (unsigned i = 0; i < ihl_bytes / 4; i++) {
      uint32_t w;
      std::memcpy(&w, p + 4 * i, 4);
      s += w;
    }
  }
  s = (s & 0xffffffffu) + (s >> 32);  // < 2^33
  s = (s & 0xffffffffu) + (s >> 32);  // <= 2^32
  s = (s & 0xffff) + (s >> 16);       // < 2^17
  s = (s & 0xffff) + (s >> 16);       // <= 0xffff + 1
  s = (s & 0xffff) + (s >> 16);
  return s == 0xffff;
}

// The IPv4 header checksum of the header at l3_off (ihl_bytes long, inside the first segment):
// the port's verdict when it checked (RX offload), else ipv4_header_sum_ok over the header.
inline bool ipv4_header_checksum_ok(const rte_mbuf* m, size_t l3_off, unsigned ihl_bytes) {
  switch (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) {
    case RTE_MBUF_F_RX_IP_CKSUM_GOOD:
      return true;
    case RTE_MBUF_F_RX_IP_CKSUM_BAD:
      return false;
    default:  // unknown or not checked
      return ipv4_header_sum_ok(rte_pktmbuf_mtod_offset(m, const uint8_t*, l3_off), ihl_bytes);
  }
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
