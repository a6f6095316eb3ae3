// FlowTable: one per worker (shared nothing). Caches the classification of a connection so later
// packets cost one bulk hash lookup. Backed by rte_hash (cuckoo, signature compare, bulk lookup);
// the entry index is the key's position in the hash, so entries live in one flat array.
// In front of rte_hash: a small direct-mapped cache (kCacheSlots x one cache line: key copy +
// entry index) indexed by the key's hash, which is computed once per packet (the same CRC32-C
// rte_hash uses) and reused for the rte_hash lookup on a cache miss. Every insert fills its
// slot; every delete clears the slot that names the deleted position, so a slot never names a
// position whose key differs from the slot's key.
//
// Contract: only the owning worker calls lookup_bulk/lookup/insert/erase/age; the entry memory is
// never freed while the worker runs. An entry made under an older config generation must be
// re-classified by the caller before use (generation != snapshot generation).
// Shared readers (conntrack.hpp): when built with an RCU variable, the table runs rte_hash's
// lock-free reader/writer mode and other workers may call lookup_shared() and read entry()
// concurrently with the owner. A deleted position is reused only after every registered reader
// passed a quiescent state (rte_hash's RCU defer queue), so a reader that found a key reads that
// key's entry. Readers must not keep a position across their own quiescent state.
#pragma once

#include <rte_hash.h>
#include <rte_rcu_qsbr.h>
#include <rte_hash_crc.h>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

#include <rte_prefetch.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/burst.hpp"
#include "dataplane/flow_key.hpp"

namespace vanish::dp {

// Per-flow address/port rewrite.
enum class NatKind : uint8_t {
  kNone = 0,
  kDnat,    // outbound to a service VIP: destination -> endpoint (nat_addr:nat_port)
  kUnDnat,  // reply from that endpoint: source -> the VIP (nat_addr:nat_port)
};

// Two cache lines, 64-byte aligned. Line 0 holds everything a packet of an established flow reads
// or writes (the classify/authorize hit path and the stages after it); line 1 what only a new
// flow, a re-classification, NAT or the control thread's views touch. lookup_bulk() prefetches
// line 0 of every hit.
struct alignas(64) FlowEntry {
  // --- line 0: per packet
  uint64_t generation;  // snapshot generation the decision was made under
  uint64_t packets, bytes;
  uint64_t last_tsc;
  uint32_t dst_workload;
  uint32_t identity;  // source identity id
  uint32_t node;      // destination node
  uint32_t conn;      // istio_tcp_* aggregate: ConnStats slot * 2 + dir (conn_metrics.hpp)
  FlowAction action;
  uint8_t drop_reason;  // when action == kDrop
  uint8_t is_static;    // pinned by an operator: never aged
  uint8_t is_reply;     // a reply to a flow a local workload opened (no authorization needed)
  uint16_t entropy;     // inner (Geneve) UDP source port: hash of the 5-tuple, made once
  NatKind nat;          // per-packet rewrite (nat.hpp)
  uint8_t host_state;   // egress hostname inspection (HostState, stage_hostname.hpp)
  uint16_t nat_port;    // network order; the new destination / source port
  // --- line 1: new flows, NAT, views
  alignas(64) IpAddr nat_addr;  // kDnat: new destination; kUnDnat: new source (the VIP)
  uint64_t created_tsc;
  uint32_t src_workload;
  uint32_t service;       // ServiceIdx when the flow went to a VIP, else kInvalidIdx
  uint32_t policy;        // authz PolicyId that decided (kDenyMatched / kAllowMatched), else ~0
  uint32_t authz_reason;  // authz::Reason + 1 when authorization ran, else 0
  uint32_t host_pattern = kInvalidIdx;  // egress: HostPolicy pattern that decided, if any
};
static_assert(sizeof(FlowEntry) <= 128, "DESIGN.md budget: a flow entry <= 128 bytes");
static_assert(offsetof(FlowEntry, nat_addr) == 64, "the per-packet fields fill line 0");

class ConnStats;

class FlowTable {
 public:
  // name must be unique per process (rte_hash names are global). readers: the QSBR variable of
  // every thread that may call lookup_shared() (null: owner-only table).
  FlowTable(const std::string& name, uint32_t capacity, int socket_id,
            rte_rcu_qsbr* readers = nullptr);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  bool ok() const { return hash_ != nullptr; }
  uint32_t capacity() const { return capacity_; }
  uint32_t size() const { return rte_hash_count(hash_); }

