// Pipeline: the stages composed at compile time (no virtual call per packet).
//
//   outbound (local port):  LocalIngress -> OutboundClassify -> HostnameInspect -> TtlDecrement
//                             -> [kEncrypt] FabricMtu -> EspEncap -> fabric TX
//                             -> [kHairpin] LocalDeliver -> local TX
//                             -> [kEgress] EgressForward::send -> fabric TX (plain, next hop)
//   inbound (fabric port):  FabricIngress -> EspDecap -> InboundAuthorize -> LocalDeliver
//                             -> local TX
//                           FabricIngress -> [kEgress] EgressForward::receive -> LocalDeliver
//
// Contract: after outbound()/inbound() every input packet is in ctx.to_local / ctx.to_fabric or
// freed and counted; the caller flushes the TX buffers.
// Tracing (trace.hpp): VANISH_TRACE hook points after each stage, one branch each when off.
#pragma once

#include "dataplane/stage_authorize.hpp"
#include "dataplane/stage_classify.hpp"
#include "dataplane/stage_egress.hpp"
#include "dataplane/stage_esp_decap.hpp"
#include "dataplane/stage_esp_encap.hpp"
#include "dataplane/stage_fabric_ingress.hpp"
#include "dataplane/stage_fabric_mtu.hpp"
#include "dataplane/stage_hostname.hpp"
#include "dataplane/stage_local_deliver.hpp"
#include "dataplane/stage_local_ingress.hpp"
#include "dataplane/stage_ttl.hpp"
#include "dataplane/trace.hpp"

namespace vanish::dp {

class Pipeline final {
 public:
  void outbound(WorkerCtx& ctx, Burst& b) {
    sync_snapshot(ctx);
    VANISH_TRACE(ctx, trace_begin(ctx, TraceStage::kLocalIngress, b));
    ingress_.process(ctx, b);
    VANISH_TRACE(ctx,
                 trace_after(ctx, TraceStage::kLocalIngress, b, TraceStage::kClassify, true, true));
    if (!b.n) return;
    classify_.process(ctx, b);
    after_classify(ctx, b);
  }

  // Bursts the worker received back to back from the local port (the worker takes two:
  // outbound_pair), processed in order (each burst's packets leave before the next one's), with
  // each burst's flow-table round trips (bucket, then entry line) spread over the previous
  // burst's encryption, a few per packet (WorkerCtx::lookahead_step), after that burst's
  // classification (which may insert and erase flows). With 1M flows those misses are most of
  // what a packet costs beyond its few-flow cost; two bursts hide half of them (the first
  // burst's stay exposed), and runs of four were no faster per packet (perf/README-bench.md).
  // Tracing follows one burst at a time.
  //
  // Runs pay only when flow lookups miss the cache (pairs_pay): below kPairMinFlows the table's
  // lines stay in L2 and the lookahead steps are overhead (vanishd, 64 flows: pairs 2-3 % slower
  // at 64 and 1420 B).
  static constexpr uint32_t kPairMinFlows = 1u << 15;
  static bool pairs_pay(const WorkerCtx& ctx) { return ctx.flows->size() >= kPairMinFlows; }
  void outbound_pair(WorkerCtx& ctx, Burst& a, Burst& b) {
    Burst* bs[2] = {&a, &b};
    outbound_run(ctx, bs, 2);
  }
  void outbound_run(WorkerCtx& ctx, Burst* const* bs, unsigned n) {
    if (ctx.trace) [[unlikely]] {
      for (unsigned k = 0; k < n; k++) outbound(ctx, *bs[k]);
      return;
    }
    sync_snapshot(ctx);
    for (unsigned k = 0; k < n; k++) ingress_.process(ctx, *bs[k]);
    if (bs[0]->n) classify_.process(ctx, *bs[0]);
    for (unsigned k = 0; k < n; k++) {
      Burst* next = k + 1 < n && bs[k + 1]->n ? bs[k + 1] : nullptr;
      if (next) ctx.begin_lookup(*next);
      if (bs[k]->n) after_classify(ctx, *bs[k]);
      ctx.lookahead = nullptr;
      if (next) classify_.process(ctx, *next);
    }
  }

  void inbound(WorkerCtx& ctx, Burst& b, bool from_handoff) {
    sync_snapshot(ctx);
    VANISH_TRACE(ctx, trace_begin(ctx, TraceStage::kFabricIngress, b));
    fabric_in_.process(ctx, b, from_handoff);
    VANISH_TRACE(ctx,
                 trace_after(ctx, TraceStage::kFabricIngress, b, TraceStage::kEspDecap, false));
    if (!b.n) return;
    if (ctx.snap->egress) {  // plain replies from outside the mesh: EgressForward::receive
      egress_.n = 0;
      uint16_t keep = 0;
      for (uint16_t i = 0; i < b.n; i++) {
        if (b.info[i].action == FlowAction::kEgress) {
          egress_.pkts[egress_.n] = b.pkts[i];
          egress_.info[egress_.n++] = b.info[i];
        } else {
          b.keep(i, keep);
        }
      }
      b.n = keep;
      if (egress_.n) {
        egress_fwd_.receive(ctx, egress_);
        if (egress_.n) deliver_.process(ctx, egress_, false);
      }
      if (!b.n) return;
    }
    decap_.process(ctx, b);
    VANISH_TRACE(ctx,
                 trace_after(ctx, TraceStage::kEspDecap, b, TraceStage::kAuthorize, true, true));
    if (!b.n) return;
    authorize_.process(ctx, b);
    VANISH_TRACE(ctx, trace_after(ctx, TraceStage::kAuthorize, b, TraceStage::kLocalDeliver, true));
    deliver_.process(ctx, b, false);
    VANISH_TRACE(
        ctx, trace_after_tx(ctx, TraceStage::kLocalDeliver, ctx.to_local, TraceVerdict::kTxLocal));
  }

