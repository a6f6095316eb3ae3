// FlowTable: one per worker (shared nothing). Caches the classification of a connection so later
// packets cost one bulk lookup. A flat, bucketised open-addressing index in hugepage memory:
//
//   buckets_[h & mask]   one cache line: 7 slots of (32-bit hash << 32 | position + 1), 0 = empty,
//                        and `overflow`, the number of keys whose home is this bucket but which
//                        sit in a later bucket (linear probing, at most max_probe_ buckets on).
//   keys_[pos]           the 40-byte key        } one position per flow; positions come from a
//   entries_[pos]        the FlowEntry (2 lines) } free stack, so entries live in flat arrays.
//
// A packet of an established flow costs two dependent memory round trips: its home bucket, then
// its key and entry lines together. lookup_bulk() runs them as a pipeline over the burst (hash
// and prefetch every bucket, then match and prefetch every key and entry, then compare), so with
// 1M flows the misses of a burst overlap. Keys never move once placed (no cuckoo displacement),
// so a lock-free reader that misses a key only races with that key's own insert or erase.
//
// Contract: only the owning worker calls lookup_bulk/lookup/insert/erase/age; the entry memory is
// never freed while the worker runs. An entry made under an older config generation must be
// re-classified by the caller before use (generation != the snapshot's decision_generation).
// Shared readers (conntrack.hpp): when built with an RCU variable, other workers may call
// lookup_shared() and read entry() concurrently with the owner. A slot is published with a release
// store after its key is written; an erased position is reused only after every registered reader
// passed a quiescent state (a FIFO of positions stamped with rte_rcu_qsbr tokens), so a reader that
// found a key reads that key's entry. Readers must not keep a position across their own quiescent
// state.
#pragma once

#include <rte_hash_crc.h>
#include <rte_rcu_qsbr.h>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif
#if defined(__AVX2__)
#include <immintrin.h>
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

// An IPv4 flow's 40-byte key (both addresses IPv4-mapped) in 16 bytes: the two IPv4 addresses
// and the ports / proto / zone / pad word, with bit 63 set, so a valid tag is never all zeros.
// Two keys with valid tags are equal exactly when their tags are. Other keys (IPv6) have none.
struct FlowTag {
  uint64_t addrs = 0;  // src4 | dst4 << 32, network byte order inside each half
  uint64_t rest = 0;   // key bytes 32..39, | 1 << 63

  static constexpr uint64_t kValid = 1ull << 63;
  // False for a key that has no tag (not IPv4-mapped, or bit 63 of its last word set).
  static bool of(const FlowKey& k, FlowTag* t) {
    const uint64_t w[5] = {key_word(k, 0), key_word(k, 1), key_word(k, 2), key_word(k, 3),
                           key_word(k, 4)};
    // IPv4-mapped: bytes 0..9 zero, bytes 10..11 0xff (little-endian: the low word of w[1], w[3]).
    if ((w[0] | w[2]) != 0 || uint32_t(w[1]) != 0xffff0000u || uint32_t(w[3]) != 0xffff0000u ||
        (w[4] & kValid))
      return false;
    t->addrs = (w[1] >> 32) | (w[3] & 0xffffffff00000000ull);
    t->rest = w[4] | kValid;
    return true;
  }
  bool operator==(const FlowTag& o) const { return ((addrs ^ o.addrs) | (rest ^ o.rest)) == 0; }
};

// Two cache lines, 64-byte aligned. Line 0 holds everything a packet of an established flow reads
// or writes (the classify/authorize hit path and the stages after it, inbound delivery and
// hairpin included) and, for IPv4 flows, the key's tag, so a hit reads one line besides its
// bucket; line 1 what only a new flow, a re-classification, NAT or the control thread's views
// touch. lookup_bulk() prefetches line 0 of every hit. With 1M flows every line is a memory
// miss, so a line fewer per packet is worth a coarser last-packet time (last_seen).
struct alignas(64) FlowEntry {
  // --- line 0: per packet
  FlowTag tag;  // written by FlowTable only (FlowTable::reset() keeps it); zero: no tag
  uint64_t packets, bytes;
  uint32_t last_seen;     // seen_stamp() of the last packet's time (touch(), idle_ticks())
  uint32_t dst_workload;  // WorkloadIdx the flow delivers to (inbound, hairpin), when known
  uint32_t generation;  // gen32() of the snapshot's decision_generation the decision was made under
  uint32_t identity;    // source identity id
  uint32_t node;        // destination node
  uint32_t conn;        // istio_tcp_* aggregate: ConnStats slot * 2 + dir (conn_metrics.hpp)
  uint16_t entropy;     // inner (Geneve) UDP source port: hash of the 5-tuple, made once
  FlowAction action;
  uint8_t drop_reason;  // when action == kDrop
  uint8_t is_static;    // pinned by an operator: never aged
  uint8_t is_reply;     // a reply to a flow a local workload opened (no authorization needed)
  NatKind nat;          // per-packet rewrite (nat.hpp)
  uint8_t host_state;   // egress hostname inspection (HostState, stage_hostname.hpp)
  // --- line 1: new flows, NAT, hairpin, views
  alignas(64) IpAddr nat_addr;  // kDnat: new destination; kUnDnat: new source (the VIP)
  uint64_t created_tsc;
  uint32_t src_workload;
  uint32_t service;       // ServiceIdx when the flow went to a VIP, else kInvalidIdx
  uint32_t policy;        // authz PolicyId that decided (kDenyMatched / kAllowMatched), else ~0
  uint32_t authz_reason;  // authz::Reason + 1 when authorization ran, else 0
  uint32_t host_pattern = kInvalidIdx;  // egress: HostPolicy pattern that decided, if any
  uint16_t nat_port;                    // network order; the new destination / source port

