#include "dataplane/flow_table.hpp"

#include <rte_eal.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "dataplane/conn_metrics.hpp"

namespace vanish::dp {

FlowTable::FlowTable(const std::string& name, uint32_t capacity, int socket_id,
                     rte_rcu_qsbr* readers)
    : name_(name), readers_(readers) {
  capacity_ = capacity < 64 ? 64 : capacity;
  // About 4 keys per 7-slot bucket when full: few keys overflow their home bucket.
  uint32_t nb = 1;
  while (nb < (capacity_ + 3) / 4) nb <<= 1;
  mask_ = nb - 1;
  auto* b = static_cast<Bucket*>(alloc_region(size_t(nb) * sizeof(Bucket), socket_id));
  keys_ = static_cast<FlowKey*>(alloc_region(size_t(capacity_) * sizeof(FlowKey), socket_id));
  entries_ =
      static_cast<FlowEntry*>(alloc_region(size_t(capacity_) * sizeof(FlowEntry), socket_id));
  live_ = static_cast<uint8_t*>(alloc_region(capacity_, socket_id));
  free_ = static_cast<uint32_t*>(alloc_region(size_t(capacity_) * 4, socket_id));
  if (readers_) pend_ = static_cast<uint32_t*>(alloc_region(size_t(capacity_) * 4, socket_id));
  if (!b || !keys_ || !entries_ || !live_ || !free_ || (readers_ && !pend_)) {
    RTE_LOG(ERR, USER1, "flow table %s: no memory for %u flows\n", name_.c_str(), capacity_);
    return;
  }
  std::uninitialized_value_construct_n(entries_, capacity_);
  // Popped in ascending order: position 0 first.
  for (uint32_t i = 0; i < capacity_; i++) free_[i] = capacity_ - 1 - i;
  n_free_ = capacity_;
  buckets_ = b;  // ok() from here on
}

// The arrays are touched at random (one bucket, key and entry per flow): on 4 KiB pages a table
// of 1M flows costs TLB misses on every packet. With DPDK hugepages they come from DPDK's memory
// on the worker's socket; without (--no-huge) from an anonymous mapping, zeroed.
// That mapping does not ask for transparent huge pages unless VANISH_FLOW_THP=1: on a 6.18 guest
// running DAMON, the kernel's later work on such pages stalled the worker for milliseconds (NDR
// at a fifth of the maximum, p99 in ms), while 4 KiB pages cost no measurable 1M-flow throughput
// there (perf/README-bench.md, session 7). Real hugepages avoid both.
void* FlowTable::alloc_region(size_t bytes, int socket_id) {
  Region& r = regions_[n_regions_];
  r.bytes = bytes;
  void* mem = nullptr;
  if (rte_eal_has_hugepages()) {
    mem = rte_zmalloc_socket("flow_table", bytes, 64, socket_id);
    r.dpdk = mem != nullptr;
  }
  if (mem == nullptr) {
    mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    static const bool thp = [] {
      const char* e = std::getenv("VANISH_FLOW_THP");
      return e != nullptr && std::strcmp(e, "1") == 0;
    }();
    if (thp) madvise(mem, bytes, MADV_HUGEPAGE);  // best effort
  }
  r.p = mem;
  n_regions_++;
  return mem;
}

FlowTable::~FlowTable() {
  if (buckets_) std::destroy_n(entries_, capacity_);
  for (unsigned i = 0; i < n_regions_; i++) {
    if (regions_[i].dpdk)
      rte_free(regions_[i].p);
    else
      munmap(regions_[i].p, regions_[i].bytes);
  }
}

int32_t FlowTable::insert(const FlowKey& key) {
  const uint32_t h = hash(key);
  int32_t p = find(key, h);
  if (p >= 0) return p;
  p = alloc_position();
  if (p < 0) return -1;
  const uint32_t home = h & mask_;
  // There are more slots than positions, so a free slot exists; it is usually in the home bucket.
  for (uint32_t d = 0; d <= mask_; d++) {
    Bucket& b = buckets_[(home + d) & mask_];
    for (unsigned s = 0; s < kSlots; s++) {
      if (b.slot[s] != 0) continue;
      keys_[p] = key;
      entries_[p].tag = FlowTag{};
      FlowTag::of(key, &entries_[p].tag);
      live_[p] = 1;
      if (d > 0) {
        if (d > max_probe_) __atomic_store_n(&max_probe_, d, __ATOMIC_RELEASE);
        __atomic_store_n(&buckets_[home].overflow, buckets_[home].overflow + 1, __ATOMIC_RELEASE);
      }
      // Publish last: a reader that sees the slot sees the key.
      __atomic_store_n(&b.slot[s], (uint64_t(h) << 32) | (uint32_t(p) + 1), __ATOMIC_RELEASE);
      __atomic_store_n(&count_, count_ + 1, __ATOMIC_RELAXED);
      return p;
    }
  }
  release_position(uint32_t(p));  // unreachable while slots outnumber positions
  return -1;
}

bool FlowTable::erase(const FlowKey& key) {
  const uint32_t h = hash(key);
  uint64_t where;
  int32_t p = find(key, h, &where);
  if (p < 0) return false;
  const uint32_t bi = uint32_t(where / kSlots);
  __atomic_store_n(&buckets_[bi].slot[where % kSlots], uint64_t(0), __ATOMIC_RELEASE);
  const uint32_t home = h & mask_;
  if (bi != home)
    __atomic_store_n(&buckets_[home].overflow, buckets_[home].overflow - 1, __ATOMIC_RELEASE);
  live_[p] = 0;
  __atomic_store_n(&count_, count_ - 1, __ATOMIC_RELAXED);
  release_position(uint32_t(p));
  return true;
}

// Owner-only table: back on the free stack at once. With shared readers: into the pending ring,
// in the open batch (stamped with a token when it closes, in reclaim()).
void FlowTable::release_position(uint32_t pos) {
  if (!readers_) {
    free_[n_free_++] = pos;
    return;
  }
  pend_[(pend_head_ + pend_n_) % capacity_] = pos;
  pend_n_++;
  open_n_++;
  if (open_n_ >= 64) reclaim();
}

// Closes the open batch (its token is taken now, after its positions were unlinked), then frees
// every batch whose grace period is over. Never waits.
void FlowTable::reclaim() {
  if (open_n_) {
    if (n_batch_ == kBatches) {
      // Ring full: the open positions join the newest batch, which gets the newer token.
      Batch& last = batch_[(batch_head_ + n_batch_ - 1) % kBatches];
      last.n += open_n_;
      last.token = rte_rcu_qsbr_start(readers_);
    } else {
      batch_[(batch_head_ + n_batch_) % kBatches] = {rte_rcu_qsbr_start(readers_), open_n_};
      n_batch_++;
    }
    open_n_ = 0;
  }
  while (n_batch_) {
    Batch& b = batch_[batch_head_];
    if (rte_rcu_qsbr_check(readers_, b.token, false) != 1) break;
    for (uint32_t i = 0; i < b.n; i++) {
      free_[n_free_++] = pend_[pend_head_];
      pend_head_ = (pend_head_ + 1) % capacity_;
    }
    pend_n_ -= b.n;
    batch_head_ = (batch_head_ + 1) % kBatches;
    n_batch_--;
  }
}

int32_t FlowTable::alloc_position() {
  if (!n_free_ && readers_ && pend_n_) reclaim();
  if (!n_free_) return -1;
  return int32_t(free_[--n_free_]);
}

unsigned FlowTable::age(uint64_t now_tsc, uint64_t idle_tsc, unsigned budget) {
  // Walks positions, `budget` per call, from where the previous call stopped.
  unsigned removed = 0;
  for (unsigned seen = 0; seen < budget; seen++) {
    const uint32_t pos = age_cursor_;
    age_cursor_ = age_cursor_ + 1 >= capacity_ ? 0 : age_cursor_ + 1;
    if (!live_[pos]) continue;
    const FlowEntry& e = entries_[pos];
    const FlowKey k = keys_[pos];
    if (k.zone == kZoneReplyIndex || e.is_static || e.idle_ticks(now_tsc) <= idle_tsc) continue;
    bool companion = k.zone == kZoneOutbound && e.nat == NatKind::kDnat;
    FlowKey ri = companion ? reply_index_key(k, e) : FlowKey{};
    const uint32_t conn = e.conn;  // read before erase() may let the position be reused
    if (erase(k)) {
      removed++;
      if (conn_ && conn >= 2 && !(conn & 1)) conn_->closed(conn >> 1);
    }
    if (companion) erase(ri);
  }
  if (readers_ && open_n_) reclaim();
  return removed;
}

}  // namespace vanish::dp
