#include "dataplane/icmp_error.hpp"

#include <rte_icmp.h>
#include <rte_ip.h>

#include <algorithm>

#include "dataplane/flow_table.hpp"
#include "dataplane/nat.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

namespace {

bool is_icmp_error_v4(const rte_mbuf* m, const PacketInfo& info) {
  if (info.l4_proto != IPPROTO_ICMP || info.l4_off == 0) return false;
  if (m->data_len < info.l4_off + 1) return true;  // can't tell: be conservative
  uint8_t type = *at<uint8_t>(m, info.l4_off);
  return !(type == 0 || type == 8 || type == 13 || type == 14);  // only queries/replies may
}

bool is_icmp_error_v6(const rte_mbuf* m, const PacketInfo& info) {
  if (info.l4_proto != IPPROTO_ICMPV6 || info.l4_off == 0) return false;
  if (m->data_len < info.l4_off + 1) return true;
  return *at<uint8_t>(m, info.l4_off) < 128;
}

// The sender must recognise its own packet in the quote (RFC 1122 3.2.2, RFC 4443 2.4): the
// quote of a packet whose flow was NATed (classify rewrote it in place) gets its original address
// and port back, with the quoted checksums updated to match (nat.hpp), before the ICMP checksum
// is computed. The quote starts at quote_off in r and holds `quote` bytes.
void unnat_quote(const WorkerCtx& ctx, rte_mbuf* r, size_t quote_off, size_t quote,
                 const PacketInfo& info) {
  if (!ctx.flows || info.flow >= ctx.flows->capacity()) return;
  const NatKind nat = ctx.flows->entry(int32_t(info.flow)).nat;
  if (nat != NatKind::kDnat && nat != NatKind::kUnDnat) return;
  PacketInfo q = info;
  q.l3_off = uint16_t(quote_off);
  // The L4 part only when the quote holds its checksum (TCP: 18 bytes, UDP: 8).
  const size_t l4_rel = info.l4_off ? size_t(info.l4_off - info.l3_off) : 0;
  const size_t l4_need = info.l4_proto == IPPROTO_TCP ? 18 : 8;
  q.l4_off = l4_rel && l4_rel + l4_need <= quote ? uint16_t(quote_off + l4_rel) : 0;
  if (nat == NatKind::kDnat)
    nat_rewrite_dst(r, q, info.key.dst_ip(), info.key.dport);
  else
    nat_rewrite_src(r, q, info.key.src_ip(), info.key.sport);
}

}  // namespace

