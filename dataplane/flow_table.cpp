#include "dataplane/flow_table.hpp"

#include <rte_hash_crc.h>

#include "dataplane/conn_metrics.hpp"

namespace vanish::dp {

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
  entries_.reset(new FlowEntry[size_t(max_id) + 1]());
  cache_.reset(new CacheSlot[kCacheSlots]);
}

FlowTable::~FlowTable() {
  if (hash_) rte_hash_free(hash_);
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
