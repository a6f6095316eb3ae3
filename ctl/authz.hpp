// The authorization engine: Istio AuthorizationPolicy (istio.security.Authorization) enforced with
// ztunnel's semantics at the destination (shared/istio-wds-wire-format.md).
//
// Contract
// - Engine::build() compiles a config that validate_config() accepted. Every policy gets a dense
//   PolicyId (its index in Config.authorizations); every workload keeps its config index
//   (= dp::WorkloadIdx); identities are the distinct workload principals in order of first use,
//   the same order as dp::Snapshot::identities. A config that did not validate still builds (bad
//   entries are skipped, as ztunnel skips what it cannot parse) but is not what vanish runs.
// - Policies that apply to a destination workload: the NAMESPACE policies of its namespace, the
//   GLOBAL policies of the root namespace (root_namespace(): Config.root_namespace, default
//   "istio-system"), and the policies its `authorization_policies` names
//   ("namespace/name"; unknown names are skipped, repeats count once). They are precomputed per
//   destination, split in four buckets: dry-run DENY, enforced DENY, enforced ALLOW, dry-run
//   ALLOW. Workloads with the same namespace and the same named policies share one list.
// - evaluate() is the data-plane call, once per new flow at the destination node: it reads only
//   the destination's applicable policies (never the others), allocates nothing, takes no lock,
//   throws nothing and may run on any number of threads at once. Order (ztunnel's):
//     1. every dry-run DENY is evaluated and its match only reported;
//     2. any enforced DENY matches -> deny;
//     3. no enforced ALLOW applies -> allow;
//     4. any enforced ALLOW matches -> allow;
//     5. else deny.
//   Dry-run ALLOW policies are evaluated and reported, never enforced. Verdict::shadow_allowed is
//   the decision had the dry-run policies been enforced too.
// - Matching: a policy matches if any rule does (no rules: never); a rule if all its clauses do
//   (no clauses: always); a clause if any of its matches does (no matches: always); a match if
//   every non-empty field holds (a match whose every field is empty is skipped: never matches).
//   Within a field the values are alternatives; a not_* field holds if none of its values does.
//   principals and namespaces compare the source identity (principal without "spiffe://");
//   with no source identity a principal or service account never matches (so not_* of them
//   holds) and the namespace is "". service_accounts compare namespace and name exactly.
//   source_ips / destination_ips are CIDRs of one family (an IPv4 CIDR never holds for an IPv6
//   address and vice versa; host bits are ignored); destination_ports compare the port the
//   destination workload receives on (the target port after service translation).
// - Everything else (build, describe, lookups by name) runs on the control thread and allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include "dataplane/flat_map.hpp"
#include "dataplane/types.hpp"
#include "vanish/config.pb.h"

