#include "dataplane/stage_local_deliver.hpp"

#include "dataplane/neighbour.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

void LocalDeliver::process(WorkerCtx& ctx, Burst& b, bool hairpin) {
  const Snapshot& s = *ctx.snap;
  const NodeInfo& self = s.self_node();
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    const PacketInfo& info = b.info[i];
    const WorkloadInfo& w = s.workloads[info.dst_workload];
    MacAddr mac;
    if (!s.neighbours->get(w.neighbour_slot, &mac)) {
      uint64_t& last = ctx.solicit_tsc[w.neighbour_slot];
      if (last == 0 || ctx.now - last > ctx.tsc_hz / 10) {
        last = ctx.now ? ctx.now : 1;
        // The workload's own address of the packet's family: the packet's destination may be a
        // service VIP (DNAT rewrote the header, not the key) or a destination behind a waypoint.
        IpAddr target = info.key.dst_ip();
        for (const IpAddr& a : s.workload_meta[info.dst_workload].addresses)
          if (a.is_v4() != bool(info.is_v6)) {
            target = a;
            break;
          }
        solicit_neighbour(ctx, target);
      }
      ctx.drop(m, DropReason::kNeighbourMiss);
      continue;
    }
    if (!put_ether_before_l3(m, info.l3_off, mac, self.local_mac, info.is_v6)) {
      ctx.drop(m, DropReason::kEncapNoRoom);
      continue;
    }
    if (hairpin) {
      ctx.ctr->hairpinned++;
    } else {
      ctx.ctr->delivered++;
    }
    ctx.send_local(m);
  }
  b.n = 0;
}

}  // namespace vanish::dp
