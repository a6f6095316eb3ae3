// Packet builders and checkers for the data-plane fixtures (and for perf, which replays the same
// packets). Everything works on plain byte vectors in wire order; nothing here touches DPDK.
//
// Contract
// - Builders produce well-formed packets: IPv4 header checksums, UDP/TCP/ICMP/ICMPv6 checksums
//   (with the pseudo-header) and lengths are correct unless a test corrupts them afterwards.
// - An IpHdr's family follows its addresses (IPv4-mapped IpAddr = IPv4); src and dst must agree.
// - Helpers that parse (ip_*, l4_checksum_ok, ipv4_reassemble) never read past the vector.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/types.hpp"

namespace vanish::test {

using Bytes = std::vector<uint8_t>;

// Parse helpers for literals; abort on a typo (a test bug, not a test failure).
MacAddr mac(const std::string& s);
IpAddr ip(const std::string& s);

inline constexpr uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86DD, kEthArp = 0x0806;
inline constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17, kProtoIcmp6 = 58,
                         kProtoFrag6 = 44;
inline constexpr uint8_t kTcpSyn = 0x02, kTcpAck = 0x10;

uint16_t rd16(const uint8_t* p);
uint32_t rd32(const uint8_t* p);
void wr16(uint8_t* p, uint16_t v);
void wr32(uint8_t* p, uint32_t v);
inline uint16_t rd16(const Bytes& b, size_t off) {
  return rd16(b.data() + off);
}
inline uint32_t rd32(const Bytes& b, size_t off) {
  return rd32(b.data() + off);
}

// Internet checksum (RFC 1071) of p[0..n) plus `sum` (an unfolded partial sum), folded and
// inverted. A region that already carries its checksum yields 0.
uint16_t inet_checksum(const uint8_t* p, size_t n, uint32_t sum = 0);
// Partial sum of the IPv4/IPv6 pseudo-header (RFC 768 / RFC 8200 §8.1).
uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, uint8_t proto, size_t l4_len);

// A deterministic payload: n bytes seeded by `seed`.
Bytes pattern(size_t n, uint8_t seed = 0);

// ---- IP layer ------------------------------------------------------------------------------

struct IpHdr {
  IpAddr src, dst;
  uint8_t ttl = 64;  // IPv6: hop limit
  bool df = true;    // IPv4 only
  uint16_t id = 0x1234;
  uint8_t tos = 0;          // IPv4 TOS / IPv6 traffic class
  uint32_t flow_label = 0;  // IPv6 only
  bool v6() const { return !src.is_v4(); }
};

// IPv4 (20-byte header, checksum) or IPv6 (40-byte header) around an L4 payload.
Bytes ip_packet(const IpHdr& h, uint8_t proto, const Bytes& l4);
// Whole IP packets with a valid L4 checksum.
Bytes udp(const IpHdr& h, uint16_t sport, uint16_t dport, const Bytes& payload);
Bytes tcp(const IpHdr& h, uint16_t sport, uint16_t dport, uint8_t flags = kTcpSyn,
          uint32_t seq = 1000, uint32_t ack = 0, const Bytes& payload = {});
// ICMP echo (IPv4) or ICMPv6 echo (IPv6) request/reply.
Bytes icmp_echo(const IpHdr& h, bool request, uint16_t ident, uint16_t seq,
                const Bytes& payload = pattern(32));

