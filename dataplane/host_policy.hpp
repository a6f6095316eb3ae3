// HostPolicy: the compiled egress config of one generation (Config.egress): the mode, the next
// hop, the hostname rules and one Hyperscan block-mode database of all their host patterns.
//
// Contract
// - Built by the control thread (ctl/egress.cpp, from compile_snapshot) and published with the
//   Snapshot; immutable afterwards, freed with it after the RCU grace period.
// - One hs_scratch_t per worker (scratch[worker id]), allocated at build time for this database,
//   so a worker never allocates and never shares a scratch.
// - decide() is what the data plane calls once per new external flow (once per query for DNS):
//   no allocation, no lock; one Hyperscan scan of the name plus O(matches) work.
//
// Semantics (docs/config.md#egress), for a flow from a workload of namespace N to port P of a
// destination outside the mesh, with host name H (or none):
//   1. a DENY rule that applies (namespace "" or N; ports empty or containing P) lists H -> deny;
//   2. an ALLOW rule that applies lists H -> allow;
//   3. an ALLOW rule applies (whatever its hosts) -> deny (the namespace is restricted to lists);
//   4. otherwise ALLOW_ANY -> allow, REGISTRY_ONLY -> deny.
// A flow no rule applies to is decided without its name (never inspected). A flow a rule applies
// to is held until its name is seen; no name (not TLS/HTTP/DNS, no SNI) matches no list.
#pragma once

#include <hs/hs.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/flat_map.hpp"
#include "dataplane/types.hpp"

namespace vanish::dp {

struct HostRuleInfo {
  std::string name, ns;  // ns "" = every namespace
  bool deny = false;
  uint32_t ns_id = kInvalidIdx;  // kInvalidIdx: every namespace
  std::vector<uint16_t> ports;   // empty = every port
  std::vector<std::string> hosts;
};

// One Hyperscan expression: a host of a rule. Its Hyperscan id is its index.
struct HostPattern {
  uint32_t rule;
  std::string host;  // as configured: "api.example.com", "*.example.com", "*"
};

struct HostDecision {
  bool allow = false;
  uint32_t pattern = kInvalidIdx;  // the pattern that decided (1, 2), else kInvalidIdx
  uint32_t rule = kInvalidIdx;     // its rule
};

struct HostScopeHash {
  size_t operator()(uint64_t v) const {
    uint64_t h = v * 0x9E3779B97F4A7C15ull;
    return size_t(h ^ (h >> 29));
  }
};

// Names are scanned reversed and framed by these bytes (never part of a valid hostname), so
// literal patterns can be anchored: ctl/egress.hpp.
inline constexpr char kHostBegin = '\x01', kHostEnd = '\x02';

// Scope flags of (namespace, port): which kinds of rules apply there.
inline constexpr uint8_t kScopeAllow = 1, kScopeDeny = 2;

// The Hyperscan database of a pattern list and one scratch per worker. Shared by consecutive
// generations with the same patterns and worker count (a reload that leaves the egress rules
// alone does not recompile).
struct HostDb {
  HostDb() = default;
  HostDb(const HostDb&) = delete;
  HostDb& operator=(const HostDb&) = delete;
  ~HostDb();
  std::string key;  // the expressions and worker count it was built for
  hs_database_t* db = nullptr;
  std::vector<hs_scratch_t*> scratch;  // indexed by worker id
};

class HostPolicy {
 public:
  bool registry_only = false;
  MacAddr next_hop;
  std::vector<HostRuleInfo> rules;
  std::vector<HostPattern> patterns;
  std::vector<std::string> namespaces;  // ns_id -> namespace named by some rule
  std::vector<uint32_t> workload_ns;    // WorkloadIdx -> ns_id, kInvalidIdx if no rule names it
  // (ns_id + 1) << 17 | port (0 = rules without ports); ns_id + 1 == 0: rules for every namespace.
  FlatMap<uint64_t, uint8_t, HostScopeHash> scope;
  std::shared_ptr<const HostDb> hs;  // null when there are no patterns

  hs_scratch_t* scratch(unsigned worker) const {
    return hs && worker < hs->scratch.size() ? hs->scratch[worker] : nullptr;
  }

  uint32_t ns_of(uint32_t workload) const {
    return workload < workload_ns.size() ? workload_ns[workload] : kInvalidIdx;
  }
  // kScopeAllow / kScopeDeny bits of the rules applying to (ns_id, port).
  uint8_t scope_flags(uint32_t ns_id, uint16_t port) const;
  bool rule_applies(const HostRuleInfo& r, uint32_t ns_id, uint16_t port) const;
  // Decision for a name (empty: none was found) with the given worker's scratch.
  HostDecision decide(std::string_view name, uint32_t ns_id, uint16_t port,
                      hs_scratch_t* scr) const;
  // The same without a name, from the scope flags alone (rules 3 and 4).
  bool allow_without_name(uint8_t flags) const {
    if (flags & kScopeAllow) return false;
    return !registry_only;
  }
};

}  // namespace vanish::dp
