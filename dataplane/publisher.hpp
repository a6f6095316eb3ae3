// SnapshotPublisher: hands immutable Snapshots from the control thread to the workers.
// publish() swaps one atomic pointer; the previous snapshot is freed only after every worker has
// passed a quiescent state (rte_rcu_qsbr), never after a sleep.
//
// Worker side, each poll-loop iteration:  snap = current();  ...use it...;  quiescent(w);
// A worker that sleeps goes offline() first and online() after, so it never delays a grace period.
#pragma once

#include <rte_rcu_qsbr.h>

#include <atomic>
#include <memory>

#include "dataplane/snapshot.hpp"

namespace vanish::dp {

class SnapshotPublisher {
 public:
  explicit SnapshotPublisher(unsigned max_workers);
  ~SnapshotPublisher();

  // Control thread only. Takes ownership; blocks until no worker can still see the previous one.
  void publish(std::unique_ptr<Snapshot> next);
  const Snapshot* current() const { return cur_.load(std::memory_order_acquire); }

  void register_worker(unsigned w) {
    rte_rcu_qsbr_thread_register(qsv_, w);
    rte_rcu_qsbr_thread_online(qsv_, w);
  }
  void unregister_worker(unsigned w) {
    rte_rcu_qsbr_thread_offline(qsv_, w);
    rte_rcu_qsbr_thread_unregister(qsv_, w);
  }
  void quiescent(unsigned w) { rte_rcu_qsbr_quiescent(qsv_, w); }
  // The workers' QSBR variable (also guards position reuse in the shared flow tables).
  rte_rcu_qsbr* qsbr() const { return qsv_; }
  void offline(unsigned w) { rte_rcu_qsbr_thread_offline(qsv_, w); }
  void online(unsigned w) { rte_rcu_qsbr_thread_online(qsv_, w); }

 private:
  rte_rcu_qsbr* qsv_ = nullptr;
  std::atomic<Snapshot*> cur_{nullptr};
};

}  // namespace vanish::dp
