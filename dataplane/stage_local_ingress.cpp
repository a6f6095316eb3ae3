#include "dataplane/stage_local_ingress.hpp"

#include <bit>

#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "dataplane/neighbour.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

bool parse_ip(const rte_mbuf* m, uint16_t l3_off, PacketInfo& info) {
  size_t len = rte_pktmbuf_data_len(m);
  FlowKey& k = info.key;
  if (parse_ipv4_fast(m, l3_off, info)) return true;
  if (len < size_t(l3_off) + 1) return false;
  uint8_t ver = *at<uint8_t>(m, l3_off) >> 4;
  std::memset(&k, 0, sizeof k);
  info.l3_off = l3_off;
  info.is_fragment = 0;
  uint16_t l4 = 0;
  uint8_t proto;
  if (ver == 4) {
    if (len < size_t(l3_off) + 20) return false;
    const auto* ip = at<rte_ipv4_hdr>(m, l3_off);
    unsigned ihl = (ip->version_ihl & 0xf) * 4u;
    uint16_t tot = rte_be_to_cpu_16(ip->total_length);
    if (ihl < 20 || tot < ihl || size_t(l3_off) + tot > len) return false;
    info.is_v6 = 0;
    info.ip_len = tot;
    proto = ip->next_proto_id;
    uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
    bool more = frag & RTE_IPV4_HDR_MF_FLAG;
    uint16_t off = frag & RTE_IPV4_HDR_OFFSET_MASK;
    info.is_fragment = (more || off) ? 1 : 0;
    l4 = off ? 0 : uint16_t(l3_off + ihl);
    k.src[10] = k.src[11] = k.dst[10] = k.dst[11] = 0xff;
    std::memcpy(&k.src[12], &ip->src_addr, 4);
    std::memcpy(&k.dst[12], &ip->dst_addr, 4);
  } else if (ver == 6) {
    if (len < size_t(l3_off) + 40) return false;
    const auto* ip6 = at<rte_ipv6_hdr>(m, l3_off);
    uint16_t plen = rte_be_to_cpu_16(ip6->payload_len);
    if (size_t(l3_off) + 40 + plen > len) return false;
    info.is_v6 = 1;
    info.ip_len = uint16_t(40 + plen);
    proto = ip6->proto;
    l4 = uint16_t(l3_off + 40);
    // Walk the extension headers we can skip (hop-by-hop, routing, destination options, fragment).
    for (int hops = 0; hops < 8; hops++) {
      if (proto == IPPROTO_HOPOPTS || proto == IPPROTO_ROUTING || proto == IPPROTO_DSTOPTS) {
        if (size_t(l4) + 8 > size_t(l3_off) + info.ip_len) return false;
        const uint8_t* e = at<uint8_t>(m, l4);
        proto = e[0];
        l4 = uint16_t(l4 + (e[1] + 1) * 8);
      } else if (proto == IPPROTO_FRAGMENT) {
        if (size_t(l4) + 8 > size_t(l3_off) + info.ip_len) return false;
        const uint8_t* e = at<uint8_t>(m, l4);
        proto = e[0];
        uint16_t fo = uint16_t((e[2] << 8 | e[3]));
        info.is_fragment = 1;
        l4 = uint16_t(l4 + 8);
        if (fo & 0xfff8) {  // non-first fragment: no L4 header here
          l4 = 0;
          break;
        }
      } else {
        break;
      }
    }
    if (l4 && l4 > l3_off + info.ip_len) return false;
    std::memcpy(k.src, ip6->src_addr, 16);
    std::memcpy(k.dst, ip6->dst_addr, 16);
  } else {
    return false;
  }
  info.l4_proto = proto;
  info.l4_off = l4;
  k.proto = proto;
  if (!l4) return true;
  size_t l4_room = size_t(l3_off) + info.ip_len - l4;
  switch (proto) {
    case IPPROTO_TCP:
      if (l4_room < 20) return false;
      k.sport = at<rte_tcp_hdr>(m, l4)->src_port;
      k.dport = at<rte_tcp_hdr>(m, l4)->dst_port;
      break;
    case IPPROTO_UDP:
      if (l4_room < 8) return false;
      k.sport = at<rte_udp_hdr>(m, l4)->src_port;
      k.dport = at<rte_udp_hdr>(m, l4)->dst_port;
      break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      if (l4_room < 8) return false;
      const uint8_t* ic = at<uint8_t>(m, l4);
      bool echo = ic[0] == 8 || ic[0] == 0 || ic[0] == 128 || ic[0] == 129;
      if (echo) std::memcpy(&k.sport, ic + 4, 2);  // identifier: both directions share it
      break;
    }
    default:
      break;
  }
  return true;
}

