// Wire formats the data plane builds and parses beyond what DPDK's lib/net defines:
// Geneve (RFC 8926) with the vanish identity option, and the fabric header stack sizes.
//
// Fabric packet (DESIGN.md "Wire format"):
//   Eth | outer IPv4/IPv6 | UDP dport 4500 | ESP hdr | IV(8) |
//   { UDP dport 6081 | Geneve(8) | identity option(8) | inner IP packet | pad | padlen | nh=17 } |
//   ICV(16)
// The braces are encrypted (ESP transport mode of the UDP/Geneve packet).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/types.hpp"

namespace vanish::dp {

inline constexpr uint16_t kEspInUdpPort = 4500;  // RFC 3948
inline constexpr uint16_t kGenevePort = 6081;    // RFC 8926
inline constexpr uint8_t kIpProtoUdp = 17;

// Geneve option class for vanish (0xFF00-0xFFFF is IANA "Experimental Use").
inline constexpr uint16_t kGeneveOptClassVanish = 0xFF56;
// Option type 0x81: high bit set = critical (a receiver that does not understand it must drop).
inline constexpr uint8_t kGeneveOptTypeIdentity = 0x81;

struct __attribute__((packed)) GeneveHdr {
  uint8_t ver_optlen;  // version (2 bits, 0) | option length in 4-byte words (6 bits)
  uint8_t flags;       // O | C | reserved
  Be16 protocol;       // ethertype of the payload: 0x0800 IPv4, 0x86DD IPv6
  uint8_t vni[3];
  uint8_t reserved;
};
static_assert(sizeof(GeneveHdr) == 8);

struct __attribute__((packed)) GeneveOpt {
  Be16 opt_class;
  uint8_t type;
  uint8_t length;  // 3 reserved bits | length of the option data in 4-byte words (5 bits)
};
static_assert(sizeof(GeneveOpt) == 4);

// The identity option: class 0xFF56, type 0x81, 4 bytes of data = source identity id (big-endian).
struct __attribute__((packed)) GeneveIdentityOpt {
  GeneveOpt hdr;
  Be32 identity;
};
static_assert(sizeof(GeneveIdentityOpt) == 8);

inline constexpr size_t kEthLen = 14;
inline constexpr size_t kIpv4Len = 20;
inline constexpr size_t kIpv6Len = 40;
inline constexpr size_t kUdpLen = 8;
inline constexpr size_t kGeneveLen = sizeof(GeneveHdr) + sizeof(GeneveIdentityOpt);  // 16
inline constexpr size_t kEspHdrIvLen = 16;                                           // SPI, seq, IV
inline constexpr size_t kEspIcvLen = 16;
inline constexpr size_t kEspTrailerMax = 3 + 2;  // pad to 4 bytes + pad length + next header

// Bytes added in front of the inner IP packet (after the outer Ethernet header).
constexpr size_t encap_prefix_len(bool outer_v6) {
  return (outer_v6 ? kIpv6Len : kIpv4Len) + kUdpLen + kEspHdrIvLen + kUdpLen + kGeneveLen;
}
// Outer IP packet length for an inner IP packet of inner_len bytes.
constexpr size_t encap_outer_ip_len(bool outer_v6, size_t inner_len) {
  size_t esp_payload = kUdpLen + kGeneveLen + inner_len;
  size_t padded = (esp_payload + 2 + 3) & ~size_t(3);
  return (outer_v6 ? kIpv6Len : kIpv4Len) + kUdpLen + kEspHdrIvLen + padded + kEspIcvLen;
}
// Largest inner IP packet that fits a fabric IP MTU.
constexpr size_t max_inner_len(bool outer_v6, size_t fabric_mtu) {
  size_t fixed = (outer_v6 ? kIpv6Len : kIpv4Len) + kUdpLen + kEspHdrIvLen + kEspIcvLen;
  if (fabric_mtu <= fixed + kUdpLen + kGeneveLen + 2) return 0;
  size_t room = (fabric_mtu - fixed) & ~size_t(3);  // padded ESP payload must be 4-aligned
  return room - 2 - kUdpLen - kGeneveLen;
}

}  // namespace vanish::dp
