#include "dataplane/stage_esp_decap.hpp"

#include <rte_udp.h>

#include "crypto/esp.hpp"
#include "dataplane/pkt.hpp"
#include "dataplane/stage_local_ingress.hpp"

namespace vanish::dp {

namespace {

DropReason reason_for(crypto::EspStatus st) {
  switch (st) {
    case crypto::EspStatus::kReplay:
      return DropReason::kReplay;
    case crypto::EspStatus::kTooOld:
      return DropReason::kReplayTooOld;
    case crypto::EspStatus::kBadIcv:
      return DropReason::kBadIcv;
    case crypto::EspStatus::kBadPadding:
      return DropReason::kBadPadding;
    case crypto::EspStatus::kBadSpi:
      return DropReason::kUnknownSpi;
    default:
      return DropReason::kEspTruncated;
  }
}

}  // namespace

bool EspDecap::parse_geneve(const uint8_t* g, size_t geneve_len, uint32_t* identity,
                            uint16_t* protocol) {
  if (geneve_len < sizeof(GeneveHdr)) return false;
  auto* h = reinterpret_cast<const GeneveHdr*>(g);
  if ((h->ver_optlen >> 6) != 0) return false;  // version 0 only
  if (h->flags & 0x80) return false;  // O: a control message, never delivered (RFC 8926 §3.4)
  size_t opt_len = size_t(h->ver_optlen & 0x3f) * 4;
  if (sizeof(GeneveHdr) + opt_len > geneve_len) return false;
  *protocol = h->protocol.host();
  *identity = 0;
  const uint8_t* p = g + sizeof(GeneveHdr);
  const uint8_t* end = p + opt_len;
  while (p < end) {
    if (p + sizeof(GeneveOpt) > end) return false;
    GeneveOpt o;
    std::memcpy(&o, p, sizeof o);
    size_t data_len = size_t(o.length & 0x1f) * 4;
    if (p + sizeof(GeneveOpt) + data_len > end) return false;
    if (o.opt_class.host() == kGeneveOptClassVanish && o.type == kGeneveOptTypeIdentity &&
        data_len == 4) {
      Be32 id;
      std::memcpy(&id, p + sizeof(GeneveOpt), 4);
      *identity = id.host();
    } else if (o.type & 0x80) {
      return false;  // RFC 8926 §3.5.1: unknown critical option -> drop
    }
    p += sizeof(GeneveOpt) + data_len;
  }
  return true;
}

void EspDecap::process(WorkerCtx& ctx, Burst& b) {
  uint16_t keep = 0;
  for (uint16_t i = 0; i < b.n; i++) {
    if (ctx.lookahead) ctx.lookahead_step();  // another burst's flow lookup (inbound_pair)
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    uint8_t* esp = at<uint8_t>(m, info.esp_off);
    size_t payload_len = 0;
    uint8_t nh = 0;
    crypto::EspStatus st = info.sa->open(ctx.imb, esp, info.esp_len, &payload_len, &nh);
    if (st != crypto::EspStatus::kOk) {
      ctx.drop(m, reason_for(st));
      continue;
    }
    ctx.ctr->decrypted++;
    // Decrypted payload: UDP(6081) | Geneve | inner IP.
    const uint8_t* pl = esp + kEspHdrIvLen;
    if (nh != kIpProtoUdp || payload_len < kUdpLen + sizeof(GeneveHdr)) {
      ctx.drop(m, DropReason::kBadGeneve);
      continue;
    }
    auto* iudp = reinterpret_cast<const rte_udp_hdr*>(pl);
    size_t ulen = rte_be_to_cpu_16(iudp->dgram_len);
    if (iudp->dst_port != rte_cpu_to_be_16(kGenevePort) || ulen != payload_len) {
      ctx.drop(m, DropReason::kBadGeneve);
      continue;
    }
    uint32_t identity;
    uint16_t proto;
    const uint8_t* g = pl + kUdpLen;
    if (!parse_geneve(g, payload_len - kUdpLen, &identity, &proto) ||
        (proto != RTE_ETHER_TYPE_IPV4 && proto != RTE_ETHER_TYPE_IPV6)) {
      ctx.drop(m, DropReason::kBadGeneve);
      continue;
    }
    if (identity == 0) {
      ctx.drop(m, DropReason::kNoIdentity);
      continue;
    }
    size_t gen_len = sizeof(GeneveHdr) + size_t(g[0] & 0x3f) * 4;
    size_t inner_off = info.esp_off + kEspHdrIvLen + kUdpLen + gen_len;
    size_t inner_len = payload_len - kUdpLen - gen_len;
    // Keep only the inner IP packet: drop outer headers in front and the ESP trailer behind.
    rte_pktmbuf_adj(m, uint16_t(inner_off));
    rte_pktmbuf_trim(m, uint16_t(rte_pktmbuf_data_len(m) - inner_len));
    uint32_t peer = info.node;
    if (!parse_ip(m, 0, info) || info.ip_len != inner_len ||
        (info.is_v6 != (proto == RTE_ETHER_TYPE_IPV6))) {
      ctx.drop(m, DropReason::kParseError);
      continue;
    }
    info.identity = identity;
    info.node = peer;
    info.dst_workload = kInvalidIdx;  // InboundAuthorize resolves it with the source check
    info.key.zone = 1;
    if (keep != i) {
      b.pkts[keep] = m;
      b.info[keep] = info;
    }
    keep++;
  }
  b.n = keep;
}

}  // namespace vanish::dp
