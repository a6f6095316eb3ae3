#include "dataplane/stage_classify.hpp"

#include <rte_hash_crc.h>

#include "dataplane/neighbour.hpp"
#include "dataplane/pkt.hpp"

namespace vanish::dp {

void OutboundClassify::classify(const Snapshot& s, const FlowKey& key, FlowEntry& e) {
  e.generation = s.generation;
  e.action = FlowAction::kDrop;
  e.src_workload = e.dst_workload = kInvalidIdx;
  e.node = kInvalidIdx;
  e.identity = 0;
  const uint32_t* src = s.workload_by_ip.find(key.src_ip());
  if (!src || !(s.workloads[*src].node == s.self)) {
    e.drop_reason = uint8_t(DropReason::kUnknownSource);
    return;
  }
  const WorkloadInfo& sw = s.workloads[*src];
  e.src_workload = *src;
  e.identity = sw.identity.value;
  const uint32_t* dst = s.workload_by_ip.find(key.dst_ip());
  if (!dst) {
    e.drop_reason = uint8_t(DropReason::kNoRoute);
    return;
  }
  const WorkloadInfo& dw = s.workloads[*dst];
  e.dst_workload = *dst;
  e.node = dw.node.value;
  if (dw.node == s.self) {
    e.action = FlowAction::kHairpin;
    return;
  }
  if (dw.node.value >= s.peer_tx.size() || !s.peer_tx[dw.node.value].reachable) {
    e.drop_reason = uint8_t(DropReason::kNoSa);  // fail closed: never plaintext to the fabric
    return;
  }
  e.action = FlowAction::kEncrypt;
}

void OutboundClassify::process(WorkerCtx& ctx, Burst& b) {
  const Snapshot& s = *ctx.snap;
  const FlowKey* keys[kBurstSize];
  int32_t idx[kBurstSize];
  for (uint16_t i = 0; i < b.n; i++) keys[i] = &b.info[i].key;
  ctx.flows->lookup_bulk(keys, b.n, idx);

  uint16_t keep = 0;
  uint64_t hits = 0;  // added to the counters once per burst
  bool inserted = false;  // a miss earlier in this burst may have created this packet's flow
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    PacketInfo& info = b.info[i];
    int32_t fi = idx[i];
    if (fi < 0 && inserted) fi = ctx.flows->lookup(info.key);
    if (fi < 0) {
      inserted = true;
      ctx.ctr->flow_misses++;
      fi = ctx.flows->insert(info.key);
      if (fi < 0) {
        ctx.drop(m, DropReason::kFlowTableFull);
        continue;
      }
      FlowEntry& e = ctx.flows->entry(fi);
      e = FlowEntry{};
      e.created_tsc = ctx.now;
      e.entropy = uint16_t(0xC000 | (rte_hash_crc(&info.key, sizeof(FlowKey), 0) & 0x3fff));
      classify(s, info.key, e);
      ctx.ctr->flows_created++;
      // A new flow from a local workload refreshes its MAC in the neighbour table.
      if (e.src_workload != kInvalidIdx)
        learn_neighbour(ctx, info.key.src_ip(), get_mac(&at<rte_ether_hdr>(m, 0)->src_addr));
    } else {
      hits++;
      FlowEntry& e = ctx.flows->entry(fi);
      if (e.generation != s.generation && !e.is_static) {
        classify(s, info.key, e);
        ctx.ctr->flows_reclassified++;
      }
    }
    FlowEntry& e = ctx.flows->entry(fi);
    e.packets++;
    e.bytes += info.ip_len;
    e.last_tsc = ctx.now;
    if (e.action == FlowAction::kDrop) {
      ctx.drop(m, DropReason(e.drop_reason));
      continue;
    }
    info.flow = uint32_t(fi);
    info.action = e.action;
    info.node = e.node;
    info.dst_workload = e.dst_workload;
    info.identity = e.identity;
    info.entropy = e.entropy;
    if (keep != i) {
      b.pkts[keep] = m;
      b.info[keep] = info;
    }
    keep++;
  }
  ctx.ctr->flow_hits += hits;
  b.n = keep;
}

}  // namespace vanish::dp
