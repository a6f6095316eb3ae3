#include "dataplane/stage_fabric_ingress.hpp"

#include <rte_udp.h>

#include "dataplane/pkt.hpp"

namespace vanish::dp {

void FabricIngress::process(WorkerCtx& ctx, Burst& b, bool from_handoff) {
  const Snapshot& s = *ctx.snap;
  const NodeInfo& self = s.self_node();
  uint16_t keep = 0;
  // The last SPI's SA: a burst mostly comes from one or a few peers' SAs.
  uint32_t last_spi = 0;  // never valid (RFC 4303 §2.1: SPI 0 is reserved)
  const InboundSa* last_in = nullptr;
  uint64_t rx_bytes = 0;                         // added to the counters once per burst
  if (!from_handoff) ctx.ctr->fabric_rx += b.n;  // counted by the worker that received them
  for (uint16_t i = 0; i < b.n; i++) {
    if (i + 1 < b.n) rte_prefetch0(rte_pktmbuf_mtod(b.pkts[i + 1], void*));
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    rx_bytes += rte_pktmbuf_pkt_len(m);
    size_t len = rte_pktmbuf_data_len(m);
    if (m->nb_segs != 1 || len < kEthLen + kIpv4Len + kUdpLen) {
      ctx.drop(m, m->nb_segs != 1 ? DropReason::kEncapNoRoom : DropReason::kParseError);
      continue;
    }
    auto* eth = at<rte_ether_hdr>(m, 0);
    if (!(get_mac(&eth->dst_addr) == self.fabric_mac)) {
      ctx.drop(m, DropReason::kNotForUs);
      continue;
    }
    uint16_t et = rte_be_to_cpu_16(eth->ether_type);
    size_t udp_off, ip_end;
    if (et == RTE_ETHER_TYPE_IPV4) {
      auto* ip = at<rte_ipv4_hdr>(m, kEthLen);
      size_t ihl = (ip->version_ihl & 0xf) * 4u;
      uint16_t tot = rte_be_to_cpu_16(ip->total_length);
      if ((ip->version_ihl >> 4) != 4 || ihl < 20 || tot < ihl + kUdpLen || kEthLen + tot > len) {
        ctx.drop(m, DropReason::kParseError);
        continue;
      }
      // RFC 1122 3.2.1.2: every received IPv4 header's checksum is verified (ESP's ICV does not
      // cover the outer header; a corrupted address must not pick an SA or the egress path).
      if (!ipv4_header_checksum_ok(m, kEthLen, unsigned(ihl))) {
        ctx.drop(m, DropReason::kBadIpChecksum);
        continue;
      }
      if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
        ctx.drop(m, DropReason::kOuterFragment);
        continue;
      }
      if (std::memcmp(&ip->dst_addr, self.fabric_v4.v4_bytes(), 4) != 0 ||
          self.fabric_v4.is_unspecified()) {
        if (s.egress) {  // maybe a reply from outside the mesh: EgressForward::receive
          info.action = FlowAction::kEgress;
          b.keep(i, keep);
          continue;
        }
        ctx.drop(m, DropReason::kNotForUs);
        continue;
      }
      if (ip->next_proto_id != IPPROTO_UDP) {
        ctx.drop(m, DropReason::kNotEsp);
        continue;
      }
      udp_off = kEthLen + ihl;
      ip_end = kEthLen + tot;
    } else if (et == RTE_ETHER_TYPE_IPV6) {
      if (len < kEthLen + kIpv6Len + kUdpLen) {
        ctx.drop(m, DropReason::kParseError);
        continue;
      }
      auto* ip6 = at<rte_ipv6_hdr>(m, kEthLen);
      uint16_t plen = rte_be_to_cpu_16(ip6->payload_len);
      if ((rte_be_to_cpu_32(ip6->vtc_flow) >> 28) != 6 || kEthLen + kIpv6Len + plen > len) {
        ctx.drop(m, DropReason::kParseError);
        continue;
      }
      if (std::memcmp(ip6->dst_addr, self.fabric_v6.b.data(), 16) != 0 ||
          self.fabric_v6.is_unspecified()) {
        if (s.egress) {  // maybe a reply from outside the mesh: EgressForward::receive
          info.action = FlowAction::kEgress;
          b.keep(i, keep);
          continue;
        }
        ctx.drop(m, DropReason::kNotForUs);
        continue;
      }
      if (ip6->proto == IPPROTO_FRAGMENT) {
        ctx.drop(m, DropReason::kOuterFragment);
        continue;
      }
      if (ip6->proto != IPPROTO_UDP) {
        ctx.drop(m, DropReason::kNotEsp);
        continue;
      }
      udp_off = kEthLen + kIpv6Len;
      ip_end = kEthLen + kIpv6Len + plen;
    } else {
      ctx.drop(m, DropReason::kNotEsp);
      continue;
    }
    auto* udp = at<rte_udp_hdr>(m, udp_off);
    size_t ulen = rte_be_to_cpu_16(udp->dgram_len);
    if (udp->dst_port != rte_cpu_to_be_16(kEspInUdpPort) || ulen < kUdpLen ||
        udp_off + ulen > ip_end) {
      ctx.drop(m, ulen < kUdpLen || udp_off + ulen > ip_end ? DropReason::kParseError
                                                            : DropReason::kNotEsp);
      continue;
    }
    size_t esp_off = udp_off + kUdpLen;
    size_t esp_len = ulen - kUdpLen;
    // RFC 3948: a 1-byte 0xFF payload is a NAT keepalive; a zero SPI marks IKE (non-ESP).
    if (esp_len < 8) {
      ctx.drop(m, esp_len == 1 ? DropReason::kNotEsp : DropReason::kEspTruncated);
      continue;
    }
    uint32_t spi;  // at offset 42 (IPv4) / 62 (IPv6): not 4-byte aligned
    std::memcpy(&spi, at<uint8_t>(m, esp_off), 4);
    spi = rte_be_to_cpu_32(spi);
    if (spi == 0) {
      ctx.drop(m, DropReason::kNotEsp);
      continue;
    }
    if (spi != last_spi) {
      last_spi = spi;
      last_in = s.sa_in.find(spi);
    }
    const InboundSa* in = last_in;
    if (!in) {
      ctx.drop(m, DropReason::kUnknownSpi);
      continue;
    }
    if (in->owner_worker != ctx.id && in->owner_worker < ctx.n_handoff) {
      if (rte_ring_enqueue(ctx.handoff[in->owner_worker], m) != 0) {
        ctx.drop(m, DropReason::kHandoffFull);
      } else {
        ctx.ctr->handoff_out++;
      }
      continue;
    }
    info.action = FlowAction::kDrop;  // not an egress reply
    info.sa = in->sa;
    info.node = in->peer.value;
    info.esp_off = uint16_t(esp_off);
    info.esp_len = uint16_t(esp_len);
    if (keep != i) {
      b.pkts[keep] = m;
      b.info[keep] = info;
    }
    keep++;
  }
  if (!from_handoff) ctx.ctr->fabric_rx_bytes += rx_bytes;
  b.n = keep;
}

}  // namespace vanish::dp
