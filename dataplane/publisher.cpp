#include "dataplane/publisher.hpp"

#include <rte_malloc.h>

#include <cstdio>
#include <cstdlib>

namespace vanish::dp {

SnapshotPublisher::SnapshotPublisher(unsigned max_workers) {
  size_t sz = rte_rcu_qsbr_get_memsize(max_workers);
  qsv_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("vanish_qsbr", sz, RTE_CACHE_LINE_SIZE));
  if (!qsv_ || rte_rcu_qsbr_init(qsv_, max_workers) != 0) {
    std::fprintf(stderr, "vanishd: cannot allocate the RCU state (%zu bytes)\n", sz);
    std::abort();
  }
}

SnapshotPublisher::~SnapshotPublisher() {
  delete cur_.exchange(nullptr);
  rte_free(qsv_);
}

void SnapshotPublisher::publish(std::unique_ptr<Snapshot> next) {
  Snapshot* old = cur_.exchange(next.release(), std::memory_order_acq_rel);
  if (!old) return;
  // Every registered, online worker must report quiescent after the swap before `old` goes.
  rte_rcu_qsbr_synchronize(qsv_, RTE_QSBR_THRID_INVALID);
  delete old;
}

}  // namespace vanish::dp
