#include "dataplane/stage_fabric_mtu.hpp"

#include "dataplane/icmp_error.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

bool FabricMtu::fragment_ipv4(WorkerCtx& ctx, const rte_mbuf* m, const PacketInfo& info,
                              size_t max_ip, FragBurst& frags) {
  const auto* ip = at<rte_ipv4_hdr>(m, info.l3_off);
  size_t ihl = (ip->version_ihl & 0xf) * 4u;
  size_t payload = info.ip_len - ihl;
  size_t chunk = ((max_ip - ihl) / 8) * 8;
  if (max_ip <= ihl + 8 || chunk == 0) return false;
  size_t count = (payload + chunk - 1) / chunk;
  if (frags.n + count > FragBurst::kCap) return false;
  uint16_t orig_frag = rte_be_to_cpu_16(ip->fragment_offset);
  uint16_t base_off = orig_frag & RTE_IPV4_HDR_OFFSET_MASK;  // a fragment may be re-fragmented
  bool orig_mf = orig_frag & RTE_IPV4_HDR_MF_FLAG;
  const uint8_t* src_payload = at<uint8_t>(m, info.l3_off + ihl);

  uint16_t first = frags.n;
  for (size_t f = 0; f < count; f++) {
    size_t off = f * chunk;
    size_t len = std::min(chunk, payload - off);
    rte_mbuf* r = rte_pktmbuf_alloc(ctx.pool);
    if (!r) {
      for (uint16_t j = first; j < frags.n; j++) rte_pktmbuf_free(frags.pkts[j]);
      frags.n = first;
      ctx.ctr->drop(DropReason::kNoMbuf);
      return false;
    }
    auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(r, uint16_t(info.l3_off + ihl + len)));
    if (!p) {
      rte_pktmbuf_free(r);
      for (uint16_t j = first; j < frags.n; j++) rte_pktmbuf_free(frags.pkts[j]);
      frags.n = first;
      return false;
    }
    std::memcpy(p, rte_pktmbuf_mtod(m, const uint8_t*), info.l3_off + ihl);
    std::memcpy(p + info.l3_off + ihl, src_payload + off, len);
    auto* fip = reinterpret_cast<rte_ipv4_hdr*>(p + info.l3_off);
    bool more = (f + 1 < count) || orig_mf;
    uint16_t fo = uint16_t(base_off + off / 8) | (more ? RTE_IPV4_HDR_MF_FLAG : 0);
    fip->fragment_offset = rte_cpu_to_be_16(fo);
    fip->total_length = rte_cpu_to_be_16(uint16_t(ihl + len));
    fip->hdr_checksum = 0;
    fip->hdr_checksum = rte_ipv4_cksum(fip);
    PacketInfo& fi = frags.info[frags.n];
    fi = info;
    fi.ip_len = uint16_t(ihl + len);
    fi.is_fragment = 1;
    if (f > 0 || base_off) fi.l4_off = 0;
    frags.pkts[frags.n++] = r;
  }
  ctx.ctr->fragments_made += count;
  return true;
}

void FabricMtu::process(WorkerCtx& ctx, Burst& b, FragBurst& frags) {
  const Snapshot& s = *ctx.snap;
  // Per burst: the largest inner packet for either outer family.
  const size_t max_inner_v4 = max_inner_len(false, s.fabric_mtu);
  const size_t max_inner_v6 = max_inner_len(true, s.fabric_mtu);
  uint16_t keep = 0;
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    // Fits whatever the outer family (the common case): no per-peer lookup.
    if (info.ip_len <= max_inner_v6) {
      if (keep != i) {
        b.pkts[keep] = m;
        b.info[keep] = info;
      }
      keep++;
      continue;
    }
    bool outer_v6 = s.peer_tx[info.node].outer_ipv6;
    size_t max_inner = outer_v6 ? max_inner_v6 : max_inner_v4;
    if (info.ip_len > max_inner) {
      const auto* ip = at<rte_ipv4_hdr>(m, info.l3_off);
      bool df = !info.is_v6 && (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG));
      if (info.is_v6 || df) {
        send_icmp_error(ctx, m, info, IcmpError::kTooBig, uint32_t(max_inner));
        ctx.drop(m, DropReason::kMtuExceeded);
      } else if (fragment_ipv4(ctx, m, info, max_inner, frags)) {
        rte_pktmbuf_free(m);
      } else {
        ctx.drop(m, DropReason::kFragFailed);
      }
      continue;
    }
    if (keep != i) {
      b.pkts[keep] = m;
      b.info[keep] = info;
    }
    keep++;
  }
  b.n = keep;
}

}  // namespace vanish::dp
