// The authorization engine (ctl/authz.hpp): ztunnel's semantics field by field, every edge case,
// the evaluation order with dry-run, scopes, IPv4/IPv6 CIDRs, scenario cases 2-5 on the examples,
// the no-allocation contract of evaluate(), and the policy checks of validate_config().
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>

#include "ctl/authz.hpp"
#include "ctl/compile.hpp"
#include "ctl/model.hpp"
#include "ctl/validate.hpp"
#include "tests/unit/ctl/test_util.hpp"

// Counting allocator: evaluate() must not allocate. Counts only while g_count_allocs is set.
// (new/delete are malloc/free underneath; GCC's inlining check cannot see that they pair.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<bool> g_count_allocs{false};
std::atomic<long> g_allocs{0};
}  // namespace

void* operator new(std::size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace vanish::authz {
namespace {

using ctl::ConfigError;
using ctl::test::raw_ip;

const config::Config& node_b() {
  static const config::Config c = ctl::test::load_example("node-b.textproto");
  return c;
}

IpAddr ip(const std::string& s) {
  IpAddr a;
  EXPECT_TRUE(IpAddr::parse(s, &a)) << s;
  return a;
}

istio::workload::Workload* workload(config::Config& c, const std::string& name) {
  for (auto& w : *c.mutable_workloads())
    if (w.name() == name) return &w;
  ADD_FAILURE() << "no workload " << name;
  return c.add_workloads();
}

// The reference mesh with its policies replaced by `policies` (text format of Config).
config::Config mesh_with(const std::string& policies) {
  config::Config c = node_b();
  c.clear_authorizations();
  EXPECT_TRUE(google::protobuf::TextFormat::MergeFromString(policies, &c)) << policies;
  return c;
}

struct Mesh {
  config::Config cfg;
  std::unique_ptr<Engine> e;

  explicit Mesh(config::Config c) : cfg(std::move(c)), e(Engine::build(cfg)) {}
  explicit Mesh(const std::string& policies) : Mesh(mesh_with(policies)) {}

  // from: a workload name, or "" for a source without identity at 192.0.2.1 / 2001:db8::1.
  Request req(const std::string& from, const std::string& to, uint16_t port,
              bool v6 = false) const {
    Request r;
    if (from.empty()) {
      r.src_ip = ip(v6 ? "2001:db8::1" : "192.0.2.1");
    } else {
      uint32_t w = e->workload_by_name(from);
      EXPECT_NE(w, kNone) << from;
      r.src_identity = e->identity_of_workload(w);
      for (const IpAddr& a : e->workload(w).addresses)
        if (a.is_v4() != v6) r.src_ip = a;
    }
    r.dst_workload = e->workload_by_name(to);
    EXPECT_NE(r.dst_workload, kNone) << to;
    for (const IpAddr& a : e->workload(r.dst_workload).addresses)
      if (a.is_v4() != v6) r.dst_ip = a;
    r.dst_port = port;
    return r;
  }
  Verdict eval(const std::string& from, const std::string& to, uint16_t port,
               bool v6 = false) const {
    return e->evaluate(req(from, to, port, v6));
  }
  bool allowed(const std::string& from, const std::string& to, uint16_t port,
               bool v6 = false) const {
    return eval(from, to, port, v6).allowed;
  }
  std::string key(const PolicyMatch& m) const { return e->policy(m.policy).key(); }
};

// One DENY policy in namespace "default" (applies to httpbin-1/-2) made of `rules`.
std::string deny_default(const std::string& rules) {
  return "authorizations { name: \"p\" namespace: \"default\" scope: NAMESPACE action: DENY " +
         rules + " }";
}
// Whether a DENY policy with one rule / one clause / this one match denies `from` -> httpbin-1.
bool match_denies(const std::string& match, const std::string& from, uint16_t port = 8080,
                  bool v6 = false) {
  Mesh m(deny_default("rules { clauses { matches { " + match + " } } }"));
  Verdict v = m.eval(from, "httpbin-1", port, v6);
  if (!v.allowed) {
    EXPECT_EQ(v.reason, Reason::kDenyMatched);
  }
  return !v.allowed;
}

// ---------------------------------------------------------------------------------------------
// Scenario cases 2-5 (shared/scenario.md) on the shipped examples.

TEST(AuthzScenario, ExamplesValidate) {
  std::vector<ConfigError> errors;
  EXPECT_TRUE(ctl::validate_config(node_b(), &errors));
  config::Config a = ctl::test::load_example("node-a.textproto");
  EXPECT_TRUE(ctl::validate_config(a, &errors));
  for (const auto& e : errors) ADD_FAILURE() << e.str();
}

TEST(AuthzScenario, Case2UntrustedToHttpbinDeniedByDenyUntrusted) {
  Mesh m(node_b());
  for (const char* ep : {"httpbin-1", "httpbin-2"})
    for (bool v6 : {false, true}) {
      Verdict v = m.eval("curl-untrusted", ep, 8080, v6);
      EXPECT_FALSE(v.allowed) << ep;
      EXPECT_EQ(v.reason, Reason::kDenyMatched);
      EXPECT_EQ(m.key(v.decided_by), "default/deny-untrusted");
      EXPECT_EQ(v.decided_by.rule, 0u);
      EXPECT_EQ(m.e->describe(v), "denied: DENY policy default/deny-untrusted matched (rule 0)");
    }
}

TEST(AuthzScenario, Case3SleepToPostgres5432Allowed) {
  Mesh m(node_b());
  for (bool v6 : {false, true}) {
    Verdict v = m.eval("sleep", "postgres", 5432, v6);
    EXPECT_TRUE(v.allowed);
    EXPECT_EQ(v.reason, Reason::kAllowMatched);
    EXPECT_EQ(m.key(v.decided_by), "data/allow-sleep");
    EXPECT_EQ(v.decided_by.rule, 0u);
    EXPECT_EQ(m.e->describe(v), "allowed: ALLOW policy data/allow-sleep matched (rule 0)");
  }
}

TEST(AuthzScenario, Case4SleepToPostgres22DeniedAllowAppliesButDoesNotMatch) {
  Mesh m(node_b());
  Verdict v = m.eval("sleep", "postgres", 22);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kNoAllowMatched);
  EXPECT_EQ(m.e->describe(v), "denied: no ALLOW policy matched");
}

TEST(AuthzScenario, Case5UntrustedToPostgresDenied) {
  Mesh m(node_b());
  for (bool v6 : {false, true}) {
    Verdict v = m.eval("curl-untrusted", "postgres", 5432, v6);
    EXPECT_FALSE(v.allowed);
    EXPECT_EQ(v.reason, Reason::kNoAllowMatched);
  }
}

TEST(AuthzScenario, SleepToHttpbinAllowedNoAllowPolicy) {
  Mesh m(node_b());
  Verdict v = m.eval("sleep", "httpbin-2", 8080);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kNoAllowPolicy);
  EXPECT_EQ(m.e->describe(v), "allowed: no ALLOW policy applies");
  EXPECT_TRUE(v.shadow_allowed);
  EXPECT_EQ(v.n_dry_run, 0);
}

TEST(AuthzScenario, SameVerdictsFromBothNodesConfigs) {
  Mesh a(ctl::test::load_example("node-a.textproto")), b(node_b());
  for (const char* from : {"sleep", "curl-untrusted"})
    for (const char* to : {"httpbin-1", "postgres"})
      for (uint16_t port : {22, 5432, 8080})
        EXPECT_EQ(a.allowed(from, to, port), b.allowed(from, to, port)) << from << to << port;
}

// ---------------------------------------------------------------------------------------------
// Evaluation order

TEST(AuthzOrder, NoPoliciesAllowsEverything) {
  Mesh m("");
  Verdict v = m.eval("curl-untrusted", "postgres", 1);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kNoAllowPolicy);
  EXPECT_TRUE(m.allowed("", "httpbin-1", 8080));
}

