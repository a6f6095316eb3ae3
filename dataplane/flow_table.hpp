// FlowTable: one per worker (shared nothing). Caches the classification of a connection so later
// packets cost one bulk hash lookup. Backed by rte_hash (cuckoo, signature compare, bulk lookup);
// the entry index is the key's position in the hash, so entries live in one flat array.
//
// Contract: only the owning worker calls lookup_bulk/insert/age; the entry memory is never freed
// while the worker runs. An entry made under an older config generation must be re-classified by
// the caller before use (generation != snapshot generation).
#pragma once

#include <rte_hash.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/burst.hpp"
#include "dataplane/flow_key.hpp"

namespace vanish::dp {

struct FlowEntry {
  uint64_t generation;  // snapshot generation the decision was made under
  uint64_t packets, bytes;
  uint64_t created_tsc, last_tsc;
  uint32_t src_workload, dst_workload;
  uint32_t identity;  // source identity id
  uint32_t node;      // destination node
  FlowAction action;
  uint8_t drop_reason;  // when action == kDrop
  uint8_t is_static;    // pinned by an operator: never aged
  uint8_t pad;
  uint16_t entropy;     // inner (Geneve) UDP source port: hash of the 5-tuple, made once
  uint16_t pad2;
};
static_assert(sizeof(FlowEntry) <= 128, "DESIGN.md budget: a flow entry <= 128 bytes");

class FlowTable {
 public:
  // name must be unique per process (rte_hash names are global).
  FlowTable(const std::string& name, uint32_t capacity, int socket_id);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  bool ok() const { return hash_ != nullptr; }
  uint32_t capacity() const { return capacity_; }
  uint32_t size() const { return rte_hash_count(hash_); }

  // idx[i] = entry index or -1 for a miss.
  void lookup_bulk(const FlowKey* const* keys, unsigned n, int32_t* idx) const {
    rte_hash_lookup_bulk(hash_, reinterpret_cast<const void**>(const_cast<const FlowKey**>(keys)),
                         n, idx);
  }
  int32_t lookup(const FlowKey& key) const {
    int32_t pos = rte_hash_lookup(hash_, &key);
    return pos < 0 ? -1 : pos;
  }
  // Returns the new entry index, or -1 if the table is full.
  int32_t insert(const FlowKey& key) {
    int32_t pos = rte_hash_add_key(hash_, &key);
    return pos < 0 ? -1 : pos;
  }
  bool erase(const FlowKey& key) { return rte_hash_del_key(hash_, &key) >= 0; }
  FlowEntry& entry(int32_t idx) { return entries_[idx]; }
  const FlowEntry& entry(int32_t idx) const { return entries_[idx]; }

  // Removes up to `budget` entries idle for longer than idle_tsc, scanning incrementally from where
  // the previous call stopped. Returns the number removed.
  unsigned age(uint64_t now_tsc, uint64_t idle_tsc, unsigned budget);

  // Visits every entry (control/diagnostics; not on the hot path).
  template <typename F>
  void for_each(F&& f) const {
    const void* key;
    void* data;
    uint32_t it = 0;
    int32_t pos;
    while ((pos = rte_hash_iterate(hash_, &key, &data, &it)) >= 0)
      f(*static_cast<const FlowKey*>(key), entries_[pos]);
  }

 private:
  rte_hash* hash_ = nullptr;
  uint32_t capacity_ = 0;
  std::unique_ptr<FlowEntry[]> entries_;
  uint32_t age_cursor_ = 0;
};

}  // namespace vanish::dp
