// Worker: one poll-mode lcore. Owns queue `id` on the local and the fabric port, its flow table,
// its counters and its handoff ring (shared nothing; workers never take a lock).
//
// Loop: RX local -> Pipeline::outbound; RX fabric -> Pipeline::inbound; drain handoff ring;
// flush TX; report RCU quiescent; when nothing arrived, back off so several appliances share a
// small machine: spin (rte_pause) for at least 64 empty polls and idle_spin_us since the last
// packet, then sleep with growing intervals up to max_idle_sleep_us, offline for RCU.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "dataplane/pipeline.hpp"
#include "dataplane/publisher.hpp"
#include "dataplane/worker_mailbox.hpp"

namespace vanish::dp {

struct WorkerConfig {
  unsigned id = 0;
  uint16_t local_port = 0, fabric_port = 1;
  uint16_t queue = 0;
  rte_mempool* pool = nullptr;
  uint32_t flow_capacity = 65536;
  uint32_t flow_idle_timeout_s = 300;
  uint32_t max_idle_sleep_us = 200;
  uint32_t idle_spin_us = 50;  // spin this long after the last packet before the first sleep
  int socket_id = 0;
};

class Worker {
 public:
  Worker(const WorkerConfig& cfg, SnapshotPublisher* pub, rte_ring* const* handoff,
         unsigned n_workers);
  ~Worker();
  bool ok() const { return flows_ && flows_->ok(); }

  // Runs until stop is set; then flushes TX and drains its handoff ring.
  void run(const std::atomic<bool>& stop);

  const WorkerCounters& counters() const { return ctr_; }
  // istio_tcp_* aggregates (conn_metrics.hpp: single writer, readers use its reader side).
  const ConnStats& conn_stats() const { return *conn_; }
  // TSC of the last received packet (read by the control thread for --exit-when-idle).
  uint64_t last_rx_tsc() const { return last_rx_.load(std::memory_order_relaxed); }
  bool running() const { return running_.load(std::memory_order_relaxed); }
  // The control thread's way to the worker's flow table and trace (worker_mailbox.hpp).
  WorkerMailbox& mailbox() { return mbox_; }
  const FlowTable& flows() const { return *flows_; }
  FlowTable* flow_table() { return flows_.get(); }
  // Every worker's flow table (index = worker id) for reply detection across workers; call
  // before run(); `all` must outlive the worker's run.
  void set_flow_tables(FlowTable* const* all, unsigned n) {
    ctx_.all_flows = all;
    ctx_.n_all_flows = n;
  }

 private:
  // Receives a burst from `port` into burst_ and, when it is full and Pipeline::pairs_pay(), a
  // second one into burst2_ (else burst2_.n = 0). Returns the packets received.
  uint16_t rx_bursts(uint16_t port);
  void flush();
  // A port's link status as last read, read again at most once a millisecond: some PMDs ask the
  // kernel (af_packet, tap), and only a refused burst asks.
  struct LinkState {
    uint64_t read_tsc = 0;
    bool up = true;
  };
  bool link_up(uint16_t port, LinkState& l);
  // Sends buf; what the port refuses is counted tx_full, or tx_link_down when its link is down.
  void tx(uint16_t port, TxBuffer& buf, uint64_t& pkts, uint64_t& bytes, LinkState& link);

  WorkerConfig cfg_;
  SnapshotPublisher* pub_;
  std::unique_ptr<FlowTable> flows_;
  WorkerCounters ctr_;
  std::unique_ptr<ConnStats> conn_;
  WorkerCtx ctx_;
  Pipeline pipe_;
  Burst burst_;
  Burst burst2_;  // a second burst from the same port (Pipeline::outbound_pair, inbound_pair)
  std::atomic<uint64_t> last_rx_{0};
  std::atomic<bool> running_{false};
  WorkerMailbox mbox_;
  TraceState trace_;
  LinkState local_link_, fabric_link_;
};

}  // namespace vanish::dp
