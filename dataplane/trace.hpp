// Packet trace (vanishctl trace, like VPP's trace): the next N packets matching a filter get one
// record per pipeline stage they pass — the stage, what it decided (next stage, drop + reason,
// queued for TX, consumed) and the packet's key fields at that point — in a per-worker buffer
// the control thread fetches through the worker's mailbox (worker_mailbox.hpp).
//
// Contract
// - A TraceState belongs to one worker; only that worker calls arm/disarm (mailbox requests)
//   and the hooks. It never allocates after construction.
// - Zero cost when off: WorkerCtx::trace is null unless a trace is armed; the pipeline's hook
//   points are VANISH_TRACE(ctx, ...), one predictable branch on that pointer per stage and
//   burst, and WorkerCtx::drop tests it on the drop path only. No per-packet work when disarmed.
// - Selection: with an empty match, packets are selected when they enter the pipeline (so parse
//   drops are traced too); with a match, at the first stage that knows the packet's 5-tuple
//   (after LocalIngress outbound, after EspDecap inbound). A packet is followed by its mbuf
//   pointer through the stages of one burst; fragments and ICMP errors made from it are not.
// - When `count` packets were selected and every one of them left the pipeline, the worker
//   clears ctx.trace (at its next burst); records stay until the next arm.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/burst.hpp"
#include "dataplane/drop_reasons.hpp"
#include "dataplane/flow_key.hpp"

namespace vanish::dp {

struct WorkerCtx;

// A flow filter: an address (either direction) and/or a port (either direction). Empty: all.
struct FlowMatch {
  bool has_addr = false;
  IpAddr addr;
  bool has_port = false;
  uint16_t port_be = 0;  // network order

  bool empty() const { return !has_addr && !has_port; }
  bool matches(const FlowKey& k) const {
    if (has_addr && !(k.src_ip() == addr) && !(k.dst_ip() == addr)) return false;
    if (has_port && k.sport != port_be && k.dport != port_be) return false;
    return true;
  }
};

enum class TraceStage : uint8_t {
  kLocalIngress,
  kClassify,
  kTtl,
  kFabricMtu,
  kEspEncap,
  kFabricIngress,
  kEspDecap,
  kAuthorize,
  kLocalDeliver,
  kNone,
};
const char* trace_stage_name(TraceStage s);

enum class TraceVerdict : uint8_t {
  kNext,      // kept: goes on to `next`
  kDrop,      // freed and counted under `drop_reason`
  kTxLocal,   // queued on the local port
  kTxFabric,  // queued on the fabric port (encrypted)
  kGone,      // left the burst otherwise (handed off to another worker, fragmented)
};
const char* trace_verdict_name(TraceVerdict v);

struct TraceRecord {
  uint64_t tsc;
  uint32_t packet;  // trace packet number on this worker (0 .. count-1)
  uint32_t flow;    // flow entry index (after classify / authorize), else ~0
  TraceStage stage;
  TraceVerdict verdict;
  TraceStage next;      // kNext
  uint8_t drop_reason;  // kDrop: DropReason
  uint8_t has_key;      // key holds the packet's 5-tuple (inner one inbound)
  FlowAction action;    // outbound decision, when known
  uint16_t len;         // packet length in bytes at that point
  FlowKey key;
};

class TraceState {
 public:
  static constexpr uint32_t kMaxPackets = 256;
  static constexpr uint32_t kMaxRecords = 4096;

  TraceState() { recs_.reserve(kMaxRecords); }

  // Starts a new trace of `count` packets (clamped to kMaxPackets), dropping old records.
  void arm(uint32_t count, const FlowMatch& m);
  void disarm() {
    remaining_ = 0;
    n_live_ = 0;
  }

  bool armed() const { return remaining_ > 0 || n_live_ > 0; }
  uint32_t remaining() const { return remaining_; }
  uint32_t packets() const { return next_packet_; }
  bool truncated() const { return truncated_; }
  const std::vector<TraceRecord>& records() const { return recs_; }

  // Hooks (through VANISH_TRACE; see pipeline.hpp).
  void begin(TraceStage first, const Burst& b, uint64_t now);
  void after(TraceStage stage, const Burst& b, TraceStage next, bool key_known, bool select,
             uint64_t now);
  void after_tx(TraceStage stage, const TxBuffer& tx, TraceVerdict v, uint64_t now);
  void on_drop(const rte_mbuf* m, DropReason r, uint64_t now);

 private:
  struct Live {
    const rte_mbuf* m;
    uint32_t packet;
    TraceStage stage;  // the stage it is in
  };
  void record(const Live& l, TraceVerdict v, TraceStage next, uint8_t reason,
              const PacketInfo* info, bool key_known, uint16_t len, uint64_t now);
  void flush_live(uint64_t now);  // leftovers of the previous burst: kGone
  void remove(unsigned i) { live_[i] = live_[--n_live_]; }

  FlowMatch match_;
  uint32_t remaining_ = 0;
  uint32_t next_packet_ = 0;
  bool truncated_ = false;
  Live live_[kBurstSize * 2];
  unsigned n_live_ = 0;
  std::vector<TraceRecord> recs_;
};

// Hook entry points (trace.cpp): they clear ctx.trace when the trace is over.
void trace_begin(WorkerCtx& ctx, TraceStage first, const Burst& b);
void trace_after(WorkerCtx& ctx, TraceStage stage, const Burst& b, TraceStage next, bool key_known,
                 bool select = false);
void trace_after_tx(WorkerCtx& ctx, TraceStage stage, const TxBuffer& tx, TraceVerdict v);

// One predictable branch when no trace is armed.
#define VANISH_TRACE(ctx, call)     \
  do {                              \
    if ((ctx).trace) [[unlikely]] { \
      ::vanish::dp::call;           \
    }                               \
  } while (0)

}  // namespace vanish::dp
