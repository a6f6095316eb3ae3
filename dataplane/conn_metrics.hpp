// ConnStats: one worker's connection aggregates behind Istio's istio_tcp_* metrics.
//
// A slot aggregates the TCP connections of one (client workload, server workload, service,
// reporter kind, label epoch): connections opened, connections closed, request bytes (client ->
// server, Istio's received_bytes) and response bytes (server -> client, Istio's sent_bytes).
// Slots are appended, never removed (Prometheus counters only grow); slot 0 is the sink for
// flows that are not tracked (not TCP, dropped, no ConnStats), so the per-packet cost is one add
// without a branch: `ctx.conn_bytes[e.conn] += ip_len`.
//
// FlowEntry::conn = slot * 2 + dir (dir 0: request, 1: response); 0 = undecided, 1 = untracked
// (both land in the sink). A flow is attached (conn_attach) when it is created and when it is
// reclassified untracked; an opener that ages out counts one closed connection.
//
// Contract
// - Single writer: the owning worker (attach, bytes, closed). Plain stores/increments.
// - Readers (the control thread, DPDK telemetry): used() with acquire, then key(i) of any slot
//   below it (immutable once published) and counters with relaxed 64-bit loads (slightly stale,
//   never torn on the 64-bit targets vanish runs on).
// - Label epochs: a WorkloadIdx/ServiceIdx means the same workload/service for every snapshot of
//   one Snapshot::label_epoch (dataplane/metrics.hpp keeps the names of each epoch).
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/flow_key.hpp"

namespace vanish::dp {

struct FlowEntry;
struct WorkerCtx;

// Who reports the connection (Istio's `reporter` label).
enum class ConnKind : uint8_t {
  kSource = 0,       // a local client's connection to a remote server (reporter="source")
  kDestination = 1,  // a remote client's connection to a local server (reporter="destination")
  kBoth = 2,         // client and server both local (hairpin): reported by both
};

struct ConnKey {
  uint32_t client = ~0u, server = ~0u;  // WorkloadIdx (kInvalidIdx: unknown)
  uint32_t service = ~0u;               // ServiceIdx when the client connected to a VIP
  uint32_t epoch = 0;                   // Snapshot::label_epoch
  ConnKind kind = ConnKind::kSource;
  uint8_t pad[3] = {};
  friend bool operator==(const ConnKey&, const ConnKey&) = default;
};

inline constexpr uint32_t kConnUndecided = 0, kConnUntracked = 1;

class ConnStats {
 public:
  static constexpr uint32_t kSlots = 4096;  // per worker, including the sink (slot 0)

  ConnStats();
  ConnStats(const ConnStats&) = delete;
  ConnStats& operator=(const ConnStats&) = delete;

  // Worker side. Returns the slot of k, adding it; 0 (the sink) when the table is full.
  uint32_t slot(const ConnKey& k);
  void opened(uint32_t s) { opened_[s]++; }
  void closed(uint32_t s) { closed_[s]++; }
  uint64_t* bytes() { return bytes_.get(); }  // index: FlowEntry::conn

  // Reader side.
  uint32_t used() const { return __atomic_load_n(&used_, __ATOMIC_ACQUIRE); }
  const ConnKey& key(uint32_t s) const { return keys_[s]; }
  uint64_t opened_count(uint32_t s) const { return load(&opened_[s]); }
  uint64_t closed_count(uint32_t s) const { return load(&closed_[s]); }
  uint64_t request_bytes(uint32_t s) const { return load(&bytes_[s * 2]); }
  uint64_t response_bytes(uint32_t s) const { return load(&bytes_[s * 2 + 1]); }
  uint64_t overflow() const { return load(&overflow_); }

 private:
  static uint64_t load(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
  static constexpr uint32_t kIndex = kSlots * 2;  // open addressing, load factor <= 1/2
  std::unique_ptr<ConnKey[]> keys_;
  std::unique_ptr<uint64_t[]> bytes_, opened_, closed_;
  std::unique_ptr<uint16_t[]> index_;  // key hash -> slot (0: empty); worker only
  uint32_t used_ = 1;                  // slot 0 is the sink
  uint64_t overflow_ = 0;              // attach requests that found the table full
};

// Worker side, once per new or reclassified flow (never per packet). `key` is the flow as
// received (zone outbound or inbound), `e` its entry after classification/authorization. Finds
// the connection the flow belongs to: a reply to a connection opened by the other side (in any
// worker's flow table) is its response direction; otherwise the flow opens a connection (TCP
// only; dropped flows are untracked). Sets e.conn.
void conn_attach(WorkerCtx& ctx, const FlowKey& key, FlowEntry& e);

}  // namespace vanish::dp
