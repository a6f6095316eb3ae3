// vanish-flow-table-bench: the per-packet cost of the flow lookup with 1, 1k and 1M flows, for the
// issue-6 target "1M flows within 10 % of 1k flows", without ports or crypto in the way.
//
// Per packet, as OutboundClassify does: build the 40-byte key (from a packet index, so the
// "packet" is always in cache, like a header just received), look the burst up in bulk, then
// touch the entry's line 0 (generation check, packets/bytes/last_seen). Flows are visited in a
// pseudo-random order (a multiplicative walk), so with 1M flows nearly every lookup misses every
// cache, as with real traffic. Two tables side by side:
//   flow_table  dp::FlowTable (flat bucketised index, keys + entries in hugepage memory)
//   rte_hash    DPDK's cuckoo hash (rte_hash_lookup_with_hash_bulk, 40-byte keys, the same
//               CRC32-C hash and key compare) with the same entry array: the previous design.
// Rounds alternate flow counts and tables (noise hits all of them alike); each figure is the
// median over rounds, and each table's 1M/1k ratio is computed within the run.
//
// Usage: vanish-flow-table-bench [EAL args] -- [--flows 1,1000,1000000] [--rounds 5]
//        [--packets 4000000] [--capacity 2097152]
//   EAL args: e.g. --no-huge -m 64 --no-pci --file-prefix ftb (tables come from hugepages when
//   EAL has them, else from THP-backed anonymous memory).
// Output: a table, then one JSON line per (table, flows): {"bench":"flow_table","table":..,
// "flows":..,"ns_per_pkt":..}, and {"bench":"flow_table_ratio","table":..,"ratio_1m_1k":..}.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_hash.h>
#include <rte_malloc.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/flow_table.hpp"

namespace dp = vanish::dp;

