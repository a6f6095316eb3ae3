#include "dataplane/stage_esp_encap.hpp"

#include <immintrin.h>
#include <rte_udp.h>

#include <bit>

#include "crypto/esp.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

namespace {

// The 24 bytes in front of the inner IP packet at `text` (the start of the ESP payload): inner
// UDP to the Geneve port (its source port carries flow entropy, RFC 8926 §3.3; zero checksum,
// integrity is ESP's job), the Geneve header (C flag: a critical option follows) and the
// identity option. Requires 64 readable and writable bytes at `text`: the frame always has them
// (an inner packet of at least 20 bytes plus its ESP padding, pad length, next header and ICV).
//
// Written as whole vectors the size of the cipher's first loads (64 bytes with AVX-512, else two
// 16-byte halves), merged with the inner packet bytes that follow: AES-GCM reads this region
// right after, and a wide load that spans several narrower pending stores cannot be forwarded
// from the store buffer; it waits for them to reach L1 (measured: 4-5 % of the whole outbound
// pipeline at 512-1420 B with field-by-field stores).
inline void write_inner_headers(uint8_t* text, uint16_t entropy, uint16_t udp_len, bool inner_v6,
                                uint32_t identity) {
  static_assert(kUdpLen + kGeneveLen == 24 && sizeof(GeneveIdentityOpt) == 8);
  const uint64_t udp = uint64_t(rte_cpu_to_be_16(entropy)) |
                       uint64_t(rte_cpu_to_be_16(kGenevePort)) << 16 |
                       uint64_t(rte_cpu_to_be_16(udp_len)) << 32;  // checksum 0
  const uint16_t proto = inner_v6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4;
  // ver 0 | opt len (words) ; flags: C ; protocol ; VNI 0 ; reserved 0
  const uint64_t geneve = uint64_t(sizeof(GeneveIdentityOpt) / 4) | uint64_t(0x40) << 8 |
                          uint64_t(rte_cpu_to_be_16(proto)) << 16;
  // class ; type ; reserved 0 | length 1 word ; identity
  const uint64_t opt = uint64_t(rte_cpu_to_be_16(kGeneveOptClassVanish)) |
                       uint64_t(kGeneveOptTypeIdentity) << 16 | uint64_t(1) << 24 |
                       uint64_t(rte_cpu_to_be_32(identity)) << 32;
  static_assert(std::endian::native == std::endian::little);
#if defined(__AVX512F__)
  const __m512i hdr = _mm512_set_epi64(0, 0, 0, 0, 0, int64_t(opt), int64_t(geneve), int64_t(udp));
  _mm512_storeu_si512(text, _mm512_mask_blend_epi64(0x07, _mm512_loadu_si512(text), hdr));
#else
  _mm_storeu_si128(reinterpret_cast<__m128i*>(text), _mm_set_epi64x(int64_t(geneve), int64_t(udp)));
  const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(text + 16));
  _mm_storeu_si128(
      reinterpret_cast<__m128i*>(text + 16),
      _mm_unpacklo_epi64(_mm_cvtsi64_si128(int64_t(opt)), _mm_unpackhi_epi64(next, next)));
#endif
}

}  // namespace

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
      // Unfolded sum of the header words with total_length and hdr_checksum still 0.
      t.ip4_sum = 0;
      for (size_t k = 0; k < kIpv4Len; k += 2) {
        uint16_t w;
        std::memcpy(&w, t.bytes + kEthLen + k, 2);
        t.ip4_sum += w;
      }
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
  // The last (template, SA) pair: a burst mostly goes to one or a few peers.
  uint32_t last_node = UINT32_MAX;
  const FabricTemplate* t = nullptr;
  crypto::EspSa* sa = nullptr;
  for (uint16_t i = 0; i < n; i++) {
    if (i + 1 < n) {
      // The encapsulation is written into the headroom in front of the next packet's data.
      auto* d = rte_pktmbuf_mtod(pkts[i + 1], uint8_t*);
      rte_prefetch0(d);
      rte_prefetch0(d - RTE_CACHE_LINE_SIZE);
    }
    if (ctx.lookahead) ctx.lookahead_step();  // another burst's flow lookup (outbound_run)
    rte_mbuf* m = pkts[i];
    const PacketInfo& pi = info[i];
    if (pi.node != last_node) {
      last_node = pi.node;
      t = &ctx.tmpl[pi.node];
      sa = t->valid ? s.peer_tx[pi.node].sa[ctx.id] : nullptr;
    }
    if (!sa) {
      ctx.drop(m, DropReason::kNoSa);
      continue;
    }
    // Inner IP packet [l3_off, l3_off+ip_len) (single segment, trimmed by LocalIngress): replace
    // everything in front of it by the encapsulation and append the ESP trailer room, in one
    // adjustment of the mbuf (what rte_pktmbuf_adj + prepend + append would do).
    size_t inner_len = pi.ip_len;
    size_t esp_payload = kUdpLen + kGeneveLen + inner_len;
    size_t trailer = ((esp_payload + 2 + 3) & ~size_t(3)) - esp_payload + kEspIcvLen;
    size_t front = t->len + kEspHdrIvLen + kUdpLen + kGeneveLen;
    size_t data_off = size_t(m->data_off) + pi.l3_off;  // where the inner IP header starts
    size_t new_len = front + size_t(m->data_len) - pi.l3_off + trailer;
    if (data_off < front || data_off - front + new_len > m->buf_len) {
      ctx.drop(m, DropReason::kEncapNoRoom);
      continue;
    }
    m->data_off = uint16_t(data_off - front);
    m->data_len = uint16_t(new_len);
    m->pkt_len = uint32_t(new_len);
    uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* esp = p + t->len;
    // The inner UDP/Geneve headers first, then the outer template in front of the ESP header
    // (two 32-byte moves over [0, t->len), which never reach the ESP payload).
    write_inner_headers(esp + kEspHdrIvLen, pi.entropy, uint16_t(kUdpLen + kGeneveLen + inner_len),
                        pi.is_v6, pi.identity);
    static_assert(sizeof(t->bytes) == 64 && kEthLen + kIpv4Len + kUdpLen >= 32);
    std::memcpy(p, t->bytes, 32);
    std::memcpy(p + t->len - 32, t->bytes + t->len - 32, 32);

    crypto::EspStatus st;
    size_t esp_len = sa->seal(ctx.imb, esp, esp_payload, kIpProtoUdp, &st);
    if (esp_len == 0) {
      ctx.drop(m, st == crypto::EspStatus::kSeqExhausted ? DropReason::kSeqExhausted
                                                         : DropReason::kNoSa);
      continue;
    }
    if (!t->v6) {
      auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p + kEthLen);
      uint16_t tot = rte_cpu_to_be_16(uint16_t(kIpv4Len + kUdpLen + esp_len));
      ip->total_length = tot;
      // The template's header sum plus the one field that varies (== rte_ipv4_cksum(ip)).
      uint32_t sum = t->ip4_sum + tot;
      sum = (sum & 0xffff) + (sum >> 16);
      sum = (sum & 0xffff) + (sum >> 16);
      ip->hdr_checksum = uint16_t(~sum);
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
