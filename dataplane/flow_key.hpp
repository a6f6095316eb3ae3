// FlowKey: the 5-tuple that keys the per-worker flow table. 40 bytes, zero-padded, so it can be
// hashed and compared as raw bytes (flow_table.hpp). IPv4 addresses use the IPv4-mapped form of
// IpAddr. 8-byte aligned: rte_hash_crc() reads it as uint64_t words.
#pragma once

#include <cstdint>
#include <cstring>

#include "dataplane/types.hpp"

namespace vanish::dp {

// Which table a key belongs to. Every key of a worker's flow table carries one.
enum FlowZone : uint8_t {
  kZoneOutbound = 0,    // a packet from the local port, as received (before DNAT)
  kZoneInbound = 1,     // a decrypted packet from the fabric, as received (before reverse NAT)
  kZoneReplyIndex = 2,  // the reply tuple of a DNATed outbound flow -> that flow (conntrack.hpp)
};

struct alignas(8) FlowKey {
  uint8_t src[16];
  uint8_t dst[16];
  uint16_t sport;  // network order; ICMP echo: identifier; other ICMP: 0
  uint16_t dport;  // network order; ICMP: 0
  uint8_t proto;
  uint8_t zone;  // FlowZone
  uint8_t pad[2];

  IpAddr src_ip() const { return IpAddr::v6(src); }
  IpAddr dst_ip() const { return IpAddr::v6(dst); }
};
static_assert(sizeof(FlowKey) == 40);

// Word i (0..4) of a key as one aligned 8-byte load (hashing and comparing word by word; an
// array copy of the key would go through the stack).
inline uint64_t key_word(const FlowKey& k, unsigned i) {
  uint64_t w;
  std::memcpy(&w, reinterpret_cast<const uint8_t*>(&k) + 8 * i, 8);
  return w;
}
inline void store_key_word(FlowKey& k, unsigned i, uint64_t w) {
  std::memcpy(reinterpret_cast<uint8_t*>(&k) + 8 * i, &w, 8);
}

// The key of the packets flowing the other way: addresses swapped, and ports swapped for
// TCP/UDP. ICMP keys carry the echo identifier in sport for both directions (see parse_ip), so
// only the addresses swap.
inline FlowKey reverse_key(const FlowKey& k) {
  FlowKey r = k;
  std::memcpy(r.src, k.dst, 16);
  std::memcpy(r.dst, k.src, 16);
  if (k.proto != 1 && k.proto != 58) {
    r.sport = k.dport;
    r.dport = k.sport;
  }
  return r;
}

}  // namespace vanish::dp