namespace vanish::authz {

using PolicyId = StrongId<struct PolicyTag>;  // dense: index in Config.authorizations

inline constexpr const char* kDefaultRootNamespace = "istio-system";
inline constexpr uint32_t kNone = UINT32_MAX;    // no identity / no policy / no workload
inline constexpr size_t kMaxDryRunReported = 4;  // dry-run matches carried in a Verdict

// The namespace whose GLOBAL policies apply mesh-wide: Config.root_namespace, default
// "istio-system". Header-only (validation uses it).
inline std::string root_namespace(const config::Config& cfg) {
  return cfg.root_namespace().empty() ? std::string(kDefaultRootNamespace) : cfg.root_namespace();
}

enum class Action : uint8_t { kAllow, kDeny };
enum class Scope : uint8_t { kGlobal, kNamespace, kWorkloadSelector };

// The four buckets of policies applying to one destination, in evaluation order.
enum class Bucket : uint8_t { kDryRunDeny, kDeny, kAllow, kDryRunAllow };
inline constexpr size_t kBuckets = 4;

enum class Reason : uint8_t {
  kDenyMatched,         // denied: an enforced DENY policy matched (decided_by)
  kNoAllowPolicy,       // allowed: no enforced ALLOW policy applies to the destination
  kAllowMatched,        // allowed: an enforced ALLOW policy matched (decided_by)
  kNoAllowMatched,      // denied: ALLOW policies apply and none matched
  kUnknownDestination,  // denied: the destination is not a workload of the config (fail closed)
};

struct PolicyMatch {
  PolicyId policy{kNone};
  uint32_t rule = 0;  // index of the first matching rule
};

// Fixed size: returned by value, never allocates.
struct Verdict {
  bool allowed = false;
  Reason reason = Reason::kUnknownDestination;
  PolicyMatch decided_by;        // kDenyMatched / kAllowMatched only
  bool shadow_allowed = false;   // the decision with dry-run policies enforced as well
  uint8_t n_dry_run = 0;         // entries used in dry_run[]
  uint32_t dry_run_matched = 0;  // dry-run policies that matched (may exceed kMaxDryRunReported)
  PolicyMatch dry_run[kMaxDryRunReported];  // dry-run DENY matches first, then dry-run ALLOW
};

// One new flow as seen at the destination node.
struct Request {
  uint32_t src_identity =
      kNone;  // Engine identity index (identity_of_workload, identity_by_wire_id)
  IpAddr src_ip;
  IpAddr dst_ip;                  // the destination workload's address
  uint16_t dst_port = 0;          // the port the workload receives on (target port)
  uint32_t dst_workload = kNone;  // WorkloadIdx (config order)
};

// Cold facts about a policy, for reports and logs.
struct PolicyInfo {
  std::string name, ns;
  Action action = Action::kAllow;
  Scope scope = Scope::kNamespace;
  bool dry_run = false;
  uint32_t n_rules = 0;
  std::string key() const { return ns + "/" + name; }
};

// A source identity: principal (SPIFFE id without "spiffe://"), namespace, service account.
struct IdentityInfo {
  std::string principal, ns, service_account;
  IdentityId wire_id;
};

struct WorkloadRef {
  std::string name, ns;
  uint32_t identity = kNone;
  std::span<const IpAddr> addresses;  // into the engine (valid while it lives)
};

class Engine {
 public:
  // Compiles cfg (see the contract above). Never fails; never reads files.
  static std::unique_ptr<Engine> build(const config::Config& cfg);

  // The data-plane call. Allocation-free, lock-free, noexcept.
  Verdict evaluate(const Request& r) const noexcept;

  // Whether one policy matches a request, and at which rule (cold helper for reports: the same
  // matcher as evaluate()). Returns false and leaves *rule alone if it does not match.
  bool policy_matches(PolicyId p, const Request& r, uint32_t* rule) const noexcept;

  // Policies applying to a destination workload, one bucket (empty for an unknown workload).
  std::span<const PolicyId> applicable(uint32_t workload, Bucket b) const noexcept;

  // --- lookups (hot ones first) ---
  uint32_t identity_of_workload(uint32_t workload) const noexcept {
    return workload < workloads_.size() ? workloads_[workload].identity : kNone;
  }
  uint32_t identity_by_wire_id(IdentityId id) const noexcept {
    const uint32_t* i = identity_by_wire_.find(id.value);
    return i ? *i : kNone;
  }
  uint32_t workload_by_address(const IpAddr& a) const noexcept {
    const uint32_t* i = workload_by_ip_.find(a);
    return i ? *i : kNone;
  }
  // "namespace/name" or, when unambiguous, "name". kNone if unknown; *ambiguous (optional) lists
  // the "namespace/name" candidates of a bare name found in several namespaces. Linear (cold).
  uint32_t workload_by_name(std::string_view ref,
                            std::vector<std::string>* ambiguous = nullptr) const;
  uint32_t policy_by_key(std::string_view ns_slash_name) const;  // kNone if unknown

  size_t n_policies() const { return policies_.size(); }
  size_t n_workloads() const { return workloads_.size(); }
  size_t n_identities() const { return identities_.size(); }
  size_t n_policy_sets() const { return sets_.size(); }
  const PolicyInfo& policy(PolicyId p) const { return policies_[p.value].info; }
  const IdentityInfo& identity(uint32_t i) const { return identities_[i]; }
  const WorkloadRef& workload(uint32_t w) const { return workloads_[w]; }
  const std::string& root_ns() const { return root_ns_; }
  size_t memory_bytes() const;  // approximate heap footprint of the compiled tables

  // "denied: DENY policy default/deny-untrusted matched (rule 0)" etc.
  std::string describe(const Verdict& v) const;

