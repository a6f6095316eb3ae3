// Hand-built valid frames used as fuzz seeds and by benchmarks. The IPv4 header checksum is
// right (the local port verifies it); L4 checksums need not be (the data plane does not verify
// them).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace vanish::fuzz {

using Bytes = std::vector<uint8_t>;

inline void put(Bytes& b, std::initializer_list<uint8_t> v) {
  b.insert(b.end(), v);
}

// Fills in the IPv4 header checksum of an Ethernet frame (no-op for anything else).
inline void fill_ipv4_checksum(Bytes& b) {
  if (b.size() < 34 || b[12] != 0x08 || b[13] != 0x00) return;
  const size_t ihl = size_t(b[14] & 0xf) * 4;
  if (ihl < 20 || b.size() < 14 + ihl) return;
  b[24] = b[25] = 0;
  uint32_t sum = 0;
  for (size_t i = 0; i < ihl; i += 2) sum += uint32_t(b[14 + i] << 8 | b[15 + i]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  b[24] = uint8_t(~sum >> 8);
  b[25] = uint8_t(~sum);
}

// Eth(dst gw MAC of node-a, src sleep's MAC) / IPv4 10.1.0.10 -> dst / proto with l4 bytes.
inline Bytes v4_frame(std::initializer_list<uint8_t> dst, uint8_t proto, Bytes l4, uint8_t ttl = 64,
                      uint16_t frag = 0x4000) {
  Bytes b;
  put(b, {0x02, 0, 0, 0, 0x10, 0x01, 0x02, 0, 0, 0xaa, 0, 0x10, 0x08, 0x00});
  uint16_t tot = uint16_t(20 + l4.size());
  put(b, {0x45, 0, uint8_t(tot >> 8), uint8_t(tot), 0, 1, uint8_t(frag >> 8), uint8_t(frag), ttl,
          proto, 0, 0, 10, 1, 0, 10});
  b.insert(b.end(), dst);
  b.insert(b.end(), l4.begin(), l4.end());
  fill_ipv4_checksum(b);
  return b;
}

inline Bytes v6_frame(uint8_t last_dst, uint8_t nh, Bytes l4, uint8_t hops = 64) {
  Bytes b;
  put(b, {0x02, 0, 0, 0, 0x10, 0x01, 0x02, 0, 0, 0xaa, 0, 0x10, 0x86, 0xdd});
  uint16_t pl = uint16_t(l4.size());
  put(b, {0x60, 0, 0, 0, uint8_t(pl >> 8), uint8_t(pl), nh, hops});
  put(b, {0xfd, 0, 0, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10});
  put(b, {0xfd, 0, 0, 0x10, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, last_dst});
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

inline Bytes udp(uint16_t dport, size_t payload) {
  Bytes b = {0x30, 0x39, uint8_t(dport >> 8), uint8_t(dport), 0, uint8_t(8 + payload), 0, 0};
  b.resize(8 + payload, 0x61);
  return b;
}
inline Bytes tcp(uint16_t dport) {
  Bytes b = {0x30,
             0x39,
             uint8_t(dport >> 8),
             uint8_t(dport),
             0,
             0,
             0,
             1,
             0,
             0,
             0,
             0,
             0x50,
             0x02,
             0xff,
             0xff,
             0,
             0,
             0,
             0};
  return b;
}
inline Bytes icmp_echo(uint8_t type) {
  return {type, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4};
}

inline Bytes arp_request(std::initializer_list<uint8_t> target) {
  Bytes b;
  put(b, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0xaa, 0, 0x10, 0x08, 0x06});
  put(b, {0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0xaa, 0, 0x10, 10, 1, 0, 10, 0, 0, 0, 0, 0, 0});
  b.insert(b.end(), target);
  return b;
}

inline Bytes neighbour_solicit() {
  Bytes ns = {135, 0, 0, 0, 0, 0, 0, 0, 0xfd, 0, 0,    0x10, 0, 1,    0, 0,
              0,   0, 0, 0, 0, 0, 0, 1, 1,    1, 0x02, 0,    0, 0xaa, 0, 0x10};
  Bytes b = v6_frame(1, 58, ns, 255);
  b[0] = 0x33;  // solicited-node multicast MAC
  b[1] = 0x33;
  return b;
}

}  // namespace vanish::fuzz
