// FlowKey: the 5-tuple that keys the per-worker flow table. 40 bytes, zero-padded, so it can be
// hashed and compared as raw bytes (rte_hash). IPv4 addresses use the IPv4-mapped form of IpAddr.
// 8-byte aligned: rte_hash_crc() reads it as uint64_t words.
#pragma once

#include <cstdint>
#include <cstring>

#include "dataplane/types.hpp"

namespace vanish::dp {

struct alignas(8) FlowKey {
  uint8_t src[16];
  uint8_t dst[16];
  uint16_t sport;  // network order; ICMP echo: identifier; others: 0
  uint16_t dport;  // network order; ICMP: type<<8|code for echo only
  uint8_t proto;
  uint8_t zone;  // 0 = outbound (local port), 1 = inbound (fabric)
  uint8_t pad[2];

  IpAddr src_ip() const { return IpAddr::v6(src); }
  IpAddr dst_ip() const { return IpAddr::v6(dst); }
};
static_assert(sizeof(FlowKey) == 40);

}  // namespace vanish::dp
