#include "dataplane/stage_ttl.hpp"

#include "dataplane/icmp_error.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

void TtlDecrement::process(WorkerCtx& ctx, Burst& b) {
  uint16_t keep = 0;
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    bool expired;
    if (!info.is_v6) {
      auto* ip = at<rte_ipv4_hdr>(m, info.l3_off);
      expired = ip->time_to_live <= 1;
      if (!expired) ipv4_dec_ttl(ip);
    } else {
      auto* ip6 = at<rte_ipv6_hdr>(m, info.l3_off);
      expired = ip6->hop_limits <= 1;
      if (!expired) ip6->hop_limits--;
    }
    if (expired) {
      send_icmp_error(ctx, m, info, IcmpError::kTimeExceeded, 0);
      ctx.drop(m, DropReason::kTtlExpired);
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
