#include "dataplane/flow_table.hpp"

#include <rte_eal.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <sys/mman.h>

#include <memory>

#include "dataplane/conn_metrics.hpp"

namespace vanish::dp {

namespace {

// rte_hash compares 40-byte keys with memcmp (it has vector compares for 16, 32, 48.. only):
// five 64-bit words instead. Returns 0 when equal, as rte_hash expects.
int flow_key_cmp(const void* a, const void* b, size_t) {
  return FlowTable::key_eq(*static_cast<const FlowKey*>(a), *static_cast<const FlowKey*>(b)) ? 0
                                                                                             : 1;
}

}  // namespace

FlowTable::FlowTable(const std::string& name, uint32_t capacity, int socket_id,
                     rte_rcu_qsbr* readers) {
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = capacity < 64 ? 64 : capacity;
  p.key_len = sizeof(FlowKey);
  p.hash_func = rte_hash_crc;
  p.hash_func_init_val = kHashInit;
  p.socket_id = socket_id;
  // Single writer (the owning worker); lock-free readers when other workers look in.
  p.extra_flag = readers ? RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF : 0;
  hash_ = rte_hash_create(&p);
  if (!hash_) return;
  static_assert(sizeof(FlowKey) == 40);
  rte_hash_set_cmp_func(hash_, flow_key_cmp);
  if (readers) {
    rte_hash_rcu_config rc{};
    rc.v = readers;
    rc.mode = RTE_HASH_QSBR_MODE_DQ;  // deleted positions wait in a defer queue
    rc.dq_size = p.entries;
    rc.trigger_reclaim_limit = 64;
    rc.max_reclaim_size = 128;
    if (rte_hash_rcu_qsbr_add(hash_, &rc) != 0) {
      rte_hash_free(hash_);
      hash_ = nullptr;
      return;
    }
  }
  capacity_ = p.entries;
  int32_t max_id = rte_hash_max_key_id(hash_);
  if (!alloc_entries(size_t(max_id) + 1, socket_id)) {
    rte_hash_free(hash_);
    hash_ = nullptr;
    return;
  }
  cache_.reset(new CacheSlot[kCacheSlots]);
}

// The entry array is touched at random (one entry per flow): on 4 KiB pages a table of 1M flows
// (128 MiB) costs a TLB miss per packet. With DPDK hugepages it comes from DPDK's memory on the
// worker's socket; without (--no-huge) from an anonymous mapping the kernel may back with
// transparent huge pages (MADV_HUGEPAGE: asked for even when THP is "madvise" only).
bool FlowTable::alloc_entries(size_t n, int socket_id) {
  n_entries_ = n;
  entries_bytes_ = n * sizeof(FlowEntry);
  void* mem = nullptr;
  if (rte_eal_has_hugepages()) {
    mem = rte_malloc_socket("flow_entries", entries_bytes_, 64, socket_id);
    entries_in_dpdk_ = mem != nullptr;
  }
  if (mem == nullptr) {
    mem = mmap(nullptr, entries_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    madvise(mem, entries_bytes_, MADV_HUGEPAGE);  // best effort
  }
  entries_ = static_cast<FlowEntry*>(mem);
  std::uninitialized_value_construct_n(entries_, n);
  return true;
}

FlowTable::~FlowTable() {
  if (hash_) rte_hash_free(hash_);
  if (entries_ == nullptr) return;
  std::destroy_n(entries_, n_entries_);
  if (entries_in_dpdk_)
    rte_free(entries_);
  else
    munmap(entries_, entries_bytes_);
}

unsigned FlowTable::age(uint64_t now_tsc, uint64_t idle_tsc, unsigned budget) {
  // Walks key positions, `budget` per call (rte_hash_iterate would skip over any number of
  // empty buckets in one call: an idle worker with a big, sparse table burnt its CPU there).
  // rte_hash_get_key_with_position() fails for a position that holds no live key.
  unsigned removed = 0;
  const uint32_t n = uint32_t(rte_hash_max_key_id(hash_)) + 1;
  for (unsigned seen = 0; seen < budget; seen++) {
    int32_t pos = int32_t(age_cursor_);
    age_cursor_ = age_cursor_ + 1 >= n ? 0 : age_cursor_ + 1;
    void* kp;
    if (rte_hash_get_key_with_position(hash_, pos, &kp) != 0) continue;
    const FlowEntry& e = entries_[pos];
    FlowKey k;
    std::memcpy(&k, kp, sizeof k);
    if (k.zone == kZoneReplyIndex || e.is_static || now_tsc - e.last_tsc <= idle_tsc) continue;
    bool companion = k.zone == kZoneOutbound && e.nat == NatKind::kDnat;
    FlowKey ri = companion ? reply_index_key(k, e) : FlowKey{};
    const uint32_t conn = e.conn;  // read before erase() may let the position be reused
    if (erase(k)) {
      removed++;
      if (conn_ && conn >= 2 && !(conn & 1)) conn_->closed(conn >> 1);
    }
    if (companion) erase(ri);
  }
  return removed;
}

}  // namespace vanish::dp
