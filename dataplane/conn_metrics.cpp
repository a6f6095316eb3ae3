#include "dataplane/conn_metrics.hpp"

#include <rte_hash_crc.h>

#include <cstring>

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

ConnStats::ConnStats()
    : keys_(new ConnKey[kSlots]),
      bytes_(new uint64_t[kSlots * 2]()),
      opened_(new uint64_t[kSlots]()),
      closed_(new uint64_t[kSlots]()),
      index_(new uint16_t[kIndex]()) {}

uint32_t ConnStats::slot(const ConnKey& k) {
  static_assert(kSlots <= 65536 && (kIndex & (kIndex - 1)) == 0);
  uint32_t h = rte_hash_crc(&k, sizeof k, 0x636f6e6e);
  for (uint32_t i = 0; i < kIndex; i++) {
    uint32_t at = (h + i) & (kIndex - 1);
    uint16_t s = index_[at];
    if (s == 0) {
      if (used_ >= kSlots) {
        overflow_++;
        return 0;
      }
      uint32_t n = used_;
      keys_[n] = k;
      index_[at] = uint16_t(n);
      __atomic_store_n(&used_, n + 1, __ATOMIC_RELEASE);  // publishes keys_[n]
      return n;
    }
    if (keys_[s] == k) return s;
  }
  overflow_++;
  return 0;
}

namespace {

// The entry of `k` in table t: the owner's cached path for our own table, the shared-reader
// path (conntrack.hpp) for the others.
const FlowEntry* find(WorkerCtx& ctx, FlowTable* t, const FlowKey& k) {
  int32_t p = t == ctx.flows ? t->lookup(k) : t->lookup_shared(k);
  return p < 0 ? nullptr : &t->entry(p);
}

template <typename F>
const FlowEntry* find_any(WorkerCtx& ctx, const FlowKey& k, F&& ok) {
  if (const FlowEntry* e = find(ctx, ctx.flows, k); e && ok(*e)) return e;
  for (unsigned w = 0; w < ctx.n_all_flows; w++) {
    FlowTable* t = ctx.all_flows[w];
    if (!t || t == ctx.flows) continue;
    if (const FlowEntry* e = find(ctx, t, k); e && ok(*e)) return e;
  }
  return nullptr;
}

ConnKind opener_kind(uint8_t zone, FlowAction a) {
  if (zone == kZoneInbound) return ConnKind::kDestination;
  return a == FlowAction::kHairpin ? ConnKind::kBoth : ConnKind::kSource;
}

}  // namespace

void conn_attach(WorkerCtx& ctx, const FlowKey& key, FlowEntry& e) {
  e.conn = kConnUntracked;
  if (!ctx.conn || key.proto != 6 || e.action == FlowAction::kDrop) return;
  const uint32_t epoch = ctx.snap ? ctx.snap->label_epoch : 0;
  auto tracked = [](const FlowEntry& o) { return o.conn >= 2; };

  // A reply from a DNATed connection's endpoint: the opener's reply-index entry carries its
  // workloads swapped and its service.
  FlowKey ri = key;
  ri.zone = kZoneReplyIndex;
  if (const FlowEntry* r = find_any(ctx, ri, [](const FlowEntry&) { return true; })) {
    ConnKey k;
    k.client = r->dst_workload;
    k.server = r->src_workload;
    k.service = r->service;
    k.epoch = epoch;
    k.kind = e.action == FlowAction::kHairpin ? ConnKind::kBoth : ConnKind::kSource;
    e.conn = ctx.conn->slot(k) * 2 + 1;
    return;
  }
  // A reply to a connection opened the other way: by a local client (outbound zone) or by a
  // remote client towards a local server (inbound zone).
  for (uint8_t zone : {uint8_t(kZoneOutbound), uint8_t(kZoneInbound)}) {
    FlowKey rev = reverse_key(key);
    rev.zone = zone;
    if (const FlowEntry* o = find_any(ctx, rev, tracked)) {
      ConnKey k;
      k.client = o->src_workload;
      k.server = o->dst_workload;
      k.service = o->service;
      k.epoch = epoch;
      k.kind = opener_kind(zone, o->action);
      e.conn = ctx.conn->slot(k) * 2 + 1;
      return;
    }
  }
  // A new connection.
  ConnKey k;
  k.client = e.src_workload;
  k.server = e.dst_workload;
  k.service = e.service;
  k.epoch = epoch;
  k.kind = opener_kind(key.zone, e.action);
  uint32_t s = ctx.conn->slot(k);
  ctx.conn->opened(s);
  e.conn = s * 2;
}

}  // namespace vanish::dp