TEST(AuthzOrder, DenyWinsOverMatchingAllow) {
  Mesh m(R"(
    authorizations { name: "allow-all" namespace: "data" scope: NAMESPACE action: ALLOW rules {} }
    authorizations { name: "deny-22" namespace: "data" scope: NAMESPACE action: DENY
                     rules { clauses { matches { destination_ports: 22 } } } })");
  Verdict v = m.eval("sleep", "postgres", 22);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kDenyMatched);
  EXPECT_EQ(m.key(v.decided_by), "data/deny-22");
  v = m.eval("sleep", "postgres", 23);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kAllowMatched);
  EXPECT_EQ(m.key(v.decided_by), "data/allow-all");
}

TEST(AuthzOrder, NonMatchingDenyWithoutAllowAllows) {
  Mesh m(deny_default("rules { clauses { matches { destination_ports: 1 } } }"));
  Verdict v = m.eval("sleep", "httpbin-1", 8080);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kNoAllowPolicy);
}

TEST(AuthzOrder, AnyMatchingAllowAllowsAndIsReported) {
  Mesh m(R"(
    authorizations { name: "a1" namespace: "data" scope: NAMESPACE action: ALLOW
                     rules { clauses { matches { destination_ports: 1 } } } }
    authorizations { name: "a2" namespace: "data" scope: NAMESPACE action: ALLOW
                     rules { clauses { matches { destination_ports: 2 } } }
                     rules { clauses { matches { destination_ports: 5432 } } } })");
  Verdict v = m.eval("sleep", "postgres", 5432);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(m.key(v.decided_by), "data/a2");
  EXPECT_EQ(v.decided_by.rule, 1u);
  EXPECT_EQ(m.eval("sleep", "postgres", 1).decided_by.policy.value, 0u);
  EXPECT_FALSE(m.allowed("sleep", "postgres", 3));
}

TEST(AuthzOrder, FirstMatchingDenyInZtunnelOrderIsReported) {
  // ztunnel chains namespace policies, then global ones, then the workload's own.
  config::Config c = mesh_with(R"(
    authorizations { name: "sel" namespace: "data" scope: WORKLOAD_SELECTOR action: DENY rules {} }
    authorizations { name: "glob" namespace: "istio-system" scope: GLOBAL action: DENY rules {} }
    authorizations { name: "ns" namespace: "data" scope: NAMESPACE action: DENY rules {} })");
  workload(c, "postgres")->add_authorization_policies("data/sel");
  Mesh m(c);
  Verdict v = m.eval("sleep", "postgres", 5432);
  EXPECT_EQ(m.key(v.decided_by), "data/ns");
  auto deny = m.e->applicable(m.e->workload_by_name("postgres"), Bucket::kDeny);
  ASSERT_EQ(deny.size(), 3u);
  EXPECT_EQ(m.e->policy(deny[0]).key(), "data/ns");
  EXPECT_EQ(m.e->policy(deny[1]).key(), "istio-system/glob");
  EXPECT_EQ(m.e->policy(deny[2]).key(), "data/sel");
}

TEST(AuthzOrder, DryRunDenyIsOnlyReported) {
  Mesh m(R"(
    authorizations { name: "dry" namespace: "default" scope: NAMESPACE action: DENY dry_run: true
                     rules { clauses { matches { namespaces { exact: "untrusted" } } } } })");
  Verdict v = m.eval("curl-untrusted", "httpbin-1", 8080);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kNoAllowPolicy);
  ASSERT_EQ(v.n_dry_run, 1);
  EXPECT_EQ(v.dry_run_matched, 1u);
  EXPECT_EQ(m.key(v.dry_run[0]), "default/dry");
  EXPECT_EQ(v.dry_run[0].rule, 0u);
  EXPECT_FALSE(v.shadow_allowed);
  EXPECT_EQ(m.e->describe(v),
            "allowed: no ALLOW policy applies; dry-run DENY policy default/dry matched (rule 0)");
  Verdict s = m.eval("sleep", "httpbin-1", 8080);
  EXPECT_TRUE(s.allowed);
  EXPECT_EQ(s.n_dry_run, 0);
  EXPECT_TRUE(s.shadow_allowed);
}

TEST(AuthzOrder, DryRunDenyIsReportedEvenWhenAnEnforcedDenyDecides) {
  Mesh m(R"(
    authorizations { name: "dry" namespace: "default" scope: NAMESPACE action: DENY dry_run: true
                     rules {} }
    authorizations { name: "real" namespace: "default" scope: NAMESPACE action: DENY rules {} })");
  Verdict v = m.eval("sleep", "httpbin-1", 8080);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(m.key(v.decided_by), "default/real");
  ASSERT_EQ(v.n_dry_run, 1);
  EXPECT_EQ(m.key(v.dry_run[0]), "default/dry");
}

