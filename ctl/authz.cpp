#include "ctl/authz.hpp"

#include <algorithm>
#include <cstring>

#include "ctl/model.hpp"

namespace vanish::authz {

const char* action_name(Action a) {
  return a == Action::kAllow ? "ALLOW" : "DENY";
}

const char* scope_name(Scope s) {
  switch (s) {
    case Scope::kGlobal: return "GLOBAL";
    case Scope::kNamespace: return "NAMESPACE";
    case Scope::kWorkloadSelector: return "WORKLOAD_SELECTOR";
  }
  return "?";
}

const char* reason_code(Reason r) {
  switch (r) {
    case Reason::kDenyMatched: return "deny_policy_matched";
    case Reason::kNoAllowPolicy: return "no_allow_policy";
    case Reason::kAllowMatched: return "allow_policy_matched";
    case Reason::kNoAllowMatched: return "no_allow_policy_matched";
    case Reason::kUnknownDestination: return "unknown_destination";
  }
  return "?";
}

namespace {

uint64_t load_be64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

// Mask of the first `bits` bits (0..64) of a 64-bit big-endian half.
uint64_t high_mask(unsigned bits) {
  return bits == 0 ? 0 : bits >= 64 ? ~0ull : ~0ull << (64 - bits);
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Build

uint32_t Engine::intern(const std::string& s) {
  auto [it, fresh] = strings_.emplace(s, uint32_t(strings_.size()));
  return it->second;
}

uint32_t Engine::find_interned(std::string_view s) const {
  auto it = strings_.find(std::string(s));
  return it == strings_.end() ? kNone : it->second;
}

Engine::Range Engine::add_strs(
    const google::protobuf::RepeatedPtrField<istio::security::StringMatch>& v) {
  Range r{uint32_t(strs_.size()), 0};
  for (const auto& m : v) {
    StrMatch s;
    const std::string* text = nullptr;
    switch (m.match_type_case()) {
      case istio::security::StringMatch::kExact:
        s.kind = StrKind::kExact;
        text = &m.exact();
        s.interned = intern(m.exact());
        break;
      case istio::security::StringMatch::kPrefix:
        s.kind = StrKind::kPrefix;
        text = &m.prefix();
        break;
      case istio::security::StringMatch::kSuffix:
        s.kind = StrKind::kSuffix;
        text = &m.suffix();
        break;
      case istio::security::StringMatch::kPresence:
        s.kind = StrKind::kPresence;
        break;
      default:
        continue;  // no kind set: ztunnel drops it (validation rejects it)
    }
    if (text) {
      s.off = uint32_t(arena_.size());
      s.len = uint32_t(text->size());
      arena_ += *text;
    }
    strs_.push_back(s);
    r.count++;
  }
  return r;
}

Engine::Range Engine::add_cidrs(
    const google::protobuf::RepeatedPtrField<istio::security::Address>& v) {
  Range r{uint32_t(cidrs_.size()), 0};
  for (const auto& a : v) {
    IpAddr ip;
    if (!IpAddr::from_bytes(a.address(), &ip)) continue;  // ztunnel drops it (validation rejects)
    // The family is the octet count: a 16-octet ::ffff:a.b.c.d CIDR is IPv6 and never holds
    // for an IPv4 address (ztunnel: IpNet::V6 never contains an IpAddr::V4).
    bool v4 = a.address().size() == 4;
    if (a.length() > (v4 ? 32u : 128u)) continue;
    unsigned len = (v4 ? 96 : 0) + a.length();
    Cidr c;
    c.v4 = v4;
    c.mask_hi = high_mask(std::min(len, 64u));
    c.mask_lo = high_mask(len > 64 ? len - 64 : 0);
    c.net_hi = load_be64(ip.b.data()) & c.mask_hi;
    c.net_lo = load_be64(ip.b.data() + 8) & c.mask_lo;
    cidrs_.push_back(c);
    r.count++;
  }
  return r;
}

Engine::Range Engine::add_ports(const google::protobuf::RepeatedField<uint32_t>& v) {
  std::vector<uint16_t> p;
  for (uint32_t x : v) p.push_back(uint16_t(x));  // as ztunnel (`as u16`); validation: 1..65535
  std::sort(p.begin(), p.end());
  p.erase(std::unique(p.begin(), p.end()), p.end());
  Range r{uint32_t(ports_.size()), uint32_t(p.size())};
  ports_.insert(ports_.end(), p.begin(), p.end());
  return r;
}

Engine::Range Engine::add_sas(
    const google::protobuf::RepeatedPtrField<istio::security::ServiceAccountMatch>& v) {
  Range r{uint32_t(sas_.size()), uint32_t(v.size())};
  for (const auto& m : v) sas_.push_back(SaMatch{intern(m.namespace_()), intern(m.service_account())});
  return r;
}

void Engine::compile_policy(const istio::security::Authorization& a) {
  Policy p;
  p.info.name = a.name();
  p.info.ns = a.namespace_();
  p.info.action = a.action() == istio::security::DENY ? Action::kDeny : Action::kAllow;
  p.info.scope = a.scope() == istio::security::GLOBAL      ? Scope::kGlobal
                 : a.scope() == istio::security::NAMESPACE ? Scope::kNamespace
                                                           : Scope::kWorkloadSelector;
  p.info.dry_run = a.dry_run();
  p.info.n_rules = uint32_t(a.rules_size());
  p.rules = Range{uint32_t(rules_.size()), uint32_t(a.rules_size())};
  // Reserve the rule/clause slots first so each level stays contiguous.
  size_t rule0 = rules_.size();
  rules_.resize(rules_.size() + a.rules_size());
  for (int ri = 0; ri < a.rules_size(); ri++) {
    const auto& rule = a.rules(ri);
    size_t clause0 = clauses_.size();
    rules_[rule0 + ri].clauses = Range{uint32_t(clause0), uint32_t(rule.clauses_size())};
    clauses_.resize(clauses_.size() + rule.clauses_size());
    for (int ci = 0; ci < rule.clauses_size(); ci++) {
      const auto& clause = rule.clauses(ci);
      clauses_[clause0 + ci].matches =
          Range{uint32_t(matches_.size()), uint32_t(clause.matches_size())};
      for (const auto& m : clause.matches()) {
        Match c;
        c.f[kNamespaces] = add_strs(m.namespaces());
        c.f[kNotNamespaces] = add_strs(m.not_namespaces());
        c.f[kPrincipals] = add_strs(m.principals());
        c.f[kNotPrincipals] = add_strs(m.not_principals());
        c.f[kSourceIps] = add_cidrs(m.source_ips());
        c.f[kNotSourceIps] = add_cidrs(m.not_source_ips());
        c.f[kDestinationIps] = add_cidrs(m.destination_ips());
        c.f[kNotDestinationIps] = add_cidrs(m.not_destination_ips());
        c.f[kDestinationPorts] = add_ports(m.destination_ports());
        c.f[kNotDestinationPorts] = add_ports(m.not_destination_ports());
        c.f[kServiceAccounts] = add_sas(m.service_accounts());
        c.f[kNotServiceAccounts] = add_sas(m.not_service_accounts());
        for (int f = 0; f < kFields; f++)
          if (c.f[f].count) c.present = uint16_t(c.present | (1u << f));
        matches_.push_back(c);
      }
    }
  }
  policies_.push_back(std::move(p));
}

std::unique_ptr<Engine> Engine::build(const config::Config& cfg) {
  std::unique_ptr<Engine> e(new Engine());
  e->root_ns_ = root_namespace(cfg);
  e->intern("");  // the namespace of a source without identity

  // Policies: dense ids in config order.
  std::unordered_map<std::string, std::vector<PolicyId>> ns_policies;
  std::vector<PolicyId> global;
  for (int i = 0; i < cfg.authorizations_size(); i++) {
    const auto& a = cfg.authorizations(i);
    e->compile_policy(a);
    PolicyId id{uint32_t(i)};
    e->policy_by_key_.emplace(a.namespace_() + "/" + a.name(), id.value);  // first one wins
    const PolicyInfo& info = e->policies_.back().info;
    if (info.scope == Scope::kNamespace) ns_policies[info.ns].push_back(id);
    if (info.scope == Scope::kGlobal && info.ns == e->root_ns_) global.push_back(id);
  }

  // Identities in order of first use (= dp::Snapshot::identities), workloads in config order.
  std::unordered_map<std::string, uint32_t> identity_by_principal;
  size_t n_addrs = 0;
  for (const auto& w : cfg.workloads()) n_addrs += size_t(w.addresses_size());
  e->workload_by_ip_ = FlatMap<IpAddr, uint32_t, IpAddrHash>(n_addrs);
  e->identity_by_wire_ = FlatMap<uint32_t, uint32_t, IntHash>(size_t(cfg.workloads_size()));
  std::unordered_map<std::string, uint32_t> set_by_key;
  e->workloads_.reserve(size_t(cfg.workloads_size()));
  e->workload_set_.reserve(size_t(cfg.workloads_size()));
  e->addrs_.reserve(n_addrs);  // never reallocated below: WorkloadRef::addresses point into it
  identity_by_principal.reserve(size_t(cfg.workloads_size()));
  e->strings_.reserve(e->strings_.size() + 3 * size_t(cfg.workloads_size()));
  for (int i = 0; i < cfg.workloads_size(); i++) {
    const istio::workload::Workload& w = cfg.workloads(i);
    std::string principal = ctl::workload_principal(w);
    auto it = identity_by_principal.find(principal);
    if (it == identity_by_principal.end()) {
      IdentityInfo info;
      info.principal = principal;
      info.ns = w.namespace_();
      info.service_account = ctl::workload_service_account(w);
      info.wire_id = ctl::identity_id_for(principal);
      uint32_t index = uint32_t(e->identities_.size());
      e->identity_by_wire_.insert(info.wire_id.value, index);
      e->identity_ids_.push_back(
          {e->intern(info.principal), e->intern(info.ns), e->intern(info.service_account)});
      e->identities_.push_back(std::move(info));
      it = identity_by_principal.emplace(principal, index).first;
    }
    WorkloadEntry we;
    we.name = w.name();
    we.ns = w.namespace_();
    we.identity = it->second;
    size_t first = e->addrs_.size();
    for (const auto& raw : w.addresses()) {
      IpAddr a;
      if (!IpAddr::from_bytes(raw, &a)) continue;
      e->addrs_.push_back(a);
      e->workload_by_ip_.insert(a, uint32_t(i));
    }
    we.addresses = std::span<const IpAddr>(e->addrs_.data() + first, e->addrs_.size() - first);

    // The policies named by the workload, resolved, in order, without repeats.
    std::vector<PolicyId> named;
    for (const auto& ref : w.authorization_policies()) {
      auto pit = e->policy_by_key_.find(ref);
      if (pit == e->policy_by_key_.end()) continue;  // ztunnel: "skipping unknown policy"
      PolicyId id(pit->second);
      if (std::find(named.begin(), named.end(), id) == named.end()) named.push_back(id);
    }
    std::string key = w.namespace_();
    key.push_back('\0');
    key.append(reinterpret_cast<const char*>(named.data()), named.size() * sizeof(PolicyId));
    auto [sit, fresh] = set_by_key.emplace(key, uint32_t(e->sets_.size()));
    if (fresh) {
      // ztunnel's order: namespace policies, global ones, then the workload's own.
      std::vector<PolicyId> all;
      if (auto nit = ns_policies.find(w.namespace_()); nit != ns_policies.end()) all = nit->second;
      for (PolicyId id : global)
        if (std::find(all.begin(), all.end(), id) == all.end()) all.push_back(id);
      for (PolicyId id : named)
        if (std::find(all.begin(), all.end(), id) == all.end()) all.push_back(id);
      PolicySet set;
      set.begin = uint32_t(e->set_ids_.size());
      for (size_t b = 0; b < kBuckets; b++) {
        for (PolicyId id : all) {
          const PolicyInfo& info = e->policies_[id.value].info;
          Bucket want = info.action == Action::kDeny
                            ? (info.dry_run ? Bucket::kDryRunDeny : Bucket::kDeny)
                            : (info.dry_run ? Bucket::kDryRunAllow : Bucket::kAllow);
          if (size_t(want) != b) continue;
          e->set_ids_.push_back(id);
          set.count[b]++;
        }
      }
      e->sets_.push_back(set);
    }
    e->workload_set_.push_back(sit->second);
    e->workloads_.push_back(std::move(we));
  }
  return e;
}

// ------------------------------------------------------------------------------------------
// Evaluation (hot path: no allocation, no exceptions)

inline void Engine::make_src(const Request& r, Src* s) const noexcept {
  s->ip = r.src_ip;
  s->ip_v4 = r.src_ip.is_v4();
  if (r.src_identity < identities_.size()) {
    const IdentityInfo& id = identities_[r.src_identity];
    const InternedIdentity& ii = identity_ids_[r.src_identity];
    s->has_identity = true;
    s->principal = id.principal;
    s->ns = id.ns;
    s->principal_id = ii.principal;
    s->ns_id = ii.ns;
    s->sa_id = ii.sa;
  } else {
    s->has_identity = false;
    s->ns = std::string_view();
    s->ns_id = 0;  // "" (interned first)
  }
}

inline bool Engine::str_holds(const StrMatch& m, std::string_view v,
                              uint32_t v_id) const noexcept {
  switch (m.kind) {
    case StrKind::kExact: return m.interned == v_id;
    case StrKind::kPrefix:
      return v.size() >= m.len && std::memcmp(v.data(), arena_.data() + m.off, m.len) == 0;
    case StrKind::kSuffix:
      return v.size() >= m.len &&
             std::memcmp(v.data() + v.size() - m.len, arena_.data() + m.off, m.len) == 0;
    case StrKind::kPresence: return !v.empty();
  }
  return false;
}

// Whether any value of field f holds (for a not_* field: whether any of its values holds).
inline bool Engine::field_any(const Match& m, Field f, const Src& s,
                              const Dst& d) const noexcept {
  const Range& r = m.f[f];
  switch (f) {
    case kNamespaces:
    case kNotNamespaces:
      for (uint32_t i = 0; i < r.count; i++)
        if (str_holds(strs_[r.begin + i], s.ns, s.ns_id)) return true;
      return false;
    case kPrincipals:
    case kNotPrincipals:
      if (!s.has_identity) return false;  // ztunnel: no "spiffe://" id, nothing matches
      for (uint32_t i = 0; i < r.count; i++)
        if (str_holds(strs_[r.begin + i], s.principal, s.principal_id)) return true;
      return false;
    case kSourceIps:
    case kNotSourceIps:
    case kDestinationIps:
    case kNotDestinationIps: {
      bool src = f == kSourceIps || f == kNotSourceIps;
      const IpAddr& a = src ? s.ip : d.ip;
      bool v4 = src ? s.ip_v4 : d.ip_v4;
      uint64_t hi = load_be64(a.b.data()), lo = load_be64(a.b.data() + 8);
      for (uint32_t i = 0; i < r.count; i++) {
        const Cidr& c = cidrs_[r.begin + i];
        if (c.v4 == v4 && (hi & c.mask_hi) == c.net_hi && (lo & c.mask_lo) == c.net_lo)
          return true;
      }
      return false;
    }
    case kDestinationPorts:
    case kNotDestinationPorts: {
      const uint16_t* p = ports_.data() + r.begin;
      if (r.count <= 8) {
        for (uint32_t i = 0; i < r.count; i++)
          if (p[i] == d.port) return true;
        return false;
      }
      return std::binary_search(p, p + r.count, d.port);
    }
    case kServiceAccounts:
    case kNotServiceAccounts:
      if (!s.has_identity) return false;  // ztunnel: no identity never matches
      for (uint32_t i = 0; i < r.count; i++) {
        const SaMatch& sa = sas_[r.begin + i];
        if (sa.ns == s.ns_id && sa.sa == s.sa_id) return true;
      }
      return false;
    case kFields: break;
  }
  return false;
}

bool Engine::match_holds(const Match& m, const Src& s, const Dst& d) const noexcept {
  uint32_t bits = m.present;
  if (bits == 0) return false;  // an empty match is skipped: it never matches
  do {
    int f = __builtin_ctz(bits);
    bits &= bits - 1;
    // Positive fields are even and need a value that holds; their not_* forms are odd and need
    // none (see Field).
    if (field_any(m, Field(f), s, d) == bool(f & 1)) return false;
  } while (bits);
  return true;
}

uint32_t Engine::first_matching_rule(const Policy& p, const Src& s, const Dst& d) const noexcept {
  const Rule* rules = rules_.data() + p.rules.begin;
  const Clause* clauses = clauses_.data();
  const Match* matches = matches_.data();
  for (uint32_t ri = 0; ri < p.rules.count; ri++) {  // no rules: matches nothing
    const Clause* c = clauses + rules[ri].clauses.begin;
    const Clause* c_end = c + rules[ri].clauses.count;
    bool rule_ok = true;  // no clauses: matches everything
    for (; c != c_end && rule_ok; c++) {
      const Match* m = matches + c->matches.begin;
      const Match* m_end = m + c->matches.count;
      bool clause_ok = m == m_end;  // no matches: the clause holds
      for (; m != m_end && !clause_ok; m++) clause_ok = match_holds(*m, s, d);
      rule_ok = clause_ok;
    }
    if (rule_ok) return ri;
  }
  return kNone;
}

namespace {
void report_dry_run(Verdict* v, PolicyId id, uint32_t rule) {
  if (v->n_dry_run < kMaxDryRunReported) v->dry_run[v->n_dry_run++] = PolicyMatch{id, rule};
  v->dry_run_matched++;
}
}  // namespace

Verdict Engine::evaluate(const Request& r) const noexcept {
  Verdict v;
  if (r.dst_workload >= workload_set_.size()) {
    v.allowed = v.shadow_allowed = false;
    v.reason = Reason::kUnknownDestination;
    return v;
  }
  const PolicySet& set = sets_[workload_set_[r.dst_workload]];
  Src s;
  make_src(r, &s);
  Dst d{r.dst_ip, r.dst_ip.is_v4(), r.dst_port};
  const PolicyId* ids = set_ids_.data() + set.begin;
  const uint32_t* n = set.count;

  // 1. dry-run DENY: evaluated and reported, never enforced.
  bool dry_deny = false;
  for (uint32_t i = 0; i < n[0]; i++, ids++) {
    uint32_t rule = first_matching_rule(policies_[ids->value], s, d);
    if (rule != kNone) {
      report_dry_run(&v, *ids, rule);
      dry_deny = true;
    }
  }
  // 2. enforced DENY.
  bool denied = false;
  for (uint32_t i = 0; i < n[1] && !denied; i++) {
    uint32_t rule = first_matching_rule(policies_[ids[i].value], s, d);
    if (rule != kNone) {
      denied = true;
      v.decided_by = PolicyMatch{ids[i], rule};
    }
  }
  ids += n[1];
  // 3./4./5. enforced ALLOW.
  bool allow_hit = false;
  if (denied) {
    v.allowed = false;
    v.reason = Reason::kDenyMatched;
  } else if (n[2] == 0) {
    v.allowed = true;
    v.reason = Reason::kNoAllowPolicy;
  } else {
    for (uint32_t i = 0; i < n[2] && !allow_hit; i++) {
      uint32_t rule = first_matching_rule(policies_[ids[i].value], s, d);
      if (rule != kNone) {
        allow_hit = true;
        v.decided_by = PolicyMatch{ids[i], rule};
      }
    }
    v.allowed = allow_hit;
    v.reason = allow_hit ? Reason::kAllowMatched : Reason::kNoAllowMatched;
  }
  ids += n[2];
  // Dry-run ALLOW: evaluated and reported, never enforced.
  bool dry_allow_hit = false;
  for (uint32_t i = 0; i < n[3]; i++) {
    uint32_t rule = first_matching_rule(policies_[ids[i].value], s, d);
    if (rule != kNone) {
      report_dry_run(&v, ids[i], rule);
      dry_allow_hit = true;
    }
  }
  bool allow_applies = n[2] + n[3] > 0;
  v.shadow_allowed = !denied && !dry_deny && (!allow_applies || allow_hit || dry_allow_hit);
  return v;
}

bool Engine::policy_matches(PolicyId p, const Request& r, uint32_t* rule) const noexcept {
  if (p.value >= policies_.size()) return false;
  Src s;
  make_src(r, &s);
  Dst d{r.dst_ip, r.dst_ip.is_v4(), r.dst_port};
  uint32_t ri = first_matching_rule(policies_[p.value], s, d);
  if (ri == kNone) return false;
  if (rule) *rule = ri;
  return true;
}

std::span<const PolicyId> Engine::applicable(uint32_t workload, Bucket b) const noexcept {
  if (workload >= workload_set_.size()) return {};
  const PolicySet& set = sets_[workload_set_[workload]];
  uint32_t begin = set.begin;
  for (size_t i = 0; i < size_t(b); i++) begin += set.count[i];
  return std::span<const PolicyId>(set_ids_.data() + begin, set.count[size_t(b)]);
}

// ------------------------------------------------------------------------------------------
// Cold helpers

uint32_t Engine::workload_by_name(std::string_view ref, std::vector<std::string>* ambiguous) const {
  auto slash = ref.find('/');
  std::string_view name = slash == std::string_view::npos ? ref : ref.substr(slash + 1);
  std::vector<uint32_t> found;
  for (uint32_t w = 0; w < workloads_.size(); w++) {
    if (workloads_[w].name != name) continue;
    if (slash != std::string_view::npos && workloads_[w].ns != ref.substr(0, slash)) continue;
    found.push_back(w);
  }
  if (found.size() == 1) return found[0];
  if (ambiguous && found.size() > 1)
    for (uint32_t w : found) ambiguous->push_back(workloads_[w].ns + "/" + workloads_[w].name);
  return kNone;
}

uint32_t Engine::policy_by_key(std::string_view key) const {
  auto it = policy_by_key_.find(std::string(key));
  return it == policy_by_key_.end() ? kNone : it->second;
}

size_t Engine::memory_bytes() const {
  size_t b = sizeof(*this);
  b += policies_.capacity() * sizeof(Policy) + rules_.capacity() * sizeof(Rule) +
       clauses_.capacity() * sizeof(Clause) + matches_.capacity() * sizeof(Match) +
       strs_.capacity() * sizeof(StrMatch) + cidrs_.capacity() * sizeof(Cidr) +
       ports_.capacity() * sizeof(uint16_t) + sas_.capacity() * sizeof(SaMatch) +
       arena_.capacity() + sets_.capacity() * sizeof(PolicySet) +
       set_ids_.capacity() * sizeof(PolicyId) + workloads_.capacity() * sizeof(WorkloadEntry) +
       workload_set_.capacity() * sizeof(uint32_t) + addrs_.capacity() * sizeof(IpAddr) +
       identities_.capacity() * sizeof(IdentityInfo) +
       identity_ids_.capacity() * sizeof(InternedIdentity) + identity_by_wire_.memory_bytes() +
       workload_by_ip_.memory_bytes();
  for (const auto& p : policies_) b += p.info.name.capacity() + p.info.ns.capacity();
  for (const auto& [s, id] : strings_) b += s.capacity() + 48;
  return b;
}

std::string Engine::describe(const Verdict& v) const {
  auto key = [&](const PolicyMatch& m) {
    return m.policy.value < policies_.size() ? policies_[m.policy.value].info.key()
                                             : std::string("?");
  };
  std::string s;
  switch (v.reason) {
    case Reason::kDenyMatched:
      s = "denied: DENY policy " + key(v.decided_by) + " matched (rule " +
          std::to_string(v.decided_by.rule) + ")";
      break;
    case Reason::kNoAllowPolicy: s = "allowed: no ALLOW policy applies"; break;
    case Reason::kAllowMatched:
      s = "allowed: ALLOW policy " + key(v.decided_by) + " matched (rule " +
          std::to_string(v.decided_by.rule) + ")";
      break;
    case Reason::kNoAllowMatched: s = "denied: no ALLOW policy matched"; break;
    case Reason::kUnknownDestination: s = "denied: the destination is not a workload"; break;
  }
  for (uint8_t i = 0; i < v.n_dry_run; i++) {
    const PolicyMatch& m = v.dry_run[i];
    s += "; dry-run ";
    s += m.policy.value < policies_.size() ? action_name(policies_[m.policy.value].info.action)
                                           : "?";
    s += " policy " + key(m) + " matched (rule " + std::to_string(m.rule) + ")";
  }
  if (v.dry_run_matched > v.n_dry_run)
    s += "; " + std::to_string(v.dry_run_matched - v.n_dry_run) + " more dry-run matches";
  return s;
}

}  // namespace vanish::authz
