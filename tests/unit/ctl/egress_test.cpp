// Egress config (ctl/egress.hpp): validation messages, the compiled HostPolicy's decisions
// (Istio-like semantics, docs/config.md#egress), Hyperscan database sharing across generations.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "ctl/compile.hpp"
#include "ctl/egress.hpp"
#include "tests/unit/ctl/test_util.hpp"

namespace vanish::ctl {
namespace {

std::string dump(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const auto& e : errors) s += e.str() + "\n";
  return s;
}

config::Config with_egress(const std::string& egress_text) {
  config::Config c = test::load_example("node-a.textproto");
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(egress_text, c.mutable_egress()))
      << egress_text;
  return c;
}

const char* kRules = R"(
  mode: ALLOW_ANY
  next_hop_mac: "02:00:00:00:ee:01"
  rules { name: "default-https" namespace: "default" action: ALLOW
          hosts: "allowed.test" hosts: "*.example.com" ports: 443 }
  rules { name: "no-evil" action: DENY hosts: "*.evil.test" hosts: "evil.test" }
  rules { name: "dns" namespace: "default" action: ALLOW hosts: "*" ports: 53 }
)";

std::shared_ptr<const dp::HostPolicy> policy(const config::Config& c, unsigned workers = 1,
                                             const dp::HostPolicy* prev = nullptr) {
  std::vector<ConfigError> errors;
  EXPECT_TRUE(validate_config(c, &errors)) << dump(errors);
  std::string e;
  auto p = build_host_policy(c, workers, prev, &e);
  EXPECT_TRUE(p) << e;
  return p;
}

TEST(Egress, ValidationNamesFieldAndReason) {
  config::Config c = with_egress(R"(
    mode: REGISTRY_ONLY
    next_hop_mac: "01:00:5e:00:00:01"
    rules { name: "r" hosts: "a.*.com" hosts: "ok.com" hosts: "ok.com" ports: 0 }
    rules { name: "r" namespace: "a/b" hosts: "bad host" }
    rules { hosts: "x.com" ports: 443 ports: 443 }
    rules { name: "empty" }
  )");
  std::vector<ConfigError> errors;
  EXPECT_FALSE(validate_config(c, &errors));
  std::string s = dump(errors);
  EXPECT_NE(s.find("egress: next_hop_mac: \"01:00:5e:00:00:01\" is a multicast MAC"), s.npos) << s;
  EXPECT_NE(s.find("egress rule r: hosts[0]: \"a.*.com\": a wildcard is only allowed as the whole "
                   "first label"),
            s.npos)
      << s;
  EXPECT_NE(s.find("egress rule r: hosts[2]: \"ok.com\" is listed twice"), s.npos) << s;
  EXPECT_NE(s.find("egress rule r: ports[0]: 0 is outside 1..65535"), s.npos) << s;
  EXPECT_NE(s.find("egress rule r: name: \"r\" is used by another rule"), s.npos) << s;
  EXPECT_NE(s.find("egress rule r: namespace: \"a/b\" must not contain '/'"), s.npos) << s;
  EXPECT_NE(s.find("egress rule r: hosts[0]: \"bad host\" is not a hostname"), s.npos) << s;
  EXPECT_NE(s.find("egress rule #2: name: required"), s.npos) << s;
  EXPECT_NE(s.find("egress rule #2: ports[1]: 443 is listed twice"), s.npos) << s;
  EXPECT_NE(s.find("egress rule empty: hosts: at least one host is required"), s.npos) << s;

  config::Config d = with_egress("mode: ALLOW_ANY");
  errors.clear();
  EXPECT_FALSE(validate_config(d, &errors));
  EXPECT_NE(dump(errors).find("egress: next_hop_mac: required"), std::string::npos);
}

TEST(Egress, HostExpressions) {
  const std::string b(1, dp::kHostBegin), e(1, dp::kHostEnd);
  EXPECT_EQ(host_expression("api.example.com"), b + "moc.elpmaxe.ipa" + e);
  EXPECT_EQ(host_expression("*.example.com"), b + "moc.elpmaxe.");
  EXPECT_EQ(host_expression("*"), b);
}