TEST(AuthzOrder, DryRunAllowNeverEnforcedAndDoesNotTurnOnDefaultDeny) {
  Mesh m(R"(
    authorizations { name: "dry-allow" namespace: "data" scope: NAMESPACE action: ALLOW
                     dry_run: true
                     rules { clauses { matches { destination_ports: 5432 } } } })");
  Verdict v = m.eval("curl-untrusted", "postgres", 22);  // the dry-run ALLOW would deny it
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kNoAllowPolicy);
  EXPECT_EQ(v.n_dry_run, 0);
  EXPECT_FALSE(v.shadow_allowed);
  Verdict w = m.eval("curl-untrusted", "postgres", 5432);
  EXPECT_TRUE(w.allowed);
  ASSERT_EQ(w.n_dry_run, 1);
  EXPECT_EQ(m.key(w.dry_run[0]), "data/dry-allow");
  EXPECT_TRUE(w.shadow_allowed);
  EXPECT_EQ(m.e->applicable(m.e->workload_by_name("postgres"), Bucket::kDryRunAllow).size(), 1u);
  EXPECT_EQ(m.e->applicable(m.e->workload_by_name("postgres"), Bucket::kAllow).size(), 0u);
}

TEST(AuthzOrder, DryRunAllowBesideEnforcedAllow) {
  Mesh m(R"(
    authorizations { name: "allow" namespace: "data" scope: NAMESPACE action: ALLOW
                     rules { clauses { matches { destination_ports: 5432 } } } }
    authorizations { name: "dry-allow" namespace: "data" scope: NAMESPACE action: ALLOW
                     dry_run: true rules { clauses { matches { destination_ports: 22 } } } })");
  Verdict v = m.eval("sleep", "postgres", 22);
  EXPECT_FALSE(v.allowed);  // the dry-run ALLOW matches but is not enforced
  EXPECT_EQ(v.reason, Reason::kNoAllowMatched);
  EXPECT_EQ(v.n_dry_run, 1);
  EXPECT_TRUE(v.shadow_allowed);
  EXPECT_TRUE(m.allowed("sleep", "postgres", 5432));
}

TEST(AuthzOrder, DryRunReportIsBoundedButCounted) {
  std::string p;
  for (int i = 0; i < 6; i++)
    p += "authorizations { name: \"d" + std::to_string(i) +
         "\" namespace: \"default\" scope: NAMESPACE action: DENY dry_run: true rules {} }\n";
  Mesh m(p);
  Verdict v = m.eval("sleep", "httpbin-1", 8080);
  EXPECT_TRUE(v.allowed);
  EXPECT_EQ(v.n_dry_run, kMaxDryRunReported);
  EXPECT_EQ(v.dry_run_matched, 6u);
  EXPECT_NE(m.e->describe(v).find("2 more dry-run matches"), std::string::npos);
}

TEST(AuthzOrder, UnknownDestinationIsDenied) {
  Mesh m(node_b());
  Request r = m.req("sleep", "postgres", 5432);
  r.dst_workload = 99;
  Verdict v = m.e->evaluate(r);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kUnknownDestination);
  r.dst_workload = kNone;
  EXPECT_FALSE(m.e->evaluate(r).allowed);
}

// ---------------------------------------------------------------------------------------------
// Edge cases

TEST(AuthzEdge, AllowWithNoRulesDeniesEverything) {
  Mesh m(R"(authorizations { name: "a" namespace: "data" scope: NAMESPACE action: ALLOW })");
  Verdict v = m.eval("sleep", "postgres", 5432);
  EXPECT_FALSE(v.allowed);
  EXPECT_EQ(v.reason, Reason::kNoAllowMatched);
}

TEST(AuthzEdge, DenyWithNoRulesMatchesNothing) {
  Mesh m(deny_default(""));
  EXPECT_TRUE(m.allowed("curl-untrusted", "httpbin-1", 8080));
}

TEST(AuthzEdge, RuleWithNoClausesMatchesEverything) {
  EXPECT_FALSE(Mesh(deny_default("rules {}")).allowed("", "httpbin-1", 8080));
  Mesh allow(R"(authorizations { name: "a" namespace: "data" scope: NAMESPACE action: ALLOW
                                 rules {} })");
  EXPECT_TRUE(allow.allowed("curl-untrusted", "postgres", 1));
  EXPECT_TRUE(allow.allowed("", "postgres", 1, true));
}

TEST(AuthzEdge, ClauseWithNoMatchesHolds) {
  Mesh m(deny_default("rules { clauses {} clauses { matches { destination_ports: 8080 } } }"));
  EXPECT_FALSE(m.allowed("sleep", "httpbin-1", 8080));
  EXPECT_TRUE(m.allowed("sleep", "httpbin-1", 8081));
  EXPECT_FALSE(Mesh(deny_default("rules { clauses {} }")).allowed("sleep", "httpbin-1", 1));
}

TEST(AuthzEdge, EmptyMatchIsSkipped) {
  // A clause made only of empty matches fails, so the rule and the policy never match.
  EXPECT_TRUE(
      Mesh(deny_default("rules { clauses { matches {} } }")).allowed("sleep", "httpbin-1", 1));
  EXPECT_TRUE(Mesh(deny_default("rules { clauses { matches {} matches {} } }"))
                  .allowed("", "httpbin-1", 1));
  // Beside a real match, the empty one is ignored and the real one decides.
  Mesh m(deny_default("rules { clauses { matches {} matches { destination_ports: 8080 } } }"));
  EXPECT_FALSE(m.allowed("sleep", "httpbin-1", 8080));
  EXPECT_TRUE(m.allowed("sleep", "httpbin-1", 8081));
  // An ALLOW whose only match is empty turns on default deny and allows nothing.
  Mesh a(R"(authorizations { name: "a" namespace: "data" scope: NAMESPACE action: ALLOW
                             rules { clauses { matches {} } } })");
  EXPECT_FALSE(a.allowed("sleep", "postgres", 5432));
  // Extensions alone do not make a match non-empty (ztunnel ignores them).
  EXPECT_TRUE(Mesh(deny_default("rules { clauses { matches { extensions { name: \"x\" } } } }"))
                  .allowed("sleep", "httpbin-1", 1));
}

