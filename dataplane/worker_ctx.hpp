// WorkerCtx: everything one worker owns (shared nothing), passed to every stage.
// Contract: one WorkerCtx per worker lcore; only that lcore touches it, except the counters,
// which the control thread reads.
#pragma once

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>
#include <vector>

#include "dataplane/burst.hpp"
#include "dataplane/conn_metrics.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/snapshot.hpp"
#include "dataplane/wire.hpp"

struct IMB_MGR;

namespace vanish::dp {

class TraceState;
struct WorkerCtx;
// trace.cpp: records a drop of a traced packet (called only while a trace is armed).
void trace_drop(WorkerCtx& ctx, const rte_mbuf* m, DropReason r);

// Precomputed outer headers towards one peer for this worker (VPP rewrite / BESS VXLANEncap):
// Eth | IPv4 or IPv6 | UDP(sport of this worker's SA, dport 4500). Lengths/checksums are patched.
// bytes[] is zero past len and copied whole (64 bytes, a fixed-size copy).
struct FabricTemplate {
  bool valid = false;
  bool v6 = false;
  uint16_t len = 0;      // 14 + 20 + 8 or 14 + 40 + 8
  uint32_t ip4_sum = 0;  // IPv4: unfolded 16-bit word sum of the IP header (total_length = 0)
  alignas(32) uint8_t bytes[64];
};
static_assert(kEthLen + kIpv6Len + kUdpLen <= sizeof(FabricTemplate::bytes));

struct WorkerCtx {
  unsigned id = 0;
  const Snapshot* snap = nullptr;
  uint64_t snap_generation = ~0ull;  // generation the templates were built for
  FlowTable* flows = nullptr;
  WorkerCounters* ctr = nullptr;
  // istio_tcp_* aggregates (conn_metrics.hpp); null: none (every flow lands in conn_sink).
  ConnStats* conn = nullptr;
  uint64_t conn_sink[2] = {};
  uint64_t* conn_bytes = conn_sink;  // indexed by FlowEntry::conn: one add per packet
  IMB_MGR* imb = nullptr;
  rte_mempool* pool = nullptr;  // for replies, ICMP errors and fragments
  TxBuffer to_local, to_fabric;
  rte_ring* const* handoff = nullptr;  // handoff[w]: ring into worker w (multi-producer)
  unsigned n_handoff = 0;
  // Every worker's flow table (index = worker id), for reply detection across workers
  // (conntrack.hpp); null in single-table harnesses (then only `flows` is searched).
  FlowTable* const* all_flows = nullptr;
  unsigned n_all_flows = 0;
  uint64_t rng = 0x9E3779B97F4A7C15ull;  // xorshift64 state: service endpoint choice
  uint64_t now = 0;                      // TSC at the start of the current burst
  uint64_t tsc_hz = 0;
  std::vector<FabricTemplate> tmpl;   // indexed by NodeIdx; rebuilt when the snapshot changes
  std::vector<uint64_t> solicit_tsc;  // per neighbour slot: last ARP/NS sent (rate limit)

  // ICMP error token bucket (RFC 1812 §4.3.2.8 / RFC 4443 §2.4(f) rate limiting).
  double icmp_tokens = 100;
  uint64_t icmp_last = 0;
  double icmp_rate = 1000;  // per second
  double icmp_burst = 100;
  // Armed packet trace (trace.hpp), null when off: the only cost of tracing when disarmed.
  TraceState* trace = nullptr;
  // Flow lookups spread over another burst's cipher work (Pipeline::outbound_run, inbound_pair):
  // begin_lookup(b) hashes b's keys and makes b the lookahead burst; EspEncap and EspDecap call
  // lookahead_step() once per packet they seal or open; lookup(b) hands back b's flow positions
  // (FlowTable::lookup_bulk's idx), doing whatever the steps did not, or the whole lookup when
  // none began. Between begin_lookup(b) and lookup(b) no flow may be inserted or erased
  // (FlowTable::verify_bulk) and nothing may compact b.
  Burst* lookahead = nullptr;

  void begin_lookup(Burst& b) {
    FlowLookup& l = b.lookup;
    for (uint16_t i = 0; i < b.n; i++) l.hash[i] = FlowTable::hash(b.info[i].key);
    l.fetched = l.matched = 0;
    l.started = true;
    lookahead = &b;
  }
  // Two more buckets prefetched, and the two prefetched kLookaheadLag steps ago matched, their
  // entry lines prefetched: a few misses per packet, so they overlap the cipher instead of
  // queueing for the core's fill buffers in a clump of 64.
  static constexpr unsigned kLookaheadLag = 4;
  void lookahead_step() {
    Burst& b = *lookahead;
    FlowLookup& l = b.lookup;
    for (unsigned k = 0; k < 2 && l.fetched < b.n; k++) flows->prefetch_bucket(l.hash[l.fetched++]);
    const unsigned ready =
        l.fetched == b.n ? b.n
                         : (l.fetched > 2 * kLookaheadLag ? l.fetched - 2 * kLookaheadLag : 0);
    for (unsigned k = 0; k < 2 && l.matched < ready; k++, l.matched++)
      l.idx[l.matched] = flows->match_one(b.info[l.matched].key, l.hash[l.matched]);
  }
  int32_t* lookup(Burst& b) {
    const FlowKey* keys[kBurstSize];
    for (uint16_t i = 0; i < b.n; i++) keys[i] = &b.info[i].key;
    FlowLookup& l = b.lookup;
    if (!l.started) {
      flows->lookup_bulk(keys, b.n, l.idx);
      return l.idx;
    }
    if (lookahead == &b) lookahead = nullptr;
    for (unsigned i = l.fetched; i < b.n; i++) flows->prefetch_bucket(l.hash[i]);
    flows->match_bulk(keys + l.matched, b.n - l.matched, l.hash + l.matched, l.idx + l.matched);
    flows->verify_bulk(keys, b.n, l.hash, l.idx);
    l.started = false;
    return l.idx;
  }

  void drop(rte_mbuf* m, DropReason r) {
    if (trace) [[unlikely]]
      trace_drop(*this, m, r);
    ctr->drop(r);
    rte_pktmbuf_free(m);
  }
  void send_local(rte_mbuf* m) {
    if (to_local.full()) return drop(m, DropReason::kTxFull);
    to_local.pkts[to_local.n++] = m;
  }
  void send_fabric(rte_mbuf* m) {
    if (to_fabric.full()) return drop(m, DropReason::kTxFull);
    to_fabric.pkts[to_fabric.n++] = m;
  }
  uint64_t random() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  }
  bool icmp_allowed() {
    if (tsc_hz == 0) return true;
    double dt = double(now - icmp_last) / double(tsc_hz);
    icmp_last = now;
    icmp_tokens = std::min(icmp_burst, icmp_tokens + dt * icmp_rate);
    if (icmp_tokens < 1) return false;
    icmp_tokens -= 1;
    return true;
  }
};

// Rebuilds ctx.tmpl for ctx.snap (control-rate: called when the generation changes).
void build_fabric_templates(WorkerCtx& ctx);

}  // namespace vanish::dp