namespace {

// Drops Ethernet padding beyond the IP packet (ip_len bytes after the Ethernet header).
inline void trim_to_ip(rte_mbuf* m, uint16_t ip_len) {
  const uint32_t want = kEthLen + ip_len;
  if (rte_pktmbuf_data_len(m) > want) rte_pktmbuf_trim(m, uint16_t(rte_pktmbuf_data_len(m) - want));
}

}  // namespace

bool LocalIngress::answer_echo(WorkerCtx& ctx, rte_mbuf* m, const PacketInfo& info) {
  const NodeInfo& self = ctx.snap->self_node();
  IpAddr dst = info.key.dst_ip();
  if (!(dst == self.gateway_v4 || dst == self.gateway_v6) || info.l4_off == 0) return false;
  uint8_t* ic = at<uint8_t>(m, info.l4_off);
  auto* eth = at<rte_ether_hdr>(m, 0);
  if (!info.is_v6) {
    if (info.l4_proto != IPPROTO_ICMP || ic[0] != 8 || info.is_fragment) return false;
    auto* ip = at<rte_ipv4_hdr>(m, info.l3_off);
    uint32_t a = ip->src_addr;
    ip->src_addr = ip->dst_addr;
    ip->dst_addr = a;
    ip->time_to_live = 64;
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    ic[0] = 0;
    ic[2] = ic[3] = 0;
    uint16_t ck = inet_cksum(ic, info.ip_len - (info.l4_off - info.l3_off));
    std::memcpy(ic + 2, &ck, 2);
  } else {
    if (info.l4_proto != IPPROTO_ICMPV6 || ic[0] != 128 || info.is_fragment) return false;
    auto* ip6 = at<rte_ipv6_hdr>(m, info.l3_off);
    std::memcpy(ip6->dst_addr, ip6->src_addr, 16);
    std::memcpy(ip6->src_addr, self.gateway_v6.b.data(), 16);
    ip6->hop_limits = 64;
    ic[0] = 129;
    ic[2] = ic[3] = 0;
    // Over the ICMPv6 message only: extension headers may precede it (RFC 8200 §8.1 pseudo-header
    // with the upper-layer length and next header 58).
    uint32_t icmp_len = uint32_t(info.ip_len - (info.l4_off - info.l3_off));
    uint32_t ph[2] = {rte_cpu_to_be_32(icmp_len), rte_cpu_to_be_32(IPPROTO_ICMPV6)};
    uint32_t sum = uint32_t(rte_raw_cksum(ip6->src_addr, 16)) + rte_raw_cksum(ip6->dst_addr, 16) +
                   rte_raw_cksum(ph, sizeof ph) + rte_raw_cksum(ic, icmp_len);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    uint16_t ck = uint16_t(~sum);
    std::memcpy(ic + 2, &ck, 2);
  }
  eth->dst_addr = eth->src_addr;
  put_mac(&eth->src_addr, self.local_mac);
  ctx.ctr->drop(DropReason::kEchoReplied);  // counted as consumed, not forwarded
  ctx.send_local(m);
  return true;
}

