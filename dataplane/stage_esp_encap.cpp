#include "dataplane/stage_esp_encap.hpp"

#include <rte_udp.h>

#include "crypto/esp.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

void build_fabric_templates(WorkerCtx& ctx) {
  const Snapshot& s = *ctx.snap;
  ctx.tmpl.assign(s.nodes.size(), FabricTemplate{});
  ctx.solicit_tsc.assign(s.neighbours ? s.neighbours->size() : 0, 0);
  ctx.snap_generation = s.generation;
  const NodeInfo& self = s.self_node();
  for (size_t n = 0; n < s.nodes.size() && n < s.peer_tx.size(); n++) {
    const PeerTx& pt = s.peer_tx[n];
    if (!pt.reachable || ctx.id >= kMaxWorkers) continue;
    const NodeInfo& peer = s.nodes[n];
    FabricTemplate& t = ctx.tmpl[n];
    std::memset(t.bytes, 0, sizeof t.bytes);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(t.bytes);
    put_mac(&eth->dst_addr, peer.fabric_mac);
    put_mac(&eth->src_addr, self.fabric_mac);
    t.v6 = pt.outer_ipv6;
    rte_udp_hdr* udp;
    if (!t.v6) {
      eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
      auto* ip = reinterpret_cast<rte_ipv4_hdr*>(t.bytes + kEthLen);
      ip->version_ihl = RTE_IPV4_VHL_DEF;
      ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
      ip->time_to_live = 64;
      ip->next_proto_id = IPPROTO_UDP;
      std::memcpy(&ip->src_addr, self.fabric_v4.v4_bytes(), 4);
      std::memcpy(&ip->dst_addr, peer.fabric_v4.v4_bytes(), 4);
      udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
      t.len = kEthLen + kIpv4Len + kUdpLen;
    } else {
      eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
      auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(t.bytes + kEthLen);
      ip6->vtc_flow = rte_cpu_to_be_32(6u << 28);
      ip6->proto = IPPROTO_UDP;
      ip6->hop_limits = 64;
      std::memcpy(ip6->src_addr, self.fabric_v6.b.data(), 16);
      std::memcpy(ip6->dst_addr, peer.fabric_v6.b.data(), 16);
      udp = reinterpret_cast<rte_udp_hdr*>(ip6 + 1);
      t.len = kEthLen + kIpv6Len + kUdpLen;
    }
    udp->src_port = rte_cpu_to_be_16(pt.udp_sport[ctx.id]);
    udp->dst_port = rte_cpu_to_be_16(kEspInUdpPort);
    t.valid = true;
  }
}

void EspEncap::process(WorkerCtx& ctx, rte_mbuf** pkts, PacketInfo* info, uint16_t n) {
  const Snapshot& s = *ctx.snap;
  for (uint16_t i = 0; i < n; i++) {
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    rte_mbuf* m = pkts[i];
    const PacketInfo& pi = info[i];
    const FabricTemplate& t = ctx.tmpl[pi.node];
    crypto::EspSa* sa = s.peer_tx[pi.node].sa[ctx.id];
    if (!t.valid || !sa) {
      ctx.drop(m, DropReason::kNoSa);
      continue;
    }
    // Inner IP packet [l3_off, l3_off+ip_len): strip everything in front of it.
    rte_pktmbuf_adj(m, pi.l3_off);
    size_t inner_len = pi.ip_len;
    size_t esp_payload = kUdpLen + kGeneveLen + inner_len;
    size_t trailer = ((esp_payload + 2 + 3) & ~size_t(3)) - esp_payload + kEspIcvLen;
    size_t front = t.len + kEspHdrIvLen + kUdpLen + kGeneveLen;
    uint8_t* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, uint16_t(front)));
    if (!p || !rte_pktmbuf_append(m, uint16_t(trailer))) {
      ctx.drop(m, DropReason::kEncapNoRoom);
      continue;
    }
    p = rte_pktmbuf_mtod(m, uint8_t*);
    std::memcpy(p, t.bytes, t.len);
    uint8_t* esp = p + t.len;
    // Inner UDP to the Geneve port; the source port carries flow entropy (RFC 8926 §3.3).
    auto* iudp = reinterpret_cast<rte_udp_hdr*>(esp + kEspHdrIvLen);
    iudp->src_port = rte_cpu_to_be_16(pi.entropy);
    iudp->dst_port = rte_cpu_to_be_16(kGenevePort);
    iudp->dgram_len = rte_cpu_to_be_16(uint16_t(kUdpLen + kGeneveLen + inner_len));
    iudp->dgram_cksum = 0;  // integrity is ESP's job (RFC 8926 §3.3 zero checksum)
    auto* gh = reinterpret_cast<GeneveHdr*>(iudp + 1);
    gh->ver_optlen = uint8_t(sizeof(GeneveIdentityOpt) / 4);
    gh->flags = 0x40;  // C: a critical option is present
    gh->protocol = Be16::from_host(pi.is_v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4);
    gh->vni[0] = gh->vni[1] = gh->vni[2] = 0;
    gh->reserved = 0;
    auto* opt = reinterpret_cast<GeneveIdentityOpt*>(gh + 1);
    opt->hdr.opt_class = Be16::from_host(kGeneveOptClassVanish);
    opt->hdr.type = kGeneveOptTypeIdentity;
    opt->hdr.length = 1;
    opt->identity = Be32::from_host(pi.identity);

    crypto::EspStatus st;
    size_t esp_len = sa->seal(ctx.imb, esp, esp_payload, kIpProtoUdp, &st);
    if (esp_len == 0) {
      ctx.drop(m, st == crypto::EspStatus::kSeqExhausted ? DropReason::kSeqExhausted
                                                         : DropReason::kNoSa);
      continue;
    }
    if (!t.v6) {
      auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p + kEthLen);
      ip->total_length = rte_cpu_to_be_16(uint16_t(kIpv4Len + kUdpLen + esp_len));
      ip->hdr_checksum = rte_ipv4_cksum(ip);
      auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
      udp->dgram_len = rte_cpu_to_be_16(uint16_t(kUdpLen + esp_len));
      udp->dgram_cksum = 0;  // RFC 3948 §2.1: zero over IPv4
    } else {
      auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(p + kEthLen);
      ip6->payload_len = rte_cpu_to_be_16(uint16_t(kUdpLen + esp_len));
      auto* udp = reinterpret_cast<rte_udp_hdr*>(ip6 + 1);
      udp->dgram_len = ip6->payload_len;
      udp->dgram_cksum = 0;
      udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip6, udp);  // mandatory over IPv6
    }
    m->l2_len = kEthLen;
    ctx.ctr->encrypted++;
    ctx.send_fabric(m);
  }
}

}  // namespace vanish::dp