TEST(Egress, DecisionsFollowTheDocumentedOrder) {
  auto p = policy(with_egress(kRules), 2);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->hs);
  EXPECT_EQ(p->hs->scratch.size(), 2u) << "one scratch per worker";
  const uint32_t def = 0;  // "default" is the first namespace a rule names
  ASSERT_EQ(p->namespaces.size(), 1u);
  EXPECT_EQ(p->namespaces[0], "default");
  hs_scratch_t* scr = p->scratch(0);
  auto d = [&](const char* host, uint32_t ns, uint16_t port) {
    return p->decide(host, ns, port, scr);
  };
  // 2: an ALLOW that applies lists it (exact, wildcard, caseless, multi-level wildcard).
  EXPECT_TRUE(d("allowed.test", def, 443).allow);
  EXPECT_TRUE(d("ALLOWED.Test", def, 443).allow);
  EXPECT_TRUE(d("a.example.com", def, 443).allow);
  EXPECT_TRUE(d("a.b.example.com", def, 443).allow);
  EXPECT_EQ(p->patterns[d("a.example.com", def, 443).pattern].host, "*.example.com");
  EXPECT_EQ(p->rules[d("a.example.com", def, 443).rule].name, "default-https");
  // 3: an ALLOW applies but does not list it (also: the bare domain of a wildcard).
  EXPECT_FALSE(d("example.com", def, 443).allow);
  EXPECT_FALSE(d("other.test", def, 443).allow);
  EXPECT_FALSE(d("allowed.test.evil", def, 443).allow) << "anchored at both ends";
  EXPECT_FALSE(d("", def, 443).allow) << "no name";
  // 1: DENY wins, in every namespace, on every port.
  EXPECT_FALSE(d("evil.test", def, 443).allow);
  EXPECT_FALSE(d("x.evil.test", kInvalidIdx, 80).allow);
  EXPECT_EQ(p->rules[d("x.evil.test", kInvalidIdx, 80).rule].name, "no-evil");
  // 4: no ALLOW applies (other namespace, other port): ALLOW_ANY.
  EXPECT_TRUE(d("other.test", kInvalidIdx, 443).allow);
  EXPECT_TRUE(d("other.test", def, 80).allow);
  EXPECT_TRUE(d("", def, 80).allow);
  EXPECT_EQ(d("other.test", def, 80).pattern, kInvalidIdx);
  // DNS: the "*" rule allows every name on 53 for default.
  EXPECT_TRUE(d("anything.at.all", def, 53).allow);
  EXPECT_FALSE(d("evil.test", def, 53).allow);
  // Scope flags: what the data plane uses to decide without a name.
  EXPECT_EQ(p->scope_flags(def, 443), dp::kScopeAllow | dp::kScopeDeny);
  EXPECT_EQ(p->scope_flags(kInvalidIdx, 443), dp::kScopeDeny);
  EXPECT_EQ(p->scope_flags(def, 22), dp::kScopeDeny);
}

TEST(Egress, RegistryOnly) {
  config::Config c = with_egress(kRules);
  c.mutable_egress()->set_mode(config::Egress::REGISTRY_ONLY);
  auto p = policy(c);
  EXPECT_FALSE(p->decide("other.test", kInvalidIdx, 443, p->scratch(0)).allow);
  EXPECT_FALSE(p->decide("", 0, 80, p->scratch(0)).allow);
  EXPECT_TRUE(p->decide("allowed.test", 0, 443, p->scratch(0)).allow);
}

TEST(Egress, WorkloadNamespacesAndNextHop) {
  auto p = policy(with_egress(kRules));
  config::Config c = test::load_example("node-a.textproto");
  ASSERT_EQ(p->workload_ns.size(), size_t(c.workloads_size()));
  for (int i = 0; i < c.workloads_size(); i++)
    EXPECT_EQ(p->workload_ns[i], c.workloads(i).namespace_() == "default" ? 0u : kInvalidIdx)
        << c.workloads(i).name();
  MacAddr m;
  MacAddr::parse("02:00:00:00:ee:01", &m);
  EXPECT_EQ(p->next_hop, m);
}

TEST(Egress, DatabaseSharedWhenPatternsUnchanged) {
  config::Config c = with_egress(kRules);
  std::vector<ConfigError> errors;
  auto s1 = compile_snapshot(c, CompileOptions{2, 1}, nullptr, &errors);
  ASSERT_TRUE(s1) << dump(errors);
  ASSERT_TRUE(s1->egress);
  auto s2 = compile_snapshot(c, CompileOptions{2, 2}, s1.get(), &errors);
  ASSERT_TRUE(s2);
  EXPECT_EQ(s1->egress->hs, s2->egress->hs) << "same patterns: no recompilation";
  c.mutable_egress()->mutable_rules(0)->add_hosts("new.test");
  auto s3 = compile_snapshot(c, CompileOptions{2, 3}, s2.get(), &errors);
  ASSERT_TRUE(s3);
  EXPECT_NE(s3->egress->hs, s2->egress->hs);
  EXPECT_TRUE(s3->egress->decide("new.test", 0, 443, s3->egress->scratch(1)).allow);
  // No egress block: no policy.
  auto s4 = compile_snapshot(test::load_example("node-a.textproto"), CompileOptions{1, 4}, nullptr,
                             &errors);
  ASSERT_TRUE(s4);
  EXPECT_FALSE(s4->egress);
}

TEST(Egress, TenThousandPatternsCompileAndMatch) {
  config::Config c = with_egress("mode: REGISTRY_ONLY next_hop_mac: \"02:00:00:00:ee:01\"");
  for (int r = 0; r < 100; r++) {
    auto* rule = c.mutable_egress()->add_rules();
    rule->set_name("r" + std::to_string(r));
    rule->set_namespace_("default");
    for (int h = 0; h < 100; h++)
      rule->add_hosts((h % 2 ? "*.svc" : "host") + std::to_string(r * 100 + h) + ".example.com");
  }
  auto p = policy(c);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->patterns.size(), 10000u);
  EXPECT_TRUE(p->decide("host9998.example.com", 0, 443, p->scratch(0)).allow);
  EXPECT_TRUE(p->decide("a.b.svc9999.example.com", 0, 443, p->scratch(0)).allow);
  EXPECT_FALSE(p->decide("host9999.example.com", 0, 443, p->scratch(0)).allow);
  EXPECT_EQ(p->rules[p->decide("host42.example.com", 0, 443, p->scratch(0)).rule].name, "r0");
}

}  // namespace
}  // namespace vanish::ctl