namespace {

dp::FlowKey key_of(uint32_t i) {
  dp::FlowKey k{};
  k.src[10] = k.src[11] = 0xff;
  k.src[12] = 10;
  k.src[13] = 1;
  k.src[14] = uint8_t(i >> 16);
  k.src[15] = 2;
  k.dst[10] = k.dst[11] = 0xff;
  k.dst[12] = 10;
  k.dst[13] = 2;
  k.dst[15] = 9;
  k.sport = uint16_t(i);
  k.dport = 0x5000;
  k.proto = 17;
  return k;
}

// The old design: rte_hash positions index an entry array.
struct RteHashTable {
  rte_hash* h = nullptr;
  std::vector<dp::FlowEntry> entries;
  explicit RteHashTable(uint32_t capacity) {
    rte_hash_parameters p{};
    p.name = "ftb_rte_hash";
    p.entries = capacity;
    p.key_len = sizeof(dp::FlowKey);
    p.hash_func = rte_hash_crc;
    p.hash_func_init_val = dp::FlowTable::kHashInit;
    p.socket_id = 0;
    h = rte_hash_create(&p);
    if (h) {
      rte_hash_set_cmp_func(h, [](const void* a, const void* b, size_t) {
        return dp::FlowTable::key_eq(*static_cast<const dp::FlowKey*>(a),
                                     *static_cast<const dp::FlowKey*>(b))
                   ? 0
                   : 1;
      });
      entries.resize(size_t(rte_hash_max_key_id(h)) + 1);
    }
  }
  ~RteHashTable() {
    if (h) rte_hash_free(h);
  }
  int32_t insert(const dp::FlowKey& k) {
    return rte_hash_add_key_with_hash(h, &k, dp::FlowTable::hash(k));
  }
  void lookup_bulk(const dp::FlowKey* const* keys, unsigned n, int32_t* idx) {
    hash_sig_t sig[dp::kBurstSize];
    const void* kv[dp::kBurstSize];
    for (unsigned i = 0; i < n; i++) {
      sig[i] = dp::FlowTable::hash(*keys[i]);
      kv[i] = keys[i];
    }
    rte_hash_lookup_with_hash_bulk(h, kv, sig, n, idx);
    for (unsigned i = 0; i < n; i++)
      if (idx[i] >= 0) rte_prefetch0(&entries[idx[i]]);
  }
  dp::FlowEntry& entry(int32_t i) { return entries[i]; }
};

// The memory floor of a lookup on this machine: the same hash and the same number of dependent
// random cache lines per packet as a table, and nothing else (no compare, no probing, no free
// slots: keys that collide share a position). Lines = 1: the hash picks the entry itself (the
// floor of a design whose entry array is the hash table). Lines = 2: the hash picks an index
// line, a word in it picks the entry (the floor of dp::FlowTable's bucket -> entry). Regions
// are sized like dp::FlowTable's for the same capacity and come from the same kind of memory.
template <int kLines>
struct MemoryFloor {
  struct alignas(64) Line {
    uint32_t pos[16];
  };
  uint32_t mask = 0, index_mask = 0, next = 0;
  dp::FlowEntry* entries = nullptr;
  Line* index = nullptr;
  size_t entry_bytes = 0, index_bytes = 0;
  explicit MemoryFloor(uint32_t capacity) {
    uint32_t cap = 1;
    while (cap < capacity) cap <<= 1;
    mask = cap - 1;
    entry_bytes = size_t(cap) * sizeof(dp::FlowEntry);
    entries = static_cast<dp::FlowEntry*>(region(entry_bytes));
    if (kLines == 2) {
      uint32_t nb = 1;
      while (nb < (capacity + 3) / 4) nb <<= 1;  // dp::FlowTable's bucket count
      index_mask = nb - 1;
      index_bytes = size_t(nb) * sizeof(Line);
      index = static_cast<Line*>(region(index_bytes));
    }
  }
  ~MemoryFloor() {
    release(entries, entry_bytes);
    release(index, index_bytes);
  }
  static void* region(size_t bytes) {
    if (rte_eal_has_hugepages()) {
      if (void* m = rte_zmalloc("ftb_floor", bytes, 64)) return m;
    }
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    madvise(m, bytes, MADV_HUGEPAGE);
    return m;
  }
  static void release(void* p, size_t bytes) {
    if (!p) return;
    if (rte_eal_has_hugepages() && rte_malloc_validate(p, nullptr) == 0)
      rte_free(p);
    else
      munmap(p, bytes);
  }
  bool ok() const { return entries && (kLines == 1 || index); }
  int32_t insert(const dp::FlowKey& k) {
    const uint32_t h = dp::FlowTable::hash(k);
    if (kLines == 1) return int32_t(h & mask);
    const uint32_t p = next++ & mask;
    index[h & index_mask].pos[h >> 28] = p;
    return int32_t(p);
  }
  void lookup_bulk(const dp::FlowKey* const* keys, unsigned n, int32_t* idx) {
    uint32_t h[dp::kBurstSize];
    for (unsigned i = 0; i < n; i++) {
      h[i] = dp::FlowTable::hash(*keys[i]);
      if (kLines == 1) {
        idx[i] = int32_t(h[i] & mask);
        rte_prefetch0(&entries[idx[i]]);
      } else {
        rte_prefetch0(&index[h[i] & index_mask]);
      }
    }
    if (kLines == 2) {
      for (unsigned i = 0; i < n; i++) {
        idx[i] = int32_t(index[h[i] & index_mask].pos[h[i] >> 28]);
        rte_prefetch0(&entries[idx[i]]);
      }
    }
  }
  dp::FlowEntry& entry(int32_t i) { return entries[i]; }
};

// One measurement: `packets` packets over `flows` flows in a multiplicative order. ns/packet.
template <typename T>
double run(T& t, uint32_t flows, uint64_t packets, uint64_t* sink) {
  // A stride coprime with flows visits every flow once per `flows` packets, far apart.
  uint64_t stride = 2654435761u % flows;
  while (flows > 1 && std::__gcd<uint64_t>(stride, flows) != 1) stride++;
  if (flows == 1) stride = 0;
  uint64_t at = 0;
  dp::FlowKey keys[dp::kBurstSize];
  const dp::FlowKey* kp[dp::kBurstSize];
  for (unsigned i = 0; i < dp::kBurstSize; i++) kp[i] = &keys[i];
  int32_t idx[dp::kBurstSize];
  uint64_t misses = 0;
  const uint64_t t0 = rte_rdtsc();
  for (uint64_t done = 0; done < packets; done += dp::kBurstSize) {
    for (unsigned i = 0; i < dp::kBurstSize; i++) {
      keys[i] = key_of(uint32_t(at));
      at += stride;
      if (at >= flows) at -= flows;
    }
    t.lookup_bulk(kp, dp::kBurstSize, idx);
    const uint64_t now = t0 + done;
    for (unsigned i = 0; i < dp::kBurstSize; i++) {
      if (idx[i] < 0) {
        misses++;
        continue;
      }
      dp::FlowEntry& e = t.entry(idx[i]);
      if (e.generation != 7) misses++;
      e.packets++;
      e.bytes += 64;
      e.touch(now);
    }
  }
  const uint64_t cycles = rte_rdtsc() - t0;
  *sink += misses;
  return double(cycles) * 1e9 / double(rte_get_tsc_hz()) / double(packets);
}

template <typename T>
bool fill(T& t, uint32_t flows) {
  for (uint32_t f = 0; f < flows; f++) {
    int32_t p = t.insert(key_of(f));
    if (p < 0) return false;
    t.entry(p).generation = 7;
  }
  return true;
}

std::vector<uint32_t> parse_list(const char* s) {
  std::vector<uint32_t> v;
  for (const char* p = s; *p;) {
    v.push_back(uint32_t(std::strtoul(p, const_cast<char**>(&p), 10)));
    if (*p == ',')
      p++;
    else if (*p)
      break;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int used = rte_eal_init(argc, argv);
  if (used < 0) {
    std::fprintf(stderr, "vanish-flow-table-bench: EAL init failed\n");
    return 2;
  }
  argc -= used;
  argv += used;
  std::vector<uint32_t> counts = {1, 1000, 1000000};
  int rounds = 5;
  uint64_t packets = 4000000;
  uint32_t capacity = 2097152;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--flows")
      counts = parse_list(val());
    else if (a == "--rounds")
      rounds = std::max(1, std::atoi(val()));
    else if (a == "--packets")
      packets = std::max<uint64_t>(dp::kBurstSize, std::strtoull(val(), nullptr, 10));
    else if (a == "--capacity")
      capacity = uint32_t(std::strtoul(val(), nullptr, 10));
    else {
      std::fprintf(stderr,
                   "usage: vanish-flow-table-bench [EAL args] -- [--flows 1,1000,1000000] "
                   "[--rounds 5] [--packets 4000000] [--capacity 2097152]\n");
      return 2;
    }
  }
  for (uint32_t c : counts) {
    if (c == 0 || c > capacity) {
      std::fprintf(stderr, "--flows %u: must be 1..capacity (%u)\n", c, capacity);
      return 2;
    }
  }
  // One table per flow count and kind, filled before any timing.
  std::vector<std::unique_ptr<dp::FlowTable>> flat;
  std::vector<std::unique_ptr<RteHashTable>> rh;
  for (size_t i = 0; i < counts.size(); i++) {
    flat.push_back(std::make_unique<dp::FlowTable>("ftb" + std::to_string(i), capacity, 0));
    if (!flat.back()->ok() || !fill(*flat.back(), counts[i])) {
      std::fprintf(stderr, "flow_table: cannot hold %u flows\n", counts[i]);
      return 1;
    }
  }
  // The floors hold every count's keys at once (key i is the same key in every count).
  MemoryFloor<1> floor1(capacity);
  MemoryFloor<2> floor2(capacity);
  if (!floor1.ok() || !floor2.ok()) {
    std::fprintf(stderr, "memory floor: no memory for %u flows\n", capacity);
    return 1;
  }
  fill(floor1, *std::max_element(counts.begin(), counts.end()));
  fill(floor2, *std::max_element(counts.begin(), counts.end()));
  // rte_hash names are global: one at a time, rebuilt per count (kept only while measured).
  std::map<std::string, std::map<uint32_t, std::vector<double>>> ns;
  uint64_t sink = 0;
  for (int r = 0; r < rounds; r++) {
    for (size_t i = 0; i < counts.size(); i++) {
      run(*flat[i], counts[i], packets / 4, &sink);  // warm
      ns["flow_table"][counts[i]].push_back(run(*flat[i], counts[i], packets, &sink));
      RteHashTable t(capacity);
      if (!t.h || !fill(t, counts[i])) {
        std::fprintf(stderr, "rte_hash: cannot hold %u flows\n", counts[i]);
        return 1;
      }
      run(t, counts[i], packets / 4, &sink);
      ns["rte_hash"][counts[i]].push_back(run(t, counts[i], packets, &sink));
      run(floor1, counts[i], packets / 4, &sink);
      ns["floor_1line"][counts[i]].push_back(run(floor1, counts[i], packets, &sink));
      run(floor2, counts[i], packets / 4, &sink);
      ns["floor_2line"][counts[i]].push_back(run(floor2, counts[i], packets, &sink));
    }
  }
  if (sink) {
    std::fprintf(stderr, "%lu lookups missed: the benchmark is wrong\n", sink);
    return 1;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf(
      "flow lookup + entry touch, ns/packet (median of %d rounds, %lu packets each), "
      "memory: %s\n",
      rounds, packets, rte_eal_has_hugepages() ? "hugepages" : "THP / 4 KiB pages");
  std::printf("%-12s", "flows");
  for (uint32_t c : counts) std::printf("%12u", c);
  std::printf("\n");
  for (auto& [name, by] : ns) {
    std::printf("%-12s", name.c_str());
    for (uint32_t c : counts) std::printf("%12.2f", median(by[c]));
    std::printf("\n");
  }
  for (auto& [name, by] : ns)
    for (uint32_t c : counts)
      std::printf("{\"bench\":\"flow_table\",\"table\":\"%s\",\"flows\":%u,\"ns_per_pkt\":%.3f}\n",
                  name.c_str(), c, median(by[c]));
  if (ns["flow_table"].count(1000) && ns["flow_table"].count(1000000)) {
    for (auto& [name, by] : ns) {
      // Throughput ratio of the lookup stage alone: 1k-flow cost / 1M-flow cost.
      double r = median(by[1000]) / median(by[1000000]);
      std::printf(
          "{\"bench\":\"flow_table_ratio\",\"table\":\"%s\",\"ratio_1m_1k\":%.3f,"
          "\"extra_ns_1m\":%.2f}\n",
          name.c_str(), r, median(by[1000000]) - median(by[1000]));
    }
  }
  flat.clear();  // DPDK memory goes back before EAL does
  rte_eal_cleanup();
  return 0;
}
