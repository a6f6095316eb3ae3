#include "dataplane/neighbour.hpp"

#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_ip.h>

#include "dataplane/pkt.hpp"

namespace vanish::dp {

namespace {

constexpr uint8_t kNdNs = 135, kNdNa = 136;
constexpr uint8_t kOptSrcLl = 1, kOptTgtLl = 2;

const WorkloadInfo* local_workload(const Snapshot& s, const IpAddr& ip) {
  const WorkloadInfo* w = s.workload(ip);
  return (w && w->node == s.self && w->neighbour_slot != kInvalidIdx) ? w : nullptr;
}

// Finds a link-layer address option of `type` in ND options [p, end).
bool find_ll_opt(const uint8_t* p, const uint8_t* end, uint8_t type, MacAddr* out) {
  while (p + 2 <= end) {
    size_t len = size_t(p[1]) * 8;
    if (len == 0 || p + len > end) return false;  // RFC 4861: length 0 -> invalid packet
    if (p[0] == type && len >= 8) {
      std::memcpy(out->b.data(), p + 2, 6);
      return true;
    }
    p += len;
  }
  return false;
}

}  // namespace

void learn_neighbour(WorkerCtx& ctx, const IpAddr& ip, const MacAddr& mac) {
  const WorkloadInfo* w = local_workload(*ctx.snap, ip);
  if (!w || mac.is_zero() || (mac.b[0] & 1)) return;
  if (ctx.snap->neighbours->learn(w->neighbour_slot, mac)) ctx.ctr->neighbours_learned++;
}

void handle_arp(WorkerCtx& ctx, rte_mbuf* m) {
  if (m->data_len < kEthLen + sizeof(rte_arp_hdr)) return ctx.drop(m, DropReason::kParseError);
  auto* eth = at<rte_ether_hdr>(m, 0);
  auto* arp = at<rte_arp_hdr>(m, kEthLen);
  if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || arp->arp_hlen != 6 ||
      arp->arp_plen != 4)
    return ctx.drop(m, DropReason::kParseError);
  const NodeInfo& self = ctx.snap->self_node();
  IpAddr sender = IpAddr::v4(reinterpret_cast<const uint8_t*>(&arp->arp_data.arp_sip));
  learn_neighbour(ctx, sender, get_mac(&arp->arp_data.arp_sha));

  IpAddr target = IpAddr::v4(reinterpret_cast<const uint8_t*>(&arp->arp_data.arp_tip));
  if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) || self.gateway_v4.is_unspecified() ||
      !(target == self.gateway_v4))
    return ctx.drop(m, DropReason::kArpIgnored);

  // Turn the request into the reply in place.
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  uint32_t tip = arp->arp_data.arp_tip;
  arp->arp_data.arp_tip = arp->arp_data.arp_sip;
  arp->arp_data.arp_sip = tip;
  put_mac(&arp->arp_data.arp_sha, self.local_mac);
  eth->dst_addr = eth->src_addr;
  put_mac(&eth->src_addr, self.local_mac);
  ctx.ctr->arp_replies++;
  ctx.send_local(m);
}