bool send_icmp_error(WorkerCtx& ctx, const rte_mbuf* m, const PacketInfo& info, IcmpError kind,
                     uint32_t mtu) {
  const NodeInfo& self = ctx.snap->self_node();
  const auto* eth = at<rte_ether_hdr>(m, 0);
  size_t avail = m->data_len - info.l3_off;
  size_t ip_len = std::min<size_t>(info.ip_len, avail);

  if (!info.is_v6) {
    const auto* ip = at<rte_ipv4_hdr>(m, info.l3_off);
    if (self.gateway_v4.is_unspecified()) return false;
    if (is_icmp_error_v4(m, info)) return false;
    if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) return false;
    uint32_t src = rte_be_to_cpu_32(ip->src_addr);
    if (src == 0 || (src >> 28) == 0xe || src == 0xffffffff) return false;
    if (!ctx.icmp_allowed()) return ctx.ctr->drop(DropReason::kIcmpRateLimited), false;

    size_t quote = std::min<size_t>(ip_len, 576 - 20 - 8);
    rte_mbuf* r = rte_pktmbuf_alloc(ctx.pool);
    if (!r) return ctx.ctr->drop(DropReason::kNoMbuf), false;
    size_t total = kEthLen + 20 + 8 + quote;
    auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(r, uint16_t(total)));
    if (!p) return rte_pktmbuf_free(r), false;
    auto* reth = reinterpret_cast<rte_ether_hdr*>(p);
    reth->dst_addr = eth->src_addr;
    put_mac(&reth->src_addr, self.local_mac);
    reth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    auto* rip = reinterpret_cast<rte_ipv4_hdr*>(p + kEthLen);
    std::memset(rip, 0, 20);
    rip->version_ihl = RTE_IPV4_VHL_DEF;
    rip->total_length = rte_cpu_to_be_16(uint16_t(20 + 8 + quote));
    rip->time_to_live = 64;
    rip->next_proto_id = IPPROTO_ICMP;
    std::memcpy(&rip->src_addr, self.gateway_v4.v4_bytes(), 4);
    rip->dst_addr = ip->src_addr;
    rip->hdr_checksum = rte_ipv4_cksum(rip);
    auto* icmp = reinterpret_cast<uint8_t*>(rip + 1);
    std::memset(icmp, 0, 8);
    if (kind == IcmpError::kTimeExceeded) {
      icmp[0] = 11;  // time exceeded, code 0: TTL exceeded in transit
    } else {
      icmp[0] = 3;  // destination unreachable
      icmp[1] = 4;  // fragmentation needed and DF set
      uint16_t nh_mtu = rte_cpu_to_be_16(uint16_t(std::min<uint32_t>(mtu, 0xffff)));
      std::memcpy(icmp + 6, &nh_mtu, 2);
    }
    std::memcpy(icmp + 8, ip, quote);
    unnat_quote(ctx, r, kEthLen + 20 + 8, quote, info);
    uint16_t ck = inet_cksum(icmp, 8 + quote);
    std::memcpy(icmp + 2, &ck, 2);
    ctx.send_local(r);
    ctx.ctr->icmp_errors_sent++;
    return true;
  }

  const auto* ip6 = at<rte_ipv6_hdr>(m, info.l3_off);
  if (self.gateway_v6.is_unspecified()) return false;
  if (is_icmp_error_v6(m, info)) return false;
  if (info.is_fragment && info.l4_off == 0) return false;
  if (ip6->src_addr[0] == 0xff) return false;
  static const uint8_t zero[16] = {};
  if (std::memcmp(ip6->src_addr, zero, 16) == 0) return false;
  if (!ctx.icmp_allowed()) return ctx.ctr->drop(DropReason::kIcmpRateLimited), false;

  size_t quote = std::min<size_t>(ip_len, 1280 - 40 - 8);
  rte_mbuf* r = rte_pktmbuf_alloc(ctx.pool);
  if (!r) return ctx.ctr->drop(DropReason::kNoMbuf), false;
  size_t total = kEthLen + 40 + 8 + quote;
  auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(r, uint16_t(total)));
  if (!p) return rte_pktmbuf_free(r), false;
  auto* reth = reinterpret_cast<rte_ether_hdr*>(p);
  reth->dst_addr = eth->src_addr;
  put_mac(&reth->src_addr, self.local_mac);
  reth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6);
  auto* rip = reinterpret_cast<rte_ipv6_hdr*>(p + kEthLen);
  rip->vtc_flow = rte_cpu_to_be_32(6u << 28);
  rip->payload_len = rte_cpu_to_be_16(uint16_t(8 + quote));
  rip->proto = IPPROTO_ICMPV6;
  rip->hop_limits = 64;
  std::memcpy(rip->src_addr, self.gateway_v6.b.data(), 16);
  std::memcpy(rip->dst_addr, ip6->src_addr, 16);
  auto* icmp = reinterpret_cast<uint8_t*>(rip + 1);
  std::memset(icmp, 0, 8);
  if (kind == IcmpError::kTimeExceeded) {
    icmp[0] = 3;  // time exceeded, code 0: hop limit exceeded in transit
  } else {
    icmp[0] = 2;  // packet too big
    uint32_t m32 = rte_cpu_to_be_32(std::max<uint32_t>(mtu, 1280));
    std::memcpy(icmp + 4, &m32, 4);
  }
  std::memcpy(icmp + 8, ip6, quote);
  unnat_quote(ctx, r, kEthLen + 40 + 8, quote, info);
  uint16_t ck = rte_ipv6_udptcp_cksum(rip, icmp);
  std::memcpy(icmp + 2, &ck, 2);
  ctx.send_local(r);
  ctx.ctr->icmp_errors_sent++;
  return true;
}

}  // namespace vanish::dp
