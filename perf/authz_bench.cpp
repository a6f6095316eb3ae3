// vanish-authz-bench: the cost of one authorization decision (authz::Engine::evaluate, the call
// the data plane makes once per new flow at the destination) as the config grows with policies
// that do not apply to the destination. The destination is data/postgres of the reference mesh;
// the requests are scenario cases 3, 4 and 5 (allow match, ALLOW applies but does not match, other
// source) over IPv4 and IPv6, round robin. Besides ns/evaluation it prints the compile time and
// the engine's memory for each config.
//   vanish-authz-bench [--evals N] [--reps R] [--only I]   (I: row number from 0, e.g. for
//   valgrind --tool=callgrind)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ctl/authz.hpp"

using namespace vanish;
using Clock = std::chrono::steady_clock;

namespace {

std::string v4(uint32_t host) {
  std::string b(4, '\0');
  for (int i = 0; i < 4; i++) b[size_t(i)] = char(host >> (24 - 8 * i));
  return b;
}
std::string v6(uint16_t group2, uint32_t low) {
  std::string b(16, '\0');
  b[0] = char(0xfd);
  b[3] = 0x10;  // fd00:10:...
  b[4] = char(group2 >> 8);
  b[5] = char(group2);
  for (int i = 0; i < 4; i++) b[size_t(12 + i)] = char(low >> (24 - 8 * i));
  return b;
}

istio::workload::Workload* add_workload(config::Config& c, const std::string& name,
                                        const std::string& ns, const std::string& sa,
                                        uint32_t a4, uint16_t g6, uint32_t a6) {
  auto* w = c.add_workloads();
  w->set_name(name);
  w->set_namespace_(ns);
  w->set_service_account(sa);
  w->set_node("node-b");
  w->add_addresses(v4(a4));
  w->add_addresses(v6(g6, a6));
  return w;
}

istio::security::Authorization* add_policy(config::Config& c, const std::string& ns,
                                            const std::string& name, istio::security::Scope scope,
                                            istio::security::Action action) {
  auto* a = c.add_authorizations();
  a->set_namespace_(ns);
  a->set_name(name);
  a->set_scope(scope);
  a->set_action(action);
  return a;
}

// The reference mesh's workloads (shared/scenario.md).
void reference_workloads(config::Config& c) {
  add_workload(c, "sleep", "default", "sleep", 0x0a01000a, 1, 0x10);
  add_workload(c, "curl-untrusted", "untrusted", "default", 0x0a01000b, 1, 0x11);
  add_workload(c, "httpbin-1", "default", "httpbin", 0x0a020014, 2, 0x20);
  add_workload(c, "httpbin-2", "default", "httpbin", 0x0a020015, 2, 0x21);
  add_workload(c, "postgres", "data", "postgres", 0x0a02001e, 2, 0x30);
}

void allow_sleep(config::Config& c) {
  auto* r = add_policy(c, "data", "allow-sleep", istio::security::NAMESPACE, istio::security::ALLOW)
                ->add_rules();
  r->add_clauses()->add_matches()->add_principals()->set_exact("cluster.local/ns/default/sa/sleep");
  r->add_clauses()->add_matches()->add_destination_ports(5432);
}

// Four more policies that apply to data/postgres and never match the benchmark's requests, so
// each is evaluated in full: three DENY in "data", one GLOBAL DENY in the root namespace.
void four_more_applying(config::Config& c) {
  auto deny = [&](const std::string& ns, const std::string& name, istio::security::Scope s) {
    return add_policy(c, ns, name, s, istio::security::DENY)->add_rules()->add_clauses()->add_matches();
  };
  deny("data", "deny-evil", istio::security::NAMESPACE)->add_namespaces()->set_prefix("evil-");
  auto* ips = deny("data", "deny-docnet", istio::security::NAMESPACE)->add_source_ips();
  ips->set_address(v4(0xc0000200));
  ips->set_length(24);
  auto* ports = deny("data", "deny-admin-ports", istio::security::NAMESPACE);
  for (uint32_t p : {23u, 2375u, 2376u, 6443u, 10250u, 10255u, 9100u, 9090u, 8443u, 15000u})
    ports->add_destination_ports(p);
  deny("istio-system", "deny-unauthenticated", istio::security::GLOBAL)
      ->add_not_principals()
      ->mutable_presence();
}

// `n` policies that apply to none of postgres' flows: NAMESPACE policies of other namespaces
// (10 per namespace, ALLOW and DENY, principals, CIDRs, ports) and WORKLOAD_SELECTOR policies
// named only by other workloads (`selector_every`-th filler workload names one).
void unrelated_policies(config::Config& c, int n) {
  for (int i = 0; i < n; i++) {
    std::string ns = "ns-" + std::to_string(i / 10);
    bool sel = i % 10 == 9;
    auto* a = add_policy(c, ns, "p-" + std::to_string(i),
                         sel ? istio::security::WORKLOAD_SELECTOR : istio::security::NAMESPACE,
                         i % 3 == 0 ? istio::security::DENY : istio::security::ALLOW);
    auto* m = a->add_rules()->add_clauses()->add_matches();
    m->add_principals()->set_exact("cluster.local/ns/" + ns + "/sa/client-" + std::to_string(i));
    m->add_namespaces()->set_prefix("team-");
    auto* ip = m->add_source_ips();
    ip->set_address(v4(0x0a800000u + (uint32_t(i) << 8)));
    ip->set_length(24);
    m->add_destination_ports(uint32_t(8000 + i % 1000));
  }
}

// Filler workloads in namespaces ns-*, each naming its namespace's selector policy.
void filler_workloads(config::Config& c, int n, int n_policies) {
  for (int i = 0; i < n; i++) {
    int pol_ns = n_policies > 0 ? i % std::max(1, n_policies / 10) : 0;
    std::string ns = "ns-" + std::to_string(pol_ns);
    auto* w = add_workload(c, "w-" + std::to_string(i), ns, "sa-" + std::to_string(i % 50),
                           0x0b000000u + uint32_t(i), 3, uint32_t(i));
    if (n_policies > 0) w->add_authorization_policies(ns + "/p-" + std::to_string(pol_ns * 10 + 9));
  }
}

struct Scenario {
  const char* name;
  int unrelated;
  bool four_more;
  int fillers;
};

double now_ms(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  long evals = 4000000;
  int reps = 5;
  int only = -1;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--evals") && i + 1 < argc) {
      evals = std::atol(argv[++i]);
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) {
      only = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: vanish-authz-bench [--evals N] [--reps R] [--only I]\n");
      return 2;
    }
  }
  const Scenario scenarios[] = {
      {"no policy (harness floor)", -1, false, 0},
      {"1 policy", 0, false, 0},
      {"1 applying + 9999 unrelated", 9999, false, 0},
      {"5 policies, all applying", 0, true, 0},
      {"5 applying + 9995 unrelated", 9995, true, 0},
      {"5 applying + 9995 unrelated, 100k workloads", 9995, true, 100000},
  };
  std::printf("authz::Engine::evaluate, destination data/postgres, requests: scenario cases 3/4/5 "
              "over IPv4+IPv6 (%ld evaluations, best of %d)\n\n",
              evals, reps);
  std::printf("%-45s %8s %8s %9s %9s %10s %12s\n", "config", "policies", "applying", "workloads",
              "build ms", "memory KiB", "ns/evaluate");
  int row = -1;
  for (const Scenario& s : scenarios) {
    if (++row != only && only >= 0) continue;
    config::Config c;
    reference_workloads(c);
    if (s.unrelated >= 0) allow_sleep(c);
    if (s.four_more) four_more_applying(c);
    unrelated_policies(c, std::max(0, s.unrelated));
    filler_workloads(c, s.fillers, std::max(0, s.unrelated));

    auto t0 = Clock::now();
    auto e = authz::Engine::build(c);
    double build_ms = now_ms(t0);

    uint32_t pg = e->workload_by_name("data/postgres");
    size_t applying = 0;
    for (auto b : {authz::Bucket::kDryRunDeny, authz::Bucket::kDeny, authz::Bucket::kAllow,
                   authz::Bucket::kDryRunAllow})
      applying += e->applicable(pg, b).size();

    std::vector<authz::Request> reqs;
    for (bool six : {false, true})
      for (const char* from : {"default/sleep", "untrusted/curl-untrusted"})
        for (uint16_t port : {uint16_t(5432), uint16_t(22)}) {
          uint32_t w = e->workload_by_name(from);
          authz::Request r;
          r.src_identity = e->identity_of_workload(w);
          for (const IpAddr& a : e->workload(w).addresses)
            if (a.is_v4() != six) r.src_ip = a;
          for (const IpAddr& a : e->workload(pg).addresses)
            if (a.is_v4() != six) r.dst_ip = a;
          r.dst_port = port;
          r.dst_workload = pg;
          reqs.push_back(r);
        }

    double best = 1e30;
    long allowed = 0;
    for (int rep = 0; rep < reps; rep++) {
      auto t1 = Clock::now();
      for (long i = 0; i < evals; i++) {
        authz::Verdict v = e->evaluate(reqs[size_t(i) & 7]);  // 8 requests
        allowed += v.allowed;
      }
      double ns = std::chrono::duration<double, std::nano>(Clock::now() - t1).count() / double(evals);
      best = std::min(best, ns);
    }
    // Sanity: with policies, 2 of the 8 requests (sleep -> 5432, v4 and v6) are allowed.
    long want = s.unrelated < 0 ? long(reps) * evals : long(reps) * (evals / 8) * 2;
    if (evals % 8 == 0 && allowed != want)
      std::fprintf(stderr, "unexpected verdicts: %ld allowed, want %ld\n", allowed, want);
    std::printf("%-45s %8d %8zu %9zu %9.1f %10zu %12.1f\n", s.name, c.authorizations_size(),
                applying, e->n_workloads(), build_ms, e->memory_bytes() / 1024, best);
  }
  return 0;
}
