#include "dataplane/trace.hpp"

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

const char* trace_stage_name(TraceStage s) {
  switch (s) {
    case TraceStage::kLocalIngress:
      return "local-ingress";
    case TraceStage::kClassify:
      return "outbound-classify";
    case TraceStage::kTtl:
      return "ttl-decrement";
    case TraceStage::kFabricMtu:
      return "fabric-mtu";
    case TraceStage::kEspEncap:
      return "esp-encap";
    case TraceStage::kFabricIngress:
      return "fabric-ingress";
    case TraceStage::kEspDecap:
      return "esp-decap";
    case TraceStage::kAuthorize:
      return "inbound-authorize";
    case TraceStage::kLocalDeliver:
      return "local-deliver";
    case TraceStage::kNone:
      break;
  }
  return "-";
}

const char* trace_verdict_name(TraceVerdict v) {
  switch (v) {
    case TraceVerdict::kNext:
      return "next";
    case TraceVerdict::kDrop:
      return "drop";
    case TraceVerdict::kTxLocal:
      return "tx-local";
    case TraceVerdict::kTxFabric:
      return "tx-fabric";
    case TraceVerdict::kGone:
      return "gone";
  }
  return "-";
}

void TraceState::arm(uint32_t count, const FlowMatch& m) {
  match_ = m;
  remaining_ = count > kMaxPackets ? kMaxPackets : count;
  next_packet_ = 0;
  truncated_ = false;
  n_live_ = 0;
  recs_.clear();
}

void TraceState::record(const Live& l, TraceVerdict v, TraceStage next, uint8_t reason,
                        const PacketInfo* info, bool key_known, uint16_t len, uint64_t now) {
  if (recs_.size() >= kMaxRecords) {
    truncated_ = true;
    return;
  }
  TraceRecord r{};
  r.tsc = now;
  r.packet = l.packet;
  r.flow = ~0u;
  r.stage = l.stage;
  r.verdict = v;
  r.next = next;
  r.drop_reason = reason;
  r.len = len;
  if (info && key_known) {
    r.has_key = 1;
    r.key = info->key;
    r.action = info->action;
    if (l.stage == TraceStage::kClassify || l.stage == TraceStage::kTtl ||
        l.stage == TraceStage::kFabricMtu)
      r.flow = info->flow;
  }
  recs_.push_back(r);
}

void TraceState::flush_live(uint64_t now) {
  for (unsigned i = 0; i < n_live_; i++)
    record(live_[i], TraceVerdict::kGone, TraceStage::kNone, 0, nullptr, false, 0, now);
  n_live_ = 0;
}

void TraceState::begin(TraceStage first, const Burst& b, uint64_t now) {
  flush_live(now);
  if (!match_.empty()) return;
  for (uint16_t i = 0; i < b.n && remaining_ > 0; i++) {
    live_[n_live_++] = Live{b.pkts[i], next_packet_++, first};
    remaining_--;
  }
}

void TraceState::after(TraceStage stage, const Burst& b, TraceStage next, bool key_known,
                       bool select, uint64_t now) {
  if (select && !match_.empty() && remaining_ > 0) {
    for (uint16_t i = 0; i < b.n && remaining_ > 0 && n_live_ < kBurstSize * 2; i++) {
      if (!match_.matches(b.info[i].key)) continue;
      bool known = false;
      for (unsigned j = 0; j < n_live_; j++) known |= live_[j].m == b.pkts[i];
      if (known) continue;
      live_[n_live_++] = Live{b.pkts[i], next_packet_++, stage};
      remaining_--;
    }
  }
  for (unsigned j = 0; j < n_live_;) {
    Live& l = live_[j];
    if (l.stage != stage) {
      j++;
      continue;
    }
    int at = -1;
    for (uint16_t i = 0; i < b.n; i++)
      if (b.pkts[i] == l.m) {
        at = i;
        break;
      }
    if (at < 0) {  // left without a drop (handed off, fragmented, consumed)
      record(l, TraceVerdict::kGone, TraceStage::kNone, 0, nullptr, false, 0, now);
      remove(j);
      continue;
    }
    const PacketInfo& info = b.info[at];
    TraceStage n = next;
    if (stage == TraceStage::kTtl && info.action == FlowAction::kHairpin)
      n = TraceStage::kLocalDeliver;
    record(l, TraceVerdict::kNext, n, 0, &info, key_known, uint16_t(rte_pktmbuf_pkt_len(l.m)), now);
    l.stage = n;
    j++;
  }
}

void TraceState::after_tx(TraceStage stage, const TxBuffer& tx, TraceVerdict v, uint64_t now) {
  for (unsigned j = 0; j < n_live_;) {
    Live& l = live_[j];
    if (l.stage != stage) {
      j++;
      continue;
    }
    bool sent = false;
    for (uint16_t i = 0; i < tx.n && !sent; i++) sent = tx.pkts[i] == l.m;
    uint16_t len = sent ? uint16_t(rte_pktmbuf_pkt_len(l.m)) : 0;
    record(l, sent ? v : TraceVerdict::kGone, TraceStage::kNone, 0, nullptr, false, len, now);
    remove(j);
  }
}

void TraceState::on_drop(const rte_mbuf* m, DropReason r, uint64_t now) {
  for (unsigned j = 0; j < n_live_; j++)
    if (live_[j].m == m) {
      record(live_[j], TraceVerdict::kDrop, TraceStage::kNone, uint8_t(r), nullptr, false, 0, now);
      remove(j);
      return;
    }
}

namespace {
void maybe_done(WorkerCtx& ctx) {
  if (!ctx.trace->armed()) ctx.trace = nullptr;
}
}  // namespace

void trace_begin(WorkerCtx& ctx, TraceStage first, const Burst& b) {
  ctx.trace->begin(first, b, ctx.now);
  maybe_done(ctx);
}

void trace_after(WorkerCtx& ctx, TraceStage stage, const Burst& b, TraceStage next, bool key_known,
                 bool select) {
  ctx.trace->after(stage, b, next, key_known, select, ctx.now);
}

void trace_after_tx(WorkerCtx& ctx, TraceStage stage, const TxBuffer& tx, TraceVerdict v) {
  ctx.trace->after_tx(stage, tx, v, ctx.now);
}

void trace_drop(WorkerCtx& ctx, const rte_mbuf* m, DropReason r) {
  ctx.trace->on_drop(m, r, ctx.now);
}

}  // namespace vanish::dp