TEST(AuthzEdge, RulesAreOrClausesAreAndMatchesAreOr) {
  // rule 0: port 1 AND namespace untrusted; rule 1: port 2 OR namespace default (one clause).
  Mesh m(deny_default(R"(
      rules { clauses { matches { destination_ports: 1 } }
              clauses { matches { namespaces { exact: "untrusted" } } } }
      rules { clauses { matches { destination_ports: 2 }
                        matches { namespaces { exact: "default" } } } })"));
  EXPECT_FALSE(m.allowed("curl-untrusted", "httpbin-1", 1));  // rule 0
  EXPECT_EQ(m.eval("curl-untrusted", "httpbin-1", 1).decided_by.rule, 0u);
  EXPECT_TRUE(m.allowed("curl-untrusted", "httpbin-1", 3));   // rule 0 needs port 1
  EXPECT_TRUE(m.allowed("postgres", "httpbin-1", 1));         // rule 0 needs untrusted
  EXPECT_FALSE(m.allowed("curl-untrusted", "httpbin-1", 2));  // rule 1, first match
  EXPECT_EQ(m.eval("curl-untrusted", "httpbin-1", 2).decided_by.rule, 1u);
  EXPECT_FALSE(m.allowed("sleep", "httpbin-1", 9));  // rule 1, second match
}

TEST(AuthzEdge, FieldsOfOneMatchAreAndValuesAreOr) {
  const std::string both =
      "namespaces { exact: \"untrusted\" } namespaces { exact: \"other\" } "
      "destination_ports: 8080 destination_ports: 9090";
  EXPECT_TRUE(match_denies(both, "curl-untrusted", 8080));
  EXPECT_TRUE(match_denies(both, "curl-untrusted", 9090));
  EXPECT_FALSE(match_denies(both, "curl-untrusted", 7070));
  EXPECT_FALSE(match_denies(both, "sleep", 8080));
  // Positive and negative forms of one field together: in 8000/8080/9090 but not 9090.
  const std::string pn =
      "destination_ports: 8000 destination_ports: 8080 destination_ports: 9090 "
      "not_destination_ports: 9090";
  EXPECT_TRUE(match_denies(pn, "sleep", 8080));
  EXPECT_FALSE(match_denies(pn, "sleep", 9090));
  EXPECT_FALSE(match_denies(pn, "sleep", 7000));
}

// ---------------------------------------------------------------------------------------------
// Fields

TEST(AuthzField, NamespacesEveryStringMatchKind) {
  EXPECT_TRUE(match_denies("namespaces { exact: \"untrusted\" }", "curl-untrusted"));
  EXPECT_FALSE(match_denies("namespaces { exact: \"untrusted\" }", "sleep"));
  EXPECT_FALSE(match_denies("namespaces { exact: \"untrust\" }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("namespaces { prefix: \"untr\" }", "curl-untrusted"));
  EXPECT_FALSE(match_denies("namespaces { prefix: \"trusted\" }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("namespaces { suffix: \"trusted\" }", "curl-untrusted"));
  EXPECT_FALSE(match_denies("namespaces { suffix: \"untr\" }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("namespaces { prefix: \"untrusted\" }", "curl-untrusted"));     // whole
  EXPECT_FALSE(match_denies("namespaces { prefix: \"untrusted-x\" }", "curl-untrusted"));  // longer
  EXPECT_TRUE(match_denies("namespaces { presence {} }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("namespaces { presence {} }", "sleep"));
  EXPECT_TRUE(
      match_denies("namespaces { exact: \"x\" } namespaces { exact: \"default\" }", "sleep"));
}

TEST(AuthzField, NotNamespaces) {
  EXPECT_FALSE(match_denies("not_namespaces { exact: \"untrusted\" }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("not_namespaces { exact: \"untrusted\" }", "sleep"));
  EXPECT_TRUE(match_denies("not_namespaces { prefix: \"kube-\" }", "sleep"));
  EXPECT_FALSE(match_denies("not_namespaces { suffix: \"ult\" }", "sleep"));
  EXPECT_FALSE(match_denies("not_namespaces { presence {} }", "sleep"));
  EXPECT_FALSE(match_denies("not_namespaces { exact: \"a\" } not_namespaces { exact: \"default\" }",
                            "sleep"));
}

TEST(AuthzField, PrincipalsEveryStringMatchKind) {
  const std::string sleep = "cluster.local/ns/default/sa/sleep";
  EXPECT_TRUE(match_denies("principals { exact: \"" + sleep + "\" }", "sleep"));
  EXPECT_FALSE(match_denies("principals { exact: \"" + sleep + "\" }", "curl-untrusted"));
  // Principals compare without "spiffe://".
  EXPECT_FALSE(match_denies("principals { exact: \"spiffe://" + sleep + "\" }", "sleep"));
  EXPECT_TRUE(match_denies("principals { prefix: \"cluster.local/ns/default/\" }", "sleep"));
  EXPECT_FALSE(match_denies("principals { prefix: \"spiffe://\" }", "sleep"));
  EXPECT_TRUE(match_denies("principals { suffix: \"/sa/sleep\" }", "sleep"));
  EXPECT_FALSE(match_denies("principals { suffix: \"/sa/sleep\" }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("principals { presence {} }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("principals { exact: \"nope\" } principals { suffix: \"/sa/default\" }",
                           "curl-untrusted"));
}

TEST(AuthzField, NotPrincipals) {
  const std::string m = "not_principals { exact: \"cluster.local/ns/default/sa/sleep\" }";
  EXPECT_FALSE(match_denies(m, "sleep"));
  EXPECT_TRUE(match_denies(m, "curl-untrusted"));
  EXPECT_FALSE(match_denies("not_principals { prefix: \"cluster.local/\" }", "curl-untrusted"));
  EXPECT_TRUE(match_denies("not_principals { suffix: \"/sa/sleep\" }", "curl-untrusted"));
  EXPECT_FALSE(match_denies("not_principals { presence {} }", "sleep"));
}

TEST(AuthzField, ServiceAccountsCompareNamespaceAndName) {
  EXPECT_TRUE(match_denies("service_accounts { namespace: \"default\" service_account: \"sleep\" }",
                           "sleep"));
  EXPECT_FALSE(match_denies("service_accounts { namespace: \"other\" service_account: \"sleep\" }",
                            "sleep"));
  EXPECT_FALSE(match_denies("service_accounts { namespace: \"default\" service_account: \"slee\" }",
                            "sleep"));
  EXPECT_TRUE(
      match_denies("service_accounts { namespace: \"x\" service_account: \"y\" } "
                   "service_accounts { namespace: \"untrusted\" service_account: \"default\" }",
                   "curl-untrusted"));
  // A workload with no service_account set is "default".
  config::Config c = mesh_with(
      deny_default("rules { clauses { matches { service_accounts { namespace: \"default\" "
                   "service_account: \"default\" } } } }"));
  workload(c, "sleep")->clear_service_account();
  EXPECT_FALSE(Mesh(c).allowed("sleep", "httpbin-1", 8080));
}

TEST(AuthzField, NotServiceAccounts) {
  const std::string m =
      "not_service_accounts { namespace: \"default\" service_account: \"sleep\" }";
  EXPECT_FALSE(match_denies(m, "sleep"));
  EXPECT_TRUE(match_denies(m, "curl-untrusted"));
}

TEST(AuthzField, SourceIpsIpv4AndIpv6) {
  auto cidr = [](const std::string& field, const std::string& a, int len) {
    std::string raw = raw_ip(a), esc;
    char buf[8];
    for (unsigned char ch : raw) {
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      esc += buf;
    }
    return field + " { address: \"" + esc + "\" length: " + std::to_string(len) + " }";
  };
  // sleep is 10.1.0.10 / fd00:10:1::10; curl-untrusted is 10.1.0.11 / fd00:10:1::11.
  EXPECT_TRUE(match_denies(cidr("source_ips", "10.1.0.10", 32), "sleep"));
  EXPECT_FALSE(match_denies(cidr("source_ips", "10.1.0.10", 32), "curl-untrusted"));
  EXPECT_TRUE(match_denies(cidr("source_ips", "10.1.0.0", 24), "curl-untrusted"));
  EXPECT_TRUE(match_denies(cidr("source_ips", "10.1.0.10", 31), "curl-untrusted"));  // 10/31
  EXPECT_FALSE(match_denies(cidr("source_ips", "10.1.0.12", 31), "curl-untrusted"));
  EXPECT_TRUE(match_denies(cidr("source_ips", "10.1.0.99", 24), "sleep"));  // host bits ignored
  EXPECT_TRUE(match_denies(cidr("source_ips", "0.0.0.0", 0), "sleep"));
  EXPECT_FALSE(match_denies(cidr("source_ips", "0.0.0.0", 0), "sleep", 8080, true));  // v4 vs v6
  EXPECT_TRUE(match_denies(cidr("source_ips", "fd00:10:1::", 64), "sleep", 8080, true));
  EXPECT_FALSE(match_denies(cidr("source_ips", "fd00:10:1::", 64), "sleep", 8080, false));
  EXPECT_TRUE(match_denies(cidr("source_ips", "fd00:10:1::11", 128), "curl-untrusted", 8080, true));
  EXPECT_FALSE(match_denies(cidr("source_ips", "fd00:10:1::11", 128), "sleep", 8080, true));
  EXPECT_TRUE(match_denies(cidr("source_ips", "fd00:10:1::10", 127), "curl-untrusted", 8080, true));
  EXPECT_FALSE(
      match_denies(cidr("source_ips", "fd00:10:1::12", 127), "curl-untrusted", 8080, true));
  EXPECT_TRUE(match_denies(cidr("source_ips", "fd00::", 8), "sleep", 8080, true));
  EXPECT_TRUE(match_denies(cidr("source_ips", "::", 0), "sleep", 8080, true));
  EXPECT_FALSE(match_denies(cidr("source_ips", "::", 0), "sleep"));  // ::/0 holds no IPv4
  EXPECT_FALSE(match_denies(cidr("source_ips", "::ffff:10.1.0.10", 128), "sleep"));
  EXPECT_TRUE(match_denies(
      cidr("source_ips", "192.0.2.0", 24) + " " + cidr("source_ips", "10.1.0.10", 32), "sleep"));
  // Sources without identity are matched by address too.
  EXPECT_TRUE(match_denies(cidr("source_ips", "192.0.2.0", 24), ""));
  EXPECT_TRUE(match_denies(cidr("source_ips", "2001:db8::", 32), "", 8080, true));

  // not_source_ips
  EXPECT_FALSE(match_denies(cidr("not_source_ips", "10.1.0.10", 32), "sleep"));
  EXPECT_TRUE(match_denies(cidr("not_source_ips", "10.1.0.10", 32), "curl-untrusted"));
  EXPECT_TRUE(match_denies(cidr("not_source_ips", "fd00:10:1::", 64), "sleep"));  // v4 source
  EXPECT_FALSE(match_denies(cidr("not_source_ips", "fd00:10:1::", 64), "sleep", 8080, true));
  EXPECT_TRUE(match_denies(
      cidr("source_ips", "10.1.0.0", 24) + " " + cidr("not_source_ips", "10.1.0.10", 32),
      "curl-untrusted"));
  EXPECT_FALSE(match_denies(
      cidr("source_ips", "10.1.0.0", 24) + " " + cidr("not_source_ips", "10.1.0.10", 32), "sleep"));

  // destination_ips / not_destination_ips (httpbin-1 is 10.2.0.20 / fd00:10:2::20)
  EXPECT_TRUE(match_denies(cidr("destination_ips", "10.2.0.20", 32), "sleep"));
  EXPECT_FALSE(match_denies(cidr("destination_ips", "10.2.0.21", 32), "sleep"));
  EXPECT_TRUE(match_denies(cidr("destination_ips", "10.2.0.0", 16), "sleep"));
  EXPECT_TRUE(match_denies(cidr("destination_ips", "fd00:10:2::20", 128), "sleep", 8080, true));
  EXPECT_FALSE(match_denies(cidr("destination_ips", "fd00:10:2::20", 128), "sleep"));
  EXPECT_FALSE(match_denies(cidr("not_destination_ips", "10.2.0.0", 24), "sleep"));
  EXPECT_TRUE(match_denies(cidr("not_destination_ips", "10.2.0.0", 24), "sleep", 8080, true));
  EXPECT_FALSE(match_denies(cidr("not_destination_ips", "fd00:10:2::", 48), "sleep", 8080, true));
}

TEST(AuthzField, DestinationPorts) {
  EXPECT_TRUE(match_denies("destination_ports: 8080", "sleep", 8080));
  EXPECT_FALSE(match_denies("destination_ports: 8080", "sleep", 80));
  EXPECT_TRUE(match_denies("destination_ports: 1 destination_ports: 65535", "sleep", 65535));
  EXPECT_FALSE(match_denies("not_destination_ports: 8080", "sleep", 8080));
  EXPECT_TRUE(match_denies("not_destination_ports: 8080", "sleep", 8081));
  // Long lists (binary search), with repeats, unsorted.
  std::string many, not_many;
  for (int p = 2000; p >= 1000; p -= 7) {
    many += "destination_ports: " + std::to_string(p) + " ";
    not_many += "not_destination_ports: " + std::to_string(p) + " ";
  }
  many += "destination_ports: 1006 ";              // a repeat
  EXPECT_TRUE(match_denies(many, "sleep", 1006));  // 2000 - 142 * 7
  EXPECT_TRUE(match_denies(many, "sleep", 2000));
  EXPECT_FALSE(match_denies(many, "sleep", 1007));
  EXPECT_FALSE(match_denies(many, "sleep", 999));
  EXPECT_FALSE(match_denies(not_many, "sleep", 1013));
  EXPECT_TRUE(match_denies(not_many, "sleep", 1014));
}

TEST(AuthzField, SourceWithoutIdentity) {
  // No identity: principals and service accounts never match (their not_ forms hold), the
  // namespace is "" (presence fails, exact "" holds), addresses and ports still match.
  EXPECT_FALSE(match_denies("principals { presence {} }", ""));
  EXPECT_FALSE(match_denies("principals { prefix: \"\" }", ""));
  EXPECT_TRUE(match_denies("not_principals { presence {} }", ""));
  EXPECT_TRUE(match_denies("not_principals { prefix: \"\" }", ""));
  EXPECT_FALSE(match_denies("namespaces { presence {} }", ""));
  EXPECT_TRUE(match_denies("not_namespaces { presence {} }", ""));
  EXPECT_TRUE(match_denies("namespaces { exact: \"\" }", ""));
  EXPECT_FALSE(match_denies("namespaces { exact: \"\" }", "sleep"));
  EXPECT_FALSE(match_denies("service_accounts { namespace: \"\" service_account: \"\" }", ""));
  EXPECT_TRUE(match_denies("not_service_accounts { namespace: \"\" service_account: \"\" }", ""));
  EXPECT_TRUE(match_denies("destination_ports: 8080", ""));
}

TEST(AuthzField, EveryFieldAtOnce) {
  const std::string all = R"(
      namespaces { exact: "default" } not_namespaces { exact: "untrusted" }
      principals { suffix: "/sa/sleep" } not_principals { prefix: "other/" }
      source_ips { address: "\x0a\x01\x00\x00" length: 24 }
      not_source_ips { address: "\x0a\x01\x00\x0b" length: 32 }
      destination_ips { address: "\x0a\x02\x00\x00" length: 24 }
      not_destination_ips { address: "\x0a\x02\x00\x15" length: 32 }
      destination_ports: 8080 not_destination_ports: 22
      service_accounts { namespace: "default" service_account: "sleep" }
      not_service_accounts { namespace: "default" service_account: "httpbin" })";
  EXPECT_TRUE(match_denies(all, "sleep", 8080));
  EXPECT_FALSE(match_denies(all, "sleep", 8081));
  EXPECT_FALSE(match_denies(all, "curl-untrusted", 8080));
  Mesh m(deny_default("rules { clauses { matches { " + all + " } } }"));
  EXPECT_TRUE(m.allowed("sleep", "httpbin-2", 8080));  // not_destination_ips
}

// ---------------------------------------------------------------------------------------------
// Scopes

TEST(AuthzScope, NamespacePoliciesApplyToTheirNamespaceOnly) {
  Mesh m(
      R"(authorizations { name: "d" namespace: "data" scope: NAMESPACE action: DENY rules {} })");
  EXPECT_FALSE(m.allowed("sleep", "postgres", 5432));
  EXPECT_TRUE(m.allowed("sleep", "httpbin-1", 8080));
  EXPECT_EQ(m.e->applicable(m.e->workload_by_name("httpbin-1"), Bucket::kDeny).size(), 0u);
}

TEST(AuthzScope, GlobalPoliciesOfTheRootNamespaceApplyEverywhere) {
  Mesh m(R"(
    authorizations { name: "g" namespace: "istio-system" scope: GLOBAL action: DENY
                     rules { clauses { matches { destination_ports: 9 } } } }
    authorizations { name: "ns-in-root" namespace: "istio-system" scope: NAMESPACE action: DENY
                     rules {} })");
  EXPECT_EQ(m.e->root_ns(), "istio-system");
  for (const char* to : {"httpbin-1", "httpbin-2", "postgres", "sleep", "curl-untrusted"}) {
    EXPECT_FALSE(m.allowed("sleep", to, 9)) << to;
    EXPECT_TRUE(m.allowed("sleep", to, 10)) << to;
  }
}

TEST(AuthzScope, GlobalOutsideTheRootNamespaceIsNotApplied) {
  config::Config c = mesh_with(
      R"(authorizations { name: "g" namespace: "default" scope: GLOBAL action: DENY rules {} })");
  Mesh m(c);
  EXPECT_TRUE(m.allowed("sleep", "httpbin-1", 8080));
  std::vector<ConfigError> errors;
  EXPECT_FALSE(ctl::validate_config(c, &errors));  // and validation says why
}

TEST(AuthzScope, RootNamespaceIsConfigurable) {
  config::Config c = mesh_with(R"(
    root_namespace: "mesh-root"
    authorizations { name: "g" namespace: "mesh-root" scope: GLOBAL action: DENY
                     rules { clauses { matches { destination_ports: 9 } } } })");
  std::vector<ConfigError> errors;
  EXPECT_TRUE(ctl::validate_config(c, &errors));
  Mesh m(c);
  EXPECT_EQ(m.e->root_ns(), "mesh-root");
  EXPECT_FALSE(m.allowed("sleep", "postgres", 9));
  EXPECT_TRUE(m.allowed("sleep", "httpbin-1", 8080));
}

TEST(AuthzScope, WorkloadSelectorPoliciesApplyToWorkloadsThatNameThem) {
  config::Config c = mesh_with(R"(
    authorizations { name: "only-1" namespace: "default" scope: WORKLOAD_SELECTOR action: DENY
                     rules {} })");
  workload(c, "httpbin-1")->add_authorization_policies("default/only-1");
  workload(c, "httpbin-1")->add_authorization_policies("default/only-1");   // counted once
  workload(c, "httpbin-1")->add_authorization_policies("default/unknown");  // skipped
  Mesh m(c);
  EXPECT_FALSE(m.allowed("sleep", "httpbin-1", 8080));
  EXPECT_TRUE(m.allowed("sleep", "httpbin-2", 8080));  // same namespace, does not name it
  EXPECT_EQ(m.e->applicable(m.e->workload_by_name("httpbin-1"), Bucket::kDeny).size(), 1u);
}

TEST(AuthzScope, WorkloadSelectorAcrossNamespacesAndWithAllow) {
  config::Config c = mesh_with(R"(
    authorizations { name: "pg" namespace: "data" scope: WORKLOAD_SELECTOR action: ALLOW
                     rules { clauses { matches { destination_ports: 5432 } } } })");
  workload(c, "postgres")->add_authorization_policies("data/pg");
  Mesh m(c);
  EXPECT_TRUE(m.allowed("curl-untrusted", "postgres", 5432));
  EXPECT_FALSE(m.allowed("curl-untrusted", "postgres", 22));
  EXPECT_TRUE(m.allowed("curl-untrusted", "httpbin-1", 22));
}

TEST(AuthzScope, PolicySetsAreSharedAndIdsDense) {
  config::Config c = node_b();
  Mesh m(c);
  EXPECT_EQ(m.e->n_policies(), 2u);
  EXPECT_EQ(m.e->policy_by_key("data/allow-sleep"), 0u);
  EXPECT_EQ(m.e->policy_by_key("default/deny-untrusted"), 1u);
  EXPECT_EQ(m.e->policy_by_key("default/nope"), kNone);
  // default (sleep, httpbin-1, httpbin-2), untrusted, data: three distinct lists.
  EXPECT_EQ(m.e->n_policy_sets(), 3u);
  const PolicyInfo& p = m.e->policy(PolicyId(0));
  EXPECT_EQ(p.key(), "data/allow-sleep");
  EXPECT_EQ(p.action, Action::kAllow);
  EXPECT_EQ(p.scope, Scope::kNamespace);
  EXPECT_EQ(p.n_rules, 1u);
  EXPECT_GT(m.e->memory_bytes(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Identities and lookups: the data plane finds the source identity by its wire id.

TEST(AuthzLookup, IdentitiesFollowTheSnapshotOrderAndWireIds) {
  const config::Config& c = node_b();
  Mesh m(c);
  std::vector<ctl::ConfigError> errors;
  auto snap = ctl::compile_snapshot(c, ctl::CompileOptions{}, nullptr, &errors);
  ASSERT_TRUE(snap);
  ASSERT_EQ(m.e->n_identities(), snap->identities.size());
  for (size_t i = 0; i < snap->identities.size(); i++) {
    EXPECT_EQ(m.e->identity(uint32_t(i)).principal, snap->identities[i].principal);
    EXPECT_EQ(m.e->identity(uint32_t(i)).wire_id, snap->identities[i].id);
    EXPECT_EQ(m.e->identity_by_wire_id(snap->identities[i].id), i);
  }
  EXPECT_EQ(m.e->identity_by_wire_id(IdentityId(0)), kNone);
  uint32_t sleep = m.e->workload_by_name("default/sleep");
  EXPECT_EQ(sleep, 0u);
  EXPECT_EQ(m.e->workload_by_address(ip("fd00:10:1::10")), sleep);
  EXPECT_EQ(m.e->workload_by_address(ip("10.9.9.9")), kNone);
  EXPECT_EQ(m.e->identity(m.e->identity_of_workload(sleep)).principal,
            "cluster.local/ns/default/sa/sleep");
  EXPECT_EQ(m.e->identity_of_workload(99), kNone);
  EXPECT_EQ(m.e->workload_by_name("data/sleep"), kNone);
  EXPECT_EQ(m.e->workload_by_name("nope"), kNone);
}

TEST(AuthzLookup, AmbiguousBareNames) {
  config::Config c = node_b();
  auto* w = c.add_workloads();
  *w = *workload(c, "sleep");
  w->set_namespace_("data");
  w->clear_addresses();
  Mesh m(c);
  std::vector<std::string> amb;
  EXPECT_EQ(m.e->workload_by_name("sleep", &amb), kNone);
  EXPECT_EQ(amb, (std::vector<std::string>{"default/sleep", "data/sleep"}));
  EXPECT_NE(m.e->workload_by_name("data/sleep"), kNone);
}

// ---------------------------------------------------------------------------------------------
// Data-plane contract: evaluate() allocates nothing.

TEST(AuthzHotPath, EvaluateDoesNotAllocate) {
  config::Config c = node_b();
  std::string more = R"(
    authorizations { name: "dry" namespace: "data" scope: NAMESPACE action: DENY dry_run: true
                     rules { clauses { matches { principals { suffix: "/sa/sleep" } } } } }
    authorizations { name: "dry-allow" namespace: "data" scope: NAMESPACE action: ALLOW
                     dry_run: true rules { clauses { matches { namespaces { prefix: "de" } } } } }
    authorizations { name: "ips" namespace: "data" scope: NAMESPACE action: DENY
                     rules { clauses { matches {
                       source_ips { address: "\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" length: 8 }
                       not_service_accounts { namespace: "default" service_account: "sleep" } } } } })";
  ASSERT_TRUE(google::protobuf::TextFormat::MergeFromString(more, &c));
  Mesh m(c);
  std::vector<Request> reqs;
  for (const char* from : {"sleep", "curl-untrusted", ""})
    for (const char* to : {"postgres", "httpbin-1"})
      for (uint16_t port : {22, 5432, 8080})
        for (bool v6 : {false, true}) reqs.push_back(m.req(from, to, port, v6));
  int allowed = 0;
  g_allocs = 0;
  g_count_allocs = true;
  for (const Request& r : reqs) allowed += m.e->evaluate(r).allowed;
  g_count_allocs = false;
  EXPECT_EQ(g_allocs.load(), 0);
  EXPECT_GT(allowed, 0);
}

// ---------------------------------------------------------------------------------------------
// validate_config(): policy checks, each naming resource, field and reason.

void expect_error(const std::function<void(config::Config&)>& mutate, const std::string& resource,
                  const std::string& field, const std::string& reason) {
  config::Config c = node_b();
  mutate(c);
  std::vector<ConfigError> errors;
  EXPECT_FALSE(ctl::validate_config(c, &errors));
  bool found = false;
  std::string got;
  for (const auto& e : errors) {
    got += "  " + e.str() + "\n";
    found = found || (e.resource == resource && e.field == field &&
                      e.reason.find(reason) != std::string::npos);
  }
  EXPECT_TRUE(found) << "wanted: " << resource << ": " << field << ": ..." << reason
                     << "...\ngot:\n"
                     << got;
}

void add_policy(config::Config& c, const std::string& text) {
  ASSERT_TRUE(google::protobuf::TextFormat::MergeFromString("authorizations { " + text + " }", &c));
}

TEST(AuthzValidate, NameNamespaceDuplicates) {
  expect_error([](config::Config& c) { add_policy(c, "namespace: \"x\""); }, "authorizations[2]",
               "name", "required");
  expect_error([](config::Config& c) { add_policy(c, "name: \"n\""); }, "authorization /n",
               "namespace", "required");
  expect_error([](config::Config& c) { add_policy(c, "name: \"a/b\" namespace: \"x\""); },
               "authorization x/a/b", "name", "must not contain '/'");
  expect_error(
      [](config::Config& c) { add_policy(c, "name: \"allow-sleep\" namespace: \"data\""); },
      "authorization data/allow-sleep", "name",
      "duplicate authorization policy (also authorizations[0])");
}

TEST(AuthzValidate, ScopeAndAction) {
  expect_error(
      [](config::Config& c) { add_policy(c, "name: \"g\" namespace: \"default\" scope: GLOBAL"); },
      "authorization default/g", "scope",
      "GLOBAL policies must be in the root namespace \"istio-system\"");
  expect_error(
      [](config::Config& c) {
        add_policy(c, "name: \"s\" namespace: \"x\"");
        c.mutable_authorizations(2)->set_scope(static_cast<istio::security::Scope>(7));
      },
      "authorization x/s", "scope", "unknown scope 7");
  expect_error(
      [](config::Config& c) {
        add_policy(c, "name: \"s\" namespace: \"x\"");
        c.mutable_authorizations(2)->set_action(static_cast<istio::security::Action>(5));
      },
      "authorization x/s", "action", "unknown action 5");
}

TEST(AuthzValidate, StringMatchesCidrsPortsServiceAccounts) {
  const std::string p =
      "name: \"p\" namespace: \"x\" rules { clauses {} clauses { matches {} matches { ";
  expect_error([&](config::Config& c) { add_policy(c, p + "namespaces {} } } }"); },
               "authorization x/p", "rules[0].clauses[1].matches[1].namespaces[0]",
               "empty StringMatch");
  expect_error(
      [&](config::Config& c) {
        add_policy(c, p + "principals { exact: \"a\" } not_principals {} } } }");
      },
      "authorization x/p", "rules[0].clauses[1].matches[1].not_principals[0]", "empty StringMatch");
  expect_error(
      [&](config::Config& c) {
        add_policy(c, p + "source_ips { address: \"\\x0a\\x01\\x00\" length: 8 } } } }");
      },
      "authorization x/p", "rules[0].clauses[1].matches[1].source_ips[0]",
      "address must be 4 or 16 octets, got 3");
  expect_error(
      [&](config::Config& c) {
        add_policy(
            c, p + "not_destination_ips { address: \"\\x0a\\x01\\x00\\x00\" length: 33 } } } }");
      },
      "authorization x/p", "rules[0].clauses[1].matches[1].not_destination_ips[0]",
      "prefix length 33 is outside 0..32 (IPv4)");
  expect_error(
      [&](config::Config& c) {
        add_policy(c, p + "destination_ips { address: "
                          "\"\\xfd\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                          "\\x00\\x00\" length: 129 } } } }");
      },
      "authorization x/p", "rules[0].clauses[1].matches[1].destination_ips[0]",
      "prefix length 129 is outside 0..128 (IPv6)");
  expect_error(
      [&](config::Config& c) {
        add_policy(c, p + "destination_ports: 80 destination_ports: 65536 } } }");
      },
      "authorization x/p", "rules[0].clauses[1].matches[1].destination_ports[1]",
      "65536 is outside 1..65535");
  expect_error([&](config::Config& c) { add_policy(c, p + "not_destination_ports: 0 } } }"); },
               "authorization x/p", "rules[0].clauses[1].matches[1].not_destination_ports[0]",
               "0 is outside 1..65535");
  expect_error(
      [&](config::Config& c) {
        add_policy(c, p + "service_accounts { service_account: \"s\" } } } }");
      },
      "authorization x/p", "rules[0].clauses[1].matches[1].service_accounts[0].namespace",
      "required");
  expect_error(
      [&](config::Config& c) {
        add_policy(c, p + "not_service_accounts { namespace: \"n\" } } } }");
      },
      "authorization x/p", "rules[0].clauses[1].matches[1].not_service_accounts[0].service_account",
      "required");
}

TEST(AuthzValidate, WorkloadPolicyReferences) {
  expect_error([](config::Config& c) { workload(c, "sleep")->add_authorization_policies("nope"); },
               "workload default/sleep", "authorization_policies[0]",
               "\"nope\" is not \"namespace/name\"");
  expect_error(
      [](config::Config& c) { workload(c, "sleep")->add_authorization_policies("default/nope"); },
      "workload default/sleep", "authorization_policies[0]",
      "\"default/nope\" names no authorization policy");
  expect_error(
      [](config::Config& c) {
        add_policy(c, "name: \"sel\" namespace: \"default\" scope: WORKLOAD_SELECTOR");
        workload(c, "sleep")->add_authorization_policies("default/sel");
        workload(c, "sleep")->add_authorization_policies("default/sel");
      },
      "workload default/sleep", "authorization_policies[1]", "\"default/sel\" is listed twice");
  expect_error(
      [](config::Config& c) {
        workload(c, "sleep")->add_authorization_policies("default/deny-untrusted");
      },
      "workload default/sleep", "authorization_policies[0]",
      "\"default/deny-untrusted\" has scope NAMESPACE");
}

TEST(AuthzValidate, ValidPoliciesPass) {
  config::Config c = node_b();
  add_policy(c, R"(name: "sel" namespace: "default" scope: WORKLOAD_SELECTOR action: DENY
                   dry_run: true
                   rules { clauses { matches {
                     namespaces { prefix: "a" } principals { presence {} }
                     source_ips { address: "\x0a\x00\x00\x05" length: 8 }
                     destination_ips { address: "\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" length: 8 }
                     destination_ports: 1 destination_ports: 65535
                     service_accounts { namespace: "n" service_account: "s" } } } }
                   rules {})");
  add_policy(c, R"(name: "g" namespace: "istio-system" scope: GLOBAL)");
  workload(c, "httpbin-1")->add_authorization_policies("default/sel");
  std::vector<ConfigError> errors;
  EXPECT_TRUE(ctl::validate_config(c, &errors));
  for (const auto& e : errors) ADD_FAILURE() << e.str();
}

}  // namespace
}  // namespace vanish::authz