  static constexpr uint32_t kHashInit = 0x7a6e6973;  // rte_hash's hash_func_init_val
  static constexpr uint32_t kCacheSlots = 1024;      // 64 KiB per worker

  // The rte_hash signature of a key: rte_hash_crc(&key, 40, kHashInit), inlined.
  static uint32_t hash(const FlowKey& key) {
#if defined(__SSE4_2__)
    uint64_t w[5];
    std::memcpy(w, &key, sizeof w);
    uint64_t c = kHashInit;
    for (uint64_t x : w) c = _mm_crc32_u64(c, x);
    return uint32_t(c);
#else
    return rte_hash_crc(&key, sizeof(FlowKey), kHashInit);
#endif
  }
  static bool key_eq(const FlowKey& a, const FlowKey& b) {
    uint64_t x[5], y[5];
    std::memcpy(x, &a, sizeof x);
    std::memcpy(y, &b, sizeof y);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
  }

  // idx[i] = entry index or -1 for a miss. n <= kBurstSize. Prefetches line 0 of every entry
  // found, so the caller's per-packet loop finds them in cache (with 1M flows they are not).
  void lookup_bulk(const FlowKey* const* keys, unsigned n, int32_t* idx) {
    const void* miss_keys[kBurstSize];
    hash_sig_t miss_sig[kBurstSize];
    uint8_t miss_at[kBurstSize];
    unsigned nmiss = 0;
    for (unsigned i = 0; i < n; i++) {
      uint32_t h = hash(*keys[i]);
      const CacheSlot& c = cache_[h & (kCacheSlots - 1)];
      if (c.idx >= 0 && key_eq(c.key, *keys[i])) {
        idx[i] = c.idx;
        rte_prefetch0(&entries_[c.idx]);
        continue;
      }
      miss_keys[nmiss] = keys[i];
      miss_sig[nmiss] = h;
      miss_at[nmiss++] = uint8_t(i);
    }
    if (!nmiss) return;
    int32_t pos[kBurstSize];
    rte_hash_lookup_with_hash_bulk(hash_, miss_keys, miss_sig, nmiss, pos);
    for (unsigned j = 0; j < nmiss; j++) {
      idx[miss_at[j]] = pos[j] < 0 ? -1 : pos[j];
      if (pos[j] >= 0) {
        rte_prefetch0(&entries_[pos[j]]);
        fill(*keys[miss_at[j]], miss_sig[j], pos[j]);
      }
    }
  }
  int32_t lookup(const FlowKey& key) {
    uint32_t h = hash(key);
    const CacheSlot& c = cache_[h & (kCacheSlots - 1)];
    if (c.idx >= 0 && key_eq(c.key, key)) return c.idx;
    int32_t pos = rte_hash_lookup_with_hash(hash_, &key, h);
    if (pos < 0) return -1;
    fill(key, h, pos);
    return pos;
  }
  // A burst packet's flow after lookup_bulk(): bulk_idx if it hit; on a miss, looked up again if
  // an earlier packet of the same burst inserted (*burst_inserted), else inserted (*created set,
  // *burst_inserted set). -1: the table is full.
  int32_t find_or_insert(const FlowKey& key, int32_t bulk_idx, bool* burst_inserted,
                         bool* created) {
    *created = false;
    if (bulk_idx >= 0) return bulk_idx;
    if (*burst_inserted) {
      int32_t p = lookup(key);
      if (p >= 0) return p;
    }
    *burst_inserted = true;
    *created = true;
    return insert(key);
  }
  // Any thread registered with the table's RCU variable (see the contract). No cache.
  int32_t lookup_shared(const FlowKey& key) const {
    int32_t pos = rte_hash_lookup_with_hash(hash_, &key, hash(key));
    return pos < 0 ? -1 : pos;
  }
  // Returns the new entry index, or -1 if the table is full.
  int32_t insert(const FlowKey& key) {
    uint32_t h = hash(key);
    int32_t pos = rte_hash_add_key_with_hash(hash_, &key, h);
    if (pos < 0) return -1;
    fill(key, h, pos);
    return pos;
  }
  // The reply-index key of a DNATed outbound flow: the tuple its endpoint's replies carry
  // (endpoint -> client), zone kZoneReplyIndex.
  static FlowKey reply_index_key(const FlowKey& k, const FlowEntry& e) {
    FlowKey r = k;
    std::memcpy(r.src, e.nat_addr.b.data(), 16);
    std::memcpy(r.dst, k.src, 16);
    r.sport = e.nat_port;
    r.dport = k.sport;
    r.zone = kZoneReplyIndex;
    return r;
  }