  // Two bursts received back to back from the fabric port, processed in order, with a's flow
  // lookup (its keys are known once it is decrypted) spread over b's decryption, a few round
  // trips per packet opened; b's lookup stays exposed. As outbound_run, for big tables
  // (pairs_pay). With an egress block (plain replies split off first) or a trace armed: a, then b.
  void inbound_pair(WorkerCtx& ctx, Burst& a, Burst& b, bool from_handoff) {
    if (ctx.trace || ctx.snap->egress) [[unlikely]] {
      inbound(ctx, a, from_handoff);
      inbound(ctx, b, from_handoff);
      return;
    }
    sync_snapshot(ctx);
    fabric_in_.process(ctx, a, from_handoff);
    fabric_in_.process(ctx, b, from_handoff);
    if (a.n) decap_.process(ctx, a);
    if (a.n) ctx.begin_lookup(a);
    if (b.n) decap_.process(ctx, b);
    ctx.lookahead = nullptr;
    for (Burst* x : {&a, &b}) {
      if (!x->n) continue;
      authorize_.process(ctx, *x);
      deliver_.process(ctx, *x, false);
    }
  }

  // Rebuilds worker-local derived state (header templates) when a new snapshot generation is seen.
  static void sync_snapshot(WorkerCtx& ctx) {
    if (ctx.snap->generation != ctx.snap_generation) build_fabric_templates(ctx);
  }

 private:
  // Outbound after OutboundClassify: hostname inspection, TTL, the hairpin / egress / fabric
  // split, MTU, encryption; every packet ends in a TX buffer or is freed and counted.
  void after_classify(WorkerCtx& ctx, Burst& b) {
    VANISH_TRACE(ctx, trace_after(ctx, TraceStage::kClassify, b, TraceStage::kTtl, true));
    const bool egress = ctx.snap->egress != nullptr;
    if (egress) hostname_.process(ctx, b);
    ttl_.process(ctx, b);
    VANISH_TRACE(ctx, trace_after(ctx, TraceStage::kTtl, b, TraceStage::kFabricMtu, true));
    // Split: hairpin packets are delivered locally, the rest go to the fabric.
    hairpin_.n = 0;
    egress_.n = 0;
    uint16_t keep = 0;
    for (uint16_t i = 0; i < b.n; i++) {
      if (b.info[i].action == FlowAction::kHairpin) {
        hairpin_.pkts[hairpin_.n] = b.pkts[i];
        hairpin_.info[hairpin_.n++] = b.info[i];
      } else if (egress && b.info[i].action == FlowAction::kEgress) {
        egress_.pkts[egress_.n] = b.pkts[i];
        egress_.info[egress_.n++] = b.info[i];
      } else {
        if (keep != i) {
          b.pkts[keep] = b.pkts[i];
          b.info[keep] = b.info[i];
        }
        keep++;
      }
    }
    b.n = keep;
    frags_.n = 0;
    mtu_.process(ctx, b, frags_);
    VANISH_TRACE(ctx, trace_after(ctx, TraceStage::kFabricMtu, b, TraceStage::kEspEncap, true));
    encap_.process(ctx, b.pkts, b.info, b.n);
    if (frags_.n) encap_.process(ctx, frags_.pkts, frags_.info, frags_.n);
    VANISH_TRACE(
        ctx, trace_after_tx(ctx, TraceStage::kEspEncap, ctx.to_fabric, TraceVerdict::kTxFabric));
    if (egress_.n) egress_fwd_.send(ctx, egress_);
    if (hairpin_.n) deliver_.process(ctx, hairpin_, true);
    VANISH_TRACE(
        ctx, trace_after_tx(ctx, TraceStage::kLocalDeliver, ctx.to_local, TraceVerdict::kTxLocal));
    b.n = 0;
  }

  LocalIngress ingress_;
  OutboundClassify classify_;
  HostnameInspect hostname_;
  EgressForward egress_fwd_;
  TtlDecrement ttl_;
  FabricMtu mtu_;
  EspEncap encap_;
  FabricIngress fabric_in_;
  EspDecap decap_;
  InboundAuthorize authorize_;
  LocalDeliver deliver_;
  Burst hairpin_;
  Burst egress_;
  FragBurst frags_;
};

}  // namespace vanish::dp