void handle_ndp(WorkerCtx& ctx, rte_mbuf* m, const PacketInfo& info) {
  auto* eth = at<rte_ether_hdr>(m, 0);
  auto* ip6 = at<rte_ipv6_hdr>(m, info.l3_off);
  size_t icmp_len = info.ip_len - (info.l4_off - info.l3_off);
  auto* icmp = at<uint8_t>(m, info.l4_off);
  // RFC 4861 §7.1: hop limit 255, code 0, at least 24 bytes.
  if (ip6->hop_limits != 255 || icmp[1] != 0 || icmp_len < 24)
    return ctx.drop(m, DropReason::kParseError);
  const uint8_t* target_p = icmp + 8;
  const uint8_t* opts = icmp + 24;
  const uint8_t* end = icmp + icmp_len;
  IpAddr target = IpAddr::v6(target_p);
  IpAddr src = IpAddr::v6(ip6->src_addr);
  const NodeInfo& self = ctx.snap->self_node();

  MacAddr ll;
  if (icmp[0] == kNdNa) {
    if (find_ll_opt(opts, end, kOptTgtLl, &ll)) learn_neighbour(ctx, target, ll);
    return ctx.drop(m, DropReason::kArpIgnored);
  }
  bool have_sll = find_ll_opt(opts, end, kOptSrcLl, &ll);
  if (have_sll) learn_neighbour(ctx, src, ll);
  if (self.gateway_v6.is_unspecified() || !(target == self.gateway_v6))
    return ctx.drop(m, DropReason::kArpIgnored);

  // Build the advertisement in place: NA (24) + target LL option (8).
  bool dad = src.is_unspecified();
  size_t na_len = 32;
  if (rte_pktmbuf_data_len(m) < info.l4_off + na_len &&
      !rte_pktmbuf_append(m, uint16_t(info.l4_off + na_len - rte_pktmbuf_data_len(m))))
    return ctx.drop(m, DropReason::kNoMbuf);
  rte_pktmbuf_trim(m, uint16_t(rte_pktmbuf_data_len(m) - (info.l4_off + na_len)));
  eth = at<rte_ether_hdr>(m, 0);
  ip6 = at<rte_ipv6_hdr>(m, info.l3_off);
  icmp = at<uint8_t>(m, info.l4_off);
  if (dad) {
    static const uint8_t all_nodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::memcpy(ip6->dst_addr, all_nodes, 16);
    uint8_t mc[6] = {0x33, 0x33, 0, 0, 0, 1};
    std::memcpy(eth->dst_addr.addr_bytes, mc, 6);
  } else {
    std::memcpy(ip6->dst_addr, ip6->src_addr, 16);
    eth->dst_addr = have_sll ? rte_ether_addr{} : eth->src_addr;
    if (have_sll) put_mac(&eth->dst_addr, ll);
  }
  put_mac(&eth->src_addr, self.local_mac);
  std::memcpy(ip6->src_addr, self.gateway_v6.b.data(), 16);
  ip6->payload_len = rte_cpu_to_be_16(uint16_t(na_len));
  ip6->hop_limits = 255;
  icmp[0] = kNdNa;
  icmp[1] = 0;
  icmp[2] = icmp[3] = 0;
  icmp[4] = dad ? 0xa0 : 0xe0;  // Router | Solicited (not for DAD) | Override
  icmp[5] = icmp[6] = icmp[7] = 0;
  std::memcpy(icmp + 8, self.gateway_v6.b.data(), 16);
  icmp[24] = kOptTgtLl;
  icmp[25] = 1;
  std::memcpy(icmp + 26, self.local_mac.b.data(), 6);
  uint16_t ck = rte_ipv6_udptcp_cksum(ip6, icmp);
  std::memcpy(icmp + 2, &ck, 2);
  ctx.ctr->nd_adverts++;
  ctx.send_local(m);
}

void solicit_neighbour(WorkerCtx& ctx, const IpAddr& target) {
  const NodeInfo& self = ctx.snap->self_node();
  bool v4 = target.is_v4();
  if (v4 ? self.gateway_v4.is_unspecified() : self.gateway_v6.is_unspecified()) return;
  rte_mbuf* r = rte_pktmbuf_alloc(ctx.pool);
  if (!r) return ctx.ctr->drop(DropReason::kNoMbuf);
  if (v4) {
    auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(r, kEthLen + sizeof(rte_arp_hdr)));
    if (!p) return rte_pktmbuf_free(r);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
    std::memset(eth->dst_addr.addr_bytes, 0xff, 6);
    put_mac(&eth->src_addr, self.local_mac);
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
    auto* arp = reinterpret_cast<rte_arp_hdr*>(p + kEthLen);
    arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
    arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    arp->arp_hlen = 6;
    arp->arp_plen = 4;
    arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
    put_mac(&arp->arp_data.arp_sha, self.local_mac);
    std::memcpy(&arp->arp_data.arp_sip, self.gateway_v4.v4_bytes(), 4);
    std::memset(&arp->arp_data.arp_tha, 0, 6);
    std::memcpy(&arp->arp_data.arp_tip, target.v4_bytes(), 4);
  } else {
    auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(r, kEthLen + kIpv6Len + 32));
    if (!p) return rte_pktmbuf_free(r);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
    const uint8_t* t = target.b.data();
    uint8_t mc[6] = {0x33, 0x33, 0xff, t[13], t[14], t[15]};
    std::memcpy(eth->dst_addr.addr_bytes, mc, 6);
    put_mac(&eth->src_addr, self.local_mac);
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
    auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(p + kEthLen);
    ip6->vtc_flow = rte_cpu_to_be_32(6u << 28);
    ip6->payload_len = rte_cpu_to_be_16(32);
    ip6->proto = IPPROTO_ICMPV6;
    ip6->hop_limits = 255;
    std::memcpy(ip6->src_addr, self.gateway_v6.b.data(), 16);
    uint8_t sn[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]};
    std::memcpy(ip6->dst_addr, sn, 16);
    uint8_t* icmp = p + kEthLen + kIpv6Len;
    std::memset(icmp, 0, 32);
    icmp[0] = kNdNs;
    std::memcpy(icmp + 8, t, 16);
    icmp[24] = kOptSrcLl;
    icmp[25] = 1;
    std::memcpy(icmp + 26, self.local_mac.b.data(), 6);
    uint16_t ck = rte_ipv6_udptcp_cksum(ip6, icmp);
    std::memcpy(icmp + 2, &ck, 2);
  }
  ctx.ctr->solicitations_sent++;
  ctx.send_local(r);
}

}  // namespace vanish::dp
