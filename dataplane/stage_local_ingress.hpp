// Stage LocalIngress: first stage of the outbound pipeline (packets from the local port).
// Parses Ethernet / IPv4 / IPv6 / TCP / UDP / ICMP and fills PacketInfo + FlowKey.
// ARP, Neighbor Discovery and echo requests to the gateway are answered here and leave the burst.
// Contract: every packet either stays in the burst (a well-formed IP packet addressed to the
// gateway's MAC, trimmed to its IP length) or is consumed (replied to, or freed and counted).
#pragma once

#include <rte_ip.h>

#include <bit>
#include <cstring>

#include "dataplane/pkt.hpp"
#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

// Parses the IP packet at l3_off of m into info (shared with the inbound path for inner packets).
// Returns false if the headers are malformed. Does not look at Ethernet.
bool parse_ip(const rte_mbuf* m, uint16_t l3_off, PacketInfo& info);

// parse_ip()'s fast path, inline for the stages that call it per packet: IPv4 without options,
// not a fragment, UDP or TCP with its whole header inside the packet. True: info is filled
// exactly as parse_ip() would (info.is_v6 == 0, l4_proto TCP or UDP, is_fragment 0). False:
// nothing is known (info may be partly written); parse_ip() decides.
inline bool parse_ipv4_fast(const rte_mbuf* m, uint16_t l3_off, PacketInfo& info) {
  size_t len = rte_pktmbuf_data_len(m);
  FlowKey& k = info.key;
  if (len >= size_t(l3_off) + kIpv4Len + kUdpLen) {
    const auto* ip = at<rte_ipv4_hdr>(m, l3_off);
    uint16_t tot = rte_be_to_cpu_16(ip->total_length);
    uint8_t proto = ip->next_proto_id;
    size_t l4_min = proto == IPPROTO_UDP ? kUdpLen : proto == IPPROTO_TCP ? 20 : 0;
    if (ip->version_ihl == RTE_IPV4_VHL_DEF && l4_min &&
        !(ip->fragment_offset &
          rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) &&
        tot >= kIpv4Len + l4_min && size_t(l3_off) + tot <= len) {
      info.l3_off = l3_off;
      info.is_fragment = 0;
      info.is_v6 = 0;
      info.ip_len = tot;
      info.l4_proto = proto;
      info.l4_off = uint16_t(l3_off + kIpv4Len);
      // The key as five whole 8-byte words (IPv4-mapped addresses, zone 0), in the layout of
      // FlowKey: the lookups that follow load these words, and a load that spans several
      // narrower stores still in the store buffer cannot be forwarded (a stall of ~15 cycles
      // per word on the inbound path, which hashes right after parsing).
      uint32_t sa, da, ports;
      std::memcpy(&sa, &ip->src_addr, 4);
      std::memcpy(&da, &ip->dst_addr, 4);
      // TCP and UDP both start with source port, destination port.
      std::memcpy(&ports, at<uint8_t>(m, size_t(l3_off) + kIpv4Len), 4);
      static_assert(std::endian::native == std::endian::little);
      const uint64_t mapped = 0xffffull << 16;  // bytes 10, 11 of ::ffff:a.b.c.d
      static_assert(sizeof k == 5 * 8);
      store_key_word(k, 0, 0);
      store_key_word(k, 1, mapped | uint64_t(sa) << 32);
      store_key_word(k, 2, 0);
      store_key_word(k, 3, mapped | uint64_t(da) << 32);
      store_key_word(k, 4, uint64_t(ports) | uint64_t(proto) << 32);
      return true;
    }
  }
  return false;
}

class LocalIngress final {
 public:
  void process(WorkerCtx& ctx, Burst& b);

 private:
  bool answer_echo(WorkerCtx& ctx, rte_mbuf* m, const PacketInfo& info);
};

}  // namespace vanish::dp