 private:
  // ---- compiled form: flat arrays, ranges by {begin, count} ----
  struct Range {
    uint32_t begin = 0, count = 0;
  };
  enum Field : uint8_t {
    kNamespaces,
    kNotNamespaces,
    kPrincipals,
    kNotPrincipals,
    kSourceIps,
    kNotSourceIps,
    kDestinationIps,
    kNotDestinationIps,
    kDestinationPorts,
    kNotDestinationPorts,
    kServiceAccounts,
    kNotServiceAccounts,
    kFields
  };
  enum class StrKind : uint8_t { kExact, kPrefix, kSuffix, kPresence };
  struct StrMatch {
    StrKind kind = StrKind::kExact;
    uint32_t interned = kNone;  // kExact: id of the string in strings_
    uint32_t off = 0, len = 0;  // the string in arena_
  };
  struct Cidr {
    uint64_t net_hi = 0, net_lo = 0, mask_hi = 0, mask_lo = 0;  // 128-bit form, masked
    bool v4 = false;
  };
  struct SaMatch {
    uint32_t ns = kNone, sa = kNone;  // interned
  };
  struct Match {
    uint16_t present = 0;  // bit per non-empty Field; 0 = empty match (skipped)
    Range f[kFields];      // into strs_ / cidrs_ / ports_ / sas_ by field kind
  };
  struct Clause {
    Range matches;
  };
  struct Rule {
    Range clauses;
  };
  struct Policy {
    Range rules;
    PolicyInfo info;
  };
  struct PolicySet {
    uint32_t begin = 0;  // into set_ids_
    uint32_t count[kBuckets] = {0, 0, 0, 0};
  };
  struct Src {  // per-evaluation view of the source, no allocation
    bool has_identity = false;
    std::string_view principal, ns;
    uint32_t principal_id = kNone, ns_id = kNone, sa_id = kNone;
    IpAddr ip;
    bool ip_v4 = false;
  };
  struct Dst {
    IpAddr ip;
    bool ip_v4 = false;
    uint16_t port = 0;
  };
  using WorkloadEntry = WorkloadRef;
  struct InternedIdentity {
    uint32_t principal = kNone, ns = kNone, sa = kNone;
  };

  Engine() = default;
  uint32_t intern(const std::string& s);
  uint32_t find_interned(std::string_view s) const;
  void compile_policy(const istio::security::Authorization& a);
  Range add_strs(const google::protobuf::RepeatedPtrField<istio::security::StringMatch>& v);
  Range add_cidrs(const google::protobuf::RepeatedPtrField<istio::security::Address>& v);
  Range add_ports(const google::protobuf::RepeatedField<uint32_t>& v);
  Range add_sas(const google::protobuf::RepeatedPtrField<istio::security::ServiceAccountMatch>& v);

  // Hot path, defined (and only used) in authz.cpp.
  [[gnu::always_inline]] inline void make_src(const Request& r, Src* s) const noexcept;
  [[gnu::always_inline]] inline bool str_holds(const StrMatch& m, std::string_view v,
                                               uint32_t v_id) const noexcept;
  [[gnu::always_inline]] inline bool field_any(const Match& m, Field f, const Src& s,
                                               const Dst& d) const noexcept;
  bool match_holds(const Match& m, const Src& s, const Dst& d) const noexcept;
  // Index of the first matching rule, or kNone.
  uint32_t first_matching_rule(const Policy& p, const Src& s, const Dst& d) const noexcept;

  std::string root_ns_;
  std::vector<Policy> policies_;
  std::vector<Rule> rules_;
  std::vector<Clause> clauses_;
  std::vector<Match> matches_;
  std::vector<StrMatch> strs_;
  std::vector<Cidr> cidrs_;
  std::vector<uint16_t> ports_;  // per field: sorted, unique
  std::vector<SaMatch> sas_;
  std::string arena_;  // prefix/suffix strings

  std::vector<PolicySet> sets_;
  std::vector<uint32_t> workload_set_;  // hot: WorkloadIdx -> index in sets_
  std::vector<PolicyId> set_ids_;
  std::vector<WorkloadEntry> workloads_;
  std::vector<IpAddr> addrs_;  // WorkloadRef::addresses point here
  std::vector<IdentityInfo> identities_;
  std::vector<InternedIdentity> identity_ids_;

  FlatMap<uint32_t, uint32_t, IntHash> identity_by_wire_;  // wire id -> identity index
  FlatMap<IpAddr, uint32_t, IpAddrHash> workload_by_ip_;
  std::unordered_map<std::string, uint32_t> strings_;  // interning (cold)
  std::unordered_map<std::string, uint32_t> policy_by_key_;
};

// Short names for reports: "ALLOW"/"DENY", "GLOBAL"/..., "deny_policy_matched"/...
const char* action_name(Action a);
const char* scope_name(Scope s);
const char* reason_code(Reason r);

}  // namespace vanish::authz