// Facts about an IP packet (IPv4 without options or IPv6 without extension headers).
bool ip_is_v6(const Bytes& ip);
size_t ip_hdr_len(const Bytes& ip);  // 20/ihl*4 or 40
uint8_t ip_proto(const Bytes& ip);
uint8_t ip_ttl(const Bytes& ip);  // TTL / hop limit
IpAddr ip_src(const Bytes& ip);
IpAddr ip_dst(const Bytes& ip);
// IPv4: the header checksum verifies. IPv6: true.
bool ipv4_header_ok(const Bytes& ip);
// The UDP/TCP/ICMP/ICMPv6 checksum of an (unfragmented) IP packet verifies.
bool l4_checksum_ok(const Bytes& ip);
// The packet as the next router hop forwards it: TTL/hop limit - 1, IPv4 checksum recomputed.
Bytes dec_ttl(Bytes ip);
// Recomputes the IPv4 header checksum in place (after a test edits the header).
void fix_ipv4_checksum(Bytes& ip);
// Recomputes the UDP/TCP/ICMP/ICMPv6 checksum of an IP packet without extension headers/options.
void fix_l4_checksum(Bytes& ip);

// Reassembles IPv4 fragments (any order) into the original datagram; nullopt if they do not
// form exactly one complete datagram. The result carries the first fragment's header with
// MF/offset cleared, total length and checksum recomputed.
std::optional<Bytes> ipv4_reassemble(const std::vector<Bytes>& frags);

// ---- Ethernet, ARP, ND ---------------------------------------------------------------------

inline constexpr size_t kEth = 14;

Bytes eth(const MacAddr& dst, const MacAddr& src, uint16_t ethertype, const Bytes& payload);
// Ethernet around an IP packet; the ethertype follows the version nibble.
Bytes eth_ip(const MacAddr& dst, const MacAddr& src, const Bytes& ip);
// The part of a frame after the Ethernet header.
Bytes l3_of(const Bytes& frame);
MacAddr eth_dst(const Bytes& frame);
MacAddr eth_src(const Bytes& frame);
uint16_t eth_type(const Bytes& frame);

inline constexpr uint16_t kArpRequest = 1, kArpReply = 2;
// An ARP frame (Ethernet dst = broadcast for requests unless given), padded to 60 bytes.
Bytes arp(uint16_t op, const MacAddr& sha, const IpAddr& spa, const MacAddr& tha, const IpAddr& tpa,
          const MacAddr* eth_dst = nullptr);
// A Neighbor Solicitation for `target` from (src_mac, src) to the solicited-node multicast
// group, with a source link-layer address option when with_sll. src may be :: (DAD).
Bytes nd_solicit(const MacAddr& src_mac, const IpAddr& src, const IpAddr& target,
                 bool with_sll = true, uint8_t hop_limit = 255);
IpAddr solicited_node(const IpAddr& target);
MacAddr ipv6_multicast_mac(const IpAddr& group);

// ---- Fabric (ESP-in-UDP, Geneve) -----------------------------------------------------------

inline constexpr uint16_t kEspUdpPort = 4500, kGenevePort = 6081;

// Geneve option TLV (RFC 8926 §3.5): class, type, data padded to 4 bytes.
Bytes geneve_option(uint16_t opt_class, uint8_t type, const Bytes& data);
// The vanish identity option: class 0xFF56, type 0x81, 4 bytes = id (big-endian).
Bytes geneve_identity(uint32_t id);
// UDP(sport -> 6081, checksum 0) | Geneve(ver 0, options, protocol) | inner: the ESP payload
// vanish carries. flags: Geneve O|C byte (0x40 = critical options present).
Bytes geneve_udp(uint16_t sport, uint16_t protocol, const Bytes& options, const Bytes& inner,
                 uint8_t flags = 0x40);

struct OuterHdr {
  MacAddr src_mac, dst_mac;
  IpAddr src, dst;  // family selects IPv4 (DF, TTL 64, UDP checksum 0) or IPv6 (UDP checksum)
  uint16_t sport = 49152, dport = kEspUdpPort;
};
// Eth | IP | UDP | esp (the ESP header .. ICV).
Bytes fabric_frame(const OuterHdr& o, const Bytes& esp);
// Offset of the ESP header in a fabric frame (IPv4 without options / IPv6 without extensions).
size_t esp_offset(const Bytes& frame);

// Human-readable hex for failure messages ("45 00 00 54 ...").
std::string hex(const Bytes& b, size_t max = 256);

}  // namespace vanish::test