void LocalIngress::process(WorkerCtx& ctx, Burst& b) {
  const NodeInfo& self = ctx.snap->self_node();
  uint16_t keep = 0;
  uint64_t rx_bytes = 0;  // added to the counters once per burst
  ctx.ctr->local_rx += b.n;
  for (uint16_t i = 0; i < b.n; i++) {
    if (i + 1 < b.n) rte_prefetch0(rte_pktmbuf_mtod(b.pkts[i + 1], void*));
    rte_mbuf* m = b.pkts[i];
    rx_bytes += rte_pktmbuf_pkt_len(m);
    if (m->nb_segs != 1 || rte_pktmbuf_data_len(m) < kEthLen) {
      ctx.drop(m, m->nb_segs != 1 ? DropReason::kEncapNoRoom : DropReason::kParseError);
      continue;
    }
    auto* eth = at<rte_ether_hdr>(m, 0);
    uint16_t et = rte_be_to_cpu_16(eth->ether_type);
    if (et == RTE_ETHER_TYPE_ARP) {
      handle_arp(ctx, m);
      continue;
    }
    if (et != RTE_ETHER_TYPE_IPV4 && et != RTE_ETHER_TYPE_IPV6) {
      ctx.drop(m, DropReason::kUnsupportedL2);
      continue;
    }
    PacketInfo& info = b.info[i];
    // The common case (IPv4 TCP/UDP, no options, not a fragment): checksum, MAC, trim, keep. No
    // ICMP or Neighbor Discovery to answer, and the version agrees with the ethertype.
    if (et == RTE_ETHER_TYPE_IPV4 && parse_ipv4_fast(m, kEthLen, info)) {
      if (!ipv4_header_checksum_ok(m, kEthLen, kIpv4Len)) {
        ctx.drop(m, DropReason::kBadIpChecksum);
        continue;
      }
      if (!(get_mac(&eth->dst_addr) == self.local_mac)) {
        ctx.drop(m, DropReason::kNotForUs);
        continue;
      }
      trim_to_ip(m, info.ip_len);
      b.keep(i, keep);
      continue;
    }
    // The IP version must agree with the ethertype (parse_ip goes by the version nibble).
    if (!parse_ip(m, kEthLen, info) || info.is_v6 != (et == RTE_ETHER_TYPE_IPV6)) {
      ctx.drop(m, DropReason::kParseError);
      continue;
    }
    // A router verifies the IPv4 header checksum (RFC 1812 5.2.2): a corrupted header must not
    // be classified, authorized and encrypted. The port's verdict when it checked, else ours
    // (virtual ports: 20 bytes summed, about 2 ns).
    if (!info.is_v6 && !ipv4_header_checksum_ok(
                           m, kEthLen, (at<rte_ipv4_hdr>(m, kEthLen)->version_ihl & 0xfu) * 4u)) {
      ctx.drop(m, DropReason::kBadIpChecksum);
      continue;
    }
    // Neighbor Discovery goes to multicast MACs: handle before the unicast-MAC check.
    if (info.is_v6 && info.l4_proto == IPPROTO_ICMPV6 && info.l4_off) {
      uint8_t t = *at<uint8_t>(m, info.l4_off);
      if (t == 135 || t == 136) {
        handle_ndp(ctx, m, info);
        continue;
      }
    }
    if (!(get_mac(&eth->dst_addr) == self.local_mac)) {
      ctx.drop(m, DropReason::kNotForUs);
      continue;
    }
    trim_to_ip(m, info.ip_len);
    if ((info.l4_proto == IPPROTO_ICMP || info.l4_proto == IPPROTO_ICMPV6) &&
        answer_echo(ctx, m, info))
      continue;
    b.keep(i, keep);
  }
  ctx.ctr->local_rx_bytes += rx_bytes;
  b.n = keep;
}

}  // namespace vanish::dp