  // last_seen counts TSC ticks in units of 2^kSeenShift (under half a millisecond at 2.5 GHz) and
  // wraps after 2^(32 + kSeenShift) ticks (20 days at 2.5 GHz). idle_ticks() is a lower bound of
  // the time since the last packet, short of it by less than two units, for any idle time below
  // the wrap, which aging (minutes) never lets a flow reach: a flow ages at most a millisecond
  // late, never early, and its idle time never reads longer than its age.
  static constexpr unsigned kSeenShift = 20;
  static uint32_t seen_stamp(uint64_t tsc) { return uint32_t(tsc >> kSeenShift); }
  void touch(uint64_t now_tsc) { last_seen = seen_stamp(now_tsc); }
  uint64_t idle_ticks(uint64_t now_tsc) const {
    const uint32_t units = seen_stamp(now_tsc) - last_seen;
    return units ? uint64_t(units - 1) << kSeenShift : 0;
  }
};
static_assert(sizeof(FlowEntry) <= 128, "DESIGN.md budget: a flow entry <= 128 bytes");
static_assert(offsetof(FlowEntry, nat_addr) == 64, "the per-packet fields fill line 0");

// An entry's generation field: the low 32 bits of a snapshot generation (line 0 has no room for
// 64). Two generations 2^32 applies apart compare equal; an entry that old has long been aged.
inline uint32_t gen32(uint64_t generation) {
  return uint32_t(generation);
}

class ConnStats;

class FlowTable {
 public:
  // name: for messages only. readers: the QSBR variable of every thread that may call
  // lookup_shared() (null: owner-only table, erased positions are reused at once).
  FlowTable(const std::string& name, uint32_t capacity, int socket_id,
            rte_rcu_qsbr* readers = nullptr);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  bool ok() const { return buckets_ != nullptr; }
  uint32_t capacity() const { return capacity_; }
  // Bytes of the index, keys, entries and free lists; and whether all of it is DPDK (hugepage)
  // memory rather than anonymous memory the kernel may back with transparent huge pages.
  size_t memory_bytes() const {
    size_t b = 0;
    for (unsigned i = 0; i < n_regions_; i++) b += regions_[i].bytes;
    return b;
  }
  bool in_dpdk_memory() const {
    for (unsigned i = 0; i < n_regions_; i++)
      if (!regions_[i].dpdk) return false;
    return n_regions_ > 0;
  }
  // Live keys. Any thread may read it (a relaxed snapshot).
  uint32_t size() const { return __atomic_load_n(&count_, __ATOMIC_RELAXED); }

  static constexpr uint32_t kHashInit = 0x7a6e6973;
  static constexpr unsigned kSlots = 7;  // per bucket; the 8th word is the overflow count

  // CRC32-C over the key's five words.
  static uint32_t hash(const FlowKey& key) {
#if defined(__SSE4_2__)
    uint64_t c = _mm_crc32_u64(kHashInit, key_word(key, 0));
    c = _mm_crc32_u64(c, key_word(key, 1));
    c = _mm_crc32_u64(c, key_word(key, 2));
    c = _mm_crc32_u64(c, key_word(key, 3));
    return uint32_t(_mm_crc32_u64(c, key_word(key, 4)));
#else
    return rte_hash_crc(&key, sizeof(FlowKey), kHashInit);
#endif
  }
  static bool key_eq(const FlowKey& a, const FlowKey& b) {
    return ((key_word(a, 0) ^ key_word(b, 0)) | (key_word(a, 1) ^ key_word(b, 1)) |
            (key_word(a, 2) ^ key_word(b, 2)) | (key_word(a, 3) ^ key_word(b, 3)) |
            (key_word(a, 4) ^ key_word(b, 4))) == 0;
  }