  bool erase(const FlowKey& key) {
    uint32_t h = hash(key);
    int32_t pos = rte_hash_del_key_with_hash(hash_, &key, h);
    if (pos < 0) return false;
    forget(h, pos);
    return true;
  }
  FlowEntry& entry(int32_t idx) {
    return entries_[idx];
  }
  const FlowEntry& entry(int32_t idx) const {
    return entries_[idx];
  }

  // Removes up to `budget` entries idle for longer than idle_tsc, scanning incrementally from where
  // the previous call stopped. Returns the number removed. Reply-index keys (kZoneReplyIndex) are
  // never aged on their own: they go with the DNAT flow they belong to (reply_index_key()).
  // Static entries are never aged.
  unsigned age(uint64_t now_tsc, uint64_t idle_tsc, unsigned budget);
  // The owner's istio_tcp_* aggregates: an aged connection opener counts as closed there.
  void set_conn_stats(ConnStats* c) {
    conn_ = c;
  }

  // Key positions 0 .. positions()-1, for incremental scans by the owner (worker_mailbox.cpp):
  // key_at() is false for a position that holds no live key.
  uint32_t positions() const {
    return uint32_t(rte_hash_max_key_id(hash_)) + 1;
  }
  bool key_at(uint32_t pos, FlowKey* k) const {
    void* kp;
    if (rte_hash_get_key_with_position(hash_, int32_t(pos), &kp) != 0) return false;
    std::memcpy(k, kp, sizeof *k);
    return true;
  }

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
  struct alignas(64) CacheSlot {
    FlowKey key;
    int32_t idx = -1;  // -1: empty
  };
  void fill(const FlowKey& key, uint32_t h, int32_t pos) {
    CacheSlot& c = cache_[h & (kCacheSlots - 1)];
    c.key = key;
    c.idx = pos;
  }
  void forget(uint32_t h, int32_t pos) {
    CacheSlot& c = cache_[h & (kCacheSlots - 1)];
    if (c.idx == pos) c.idx = -1;
  }

  rte_hash* hash_ = nullptr;
  uint32_t capacity_ = 0;
  bool alloc_entries(size_t n, int socket_id);

  FlowEntry* entries_ = nullptr;  // n_entries_ of them, see alloc_entries()
  size_t n_entries_ = 0;
  size_t entries_bytes_ = 0;
  bool entries_in_dpdk_ = false;
  uint32_t age_cursor_ = 0;
  ConnStats* conn_ = nullptr;
  std::unique_ptr<CacheSlot[]> cache_;
};

}  // namespace vanish::dp