  // idx[i] = entry index or -1 for a miss. n <= kBurstSize. Prefetches line 0 of every entry
  // found, so the caller's per-packet loop finds them in cache.
  void lookup_bulk(const FlowKey* const* keys, unsigned n, int32_t* idx) {
    uint32_t h[kBurstSize];
    FlowTag tag[kBurstSize];
    bool tagged[kBurstSize];
    for (unsigned i = 0; i < n; i++) {
      h[i] = hash(*keys[i]);
      prefetch_bucket(h[i]);
      tagged[i] = FlowTag::of(*keys[i], &tag[i]);
    }
    // Short and nearly branch-free, so the core runs many packets ahead and their bucket misses
    // and entry prefetches overlap.
    for (unsigned i = 0; i < n; i++) {
      int32_t p = match_home(buckets_[h[i] & mask_], h[i]);
      idx[i] = p;
      if (p >= 0) {
        rte_prefetch0(&entries_[p]);
        if (!tagged[i]) rte_prefetch0(&keys_[p]);  // IPv4 keys compare with line 0's tag
      }
    }
    for (unsigned i = 0; i < n; i++) verify_one(*keys[i], h[i], tagged[i], tag[i], &idx[i]);
  }

  // lookup_bulk() one step at a time, for a caller that spreads a burst's memory round trips
  // over other work (Pipeline::outbound_run): prefetch_bucket() the key's home bucket (hash());
  // match_one() / match_bulk() read it and prefetch the entry line (and, for a key without a tag,
  // the key) of the slot whose hash matches; verify_bulk() compares and looks up again what did not
  // verify. Between a key's match and its verify the table must not change (no insert or erase):
  // a position matched before an erase would be compared after it.
  void prefetch_bucket(uint32_t h) const {
    rte_prefetch0(&buckets_[h & mask_]);
  }
  int32_t match_one(const FlowKey& key, uint32_t h) const {
    int32_t p = match_home(buckets_[h & mask_], h);
    if (p >= 0) {
      rte_prefetch0(&entries_[p]);
      FlowTag t;
      if (!FlowTag::of(key, &t)) rte_prefetch0(&keys_[p]);  // IPv4 keys compare the tag
    }
    return p;
  }
  // Short and nearly branch-free, so the core runs many packets ahead and their bucket misses
  // and entry prefetches overlap.
  void match_bulk(const FlowKey* const* keys, unsigned n, const uint32_t* h, int32_t* idx) const {
    for (unsigned i = 0; i < n; i++) idx[i] = match_one(*keys[i], h[i]);
  }
  void verify_bulk(const FlowKey* const* keys, unsigned n, const uint32_t* h, int32_t* idx) const {
    for (unsigned i = 0; i < n; i++) {
      FlowTag tag;
      const bool tagged = FlowTag::of(*keys[i], &tag);
      verify_one(*keys[i], h[i], tagged, tag, &idx[i]);
    }
  }
  // *idx: the position match_home() gave (or -1); the key's position when done.
  void verify_one(const FlowKey& key, uint32_t h, bool tagged, const FlowTag& tag,
                  int32_t* idx) const {
    const int32_t p = *idx;
    if (p >= 0 && (tagged && entries_[p].tag.rest ? entries_[p].tag == tag : key_eq(keys_[p], key)))
      return;
    *idx = find(key, h);  // a miss, an overflowed key or a 32-bit hash collision
    if (*idx >= 0) rte_prefetch0(&entries_[*idx]);
  }
  int32_t lookup(const FlowKey& key) const {
    return find(key, hash(key));
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
  // Any thread registered with the table's RCU variable (see the contract).
  int32_t lookup_shared(const FlowKey& key) const {
    return find(key, hash(key));
  }
  // The key's position: the existing one if the key is present, else a new one (its entry is
  // the caller's to initialise). -1 if the table is full.
  int32_t insert(const FlowKey& key);
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

  bool erase(const FlowKey& key);
  // A fresh entry at a position insert() returned: every field value-initialised except the tag
  // (assigning FlowEntry{} instead would clear it, which costs IPv4 hits the key line).
  FlowEntry& reset(int32_t idx) {
    FlowEntry& e = entries_[idx];
    const FlowTag t = e.tag;
    e = FlowEntry{};
    e.tag = t;
    return e;
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
    return capacity_;
  }
  bool key_at(uint32_t pos, FlowKey* k) const {
    if (pos >= capacity_ || !live_[pos]) return false;
    *k = keys_[pos];
    return true;
  }

  // Visits every entry (control/diagnostics by the owner; not on the hot path).
  template <typename F>
  void for_each(F&& f) const {
    for (uint32_t pos = 0; pos < capacity_; pos++)
      if (live_[pos]) f(keys_[pos], entries_[pos]);
  }

 private:
  struct alignas(64) Bucket {
    uint64_t slot[kSlots];  // (hash << 32) | (position + 1); 0: empty
    uint32_t overflow;      // keys homed here that sit in a later bucket
    uint32_t pad;
  };
  static_assert(sizeof(Bucket) == 64);
  static uint64_t load(const uint64_t& s) {
    return __atomic_load_n(&s, __ATOMIC_ACQUIRE);
  }

  // The first slot of bucket b whose hash is h, as a position, or -1. Owner only (plain loads:
  // the owner is the only writer).
  static int32_t match_home(const Bucket& b, uint32_t h) {
#if defined(__AVX2__)
    if (h != 0) {  // hash 0 would match empty slots (0): the scalar loop below checks positions
      const __m256i high = _mm256_set1_epi64x(int64_t(0xffffffff00000000ull));
      const __m256i want = _mm256_set1_epi64x(int64_t(uint64_t(h) << 32));
      const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(&b.slot[0]));
      const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(&b.slot[4]));
      const unsigned m0 = unsigned(_mm256_movemask_pd(
          _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(v0, high), want))));
      const unsigned m1 = unsigned(_mm256_movemask_pd(
          _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(v1, high), want))));
      const unsigned m = (m0 | m1 << 4) & ((1u << kSlots) - 1);  // lane 7: overflow and pad
      return m ? int32_t(uint32_t(b.slot[__builtin_ctz(m)]) - 1) : -1;
    }
#endif
    for (unsigned s = 0; s < kSlots; s++) {
      uint64_t v = load(b.slot[s]);
      if (uint32_t(v >> 32) == h && uint32_t(v) != 0) return int32_t(uint32_t(v) - 1);
    }
    return -1;
  }
  // Full lookup: every slot of the home bucket, then the buckets after it while keys homed there
  // overflowed. *where (optional): bucket index * kSlots + slot of the key.
  int32_t find(const FlowKey& key, uint32_t h, uint64_t* where = nullptr) const {
    const uint32_t home = h & mask_;
    const uint32_t probe = __atomic_load_n(&buckets_[home].overflow, __ATOMIC_ACQUIRE)
                               ? __atomic_load_n(&max_probe_, __ATOMIC_ACQUIRE)
                               : 0;
    for (uint32_t d = 0; d <= probe; d++) {
      const uint32_t bi = (home + d) & mask_;
      const Bucket& b = buckets_[bi];
      for (unsigned s = 0; s < kSlots; s++) {
        uint64_t v = load(b.slot[s]);
        if (uint32_t(v >> 32) != h || uint32_t(v) == 0) continue;
        int32_t p = int32_t(uint32_t(v) - 1);
        if (!key_eq(keys_[p], key)) continue;
        if (where) *where = uint64_t(bi) * kSlots + s;
        return p;
      }
    }
    return -1;
  }
  int32_t alloc_position();
  void release_position(uint32_t pos);
  void reclaim();

  std::string name_;
  uint32_t capacity_ = 0;
  uint32_t mask_ = 0;       // buckets - 1
  uint32_t max_probe_ = 0;  // the farthest any key sits from its home bucket, in buckets
  uint32_t count_ = 0;
  Bucket* buckets_ = nullptr;
  FlowKey* keys_ = nullptr;
  FlowEntry* entries_ = nullptr;
  uint8_t* live_ = nullptr;   // live_[pos]: the position holds a key
  uint32_t* free_ = nullptr;  // free positions, a stack of n_free_
  uint32_t n_free_ = 0;
  // Erased positions waiting for a grace period (shared readers only): a ring of positions, and
  // a ring of batches (the token taken after the batch's last position was unlinked, its size).
  rte_rcu_qsbr* readers_ = nullptr;
  uint32_t* pend_ = nullptr;
  uint32_t pend_head_ = 0, pend_n_ = 0, open_n_ = 0;
  struct Batch {
    uint64_t token;
    uint32_t n;
  };
  static constexpr uint32_t kBatches = 256;
  Batch batch_[kBatches];
  uint32_t batch_head_ = 0, n_batch_ = 0;

  uint32_t age_cursor_ = 0;
  ConnStats* conn_ = nullptr;

  // Large arrays: DPDK hugepages on the worker's socket when EAL has them, else an anonymous
  // mapping the kernel may back with transparent huge pages.
  struct Region {
    void* p = nullptr;
    size_t bytes = 0;
    bool dpdk = false;
  };
  Region regions_[6];
  unsigned n_regions_ = 0;
  void* alloc_region(size_t bytes, int socket_id);
};

}  // namespace vanish::dp
