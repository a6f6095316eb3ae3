// vanish-peering-scale: one appliance ("hub", the PeeringManager vanishd runs) peers with N
// simulated appliances (each a PeeringManager of its own, with its own certificate and listener
// on loopback), all driven from this thread; then the hub rekeys every peer at once.
//
//   vanish-peering-scale [--peers N] [--workers W] [--rounds R]
//
// Per phase it prints wall time, CPU time of the process, and per peer: CPU per peer covers both
// ends (hub and simulated peer), so one appliance's share is about half. "Installed" means the
// hub's SAs for the peer were listed by sas() and acknowledged by published() (the data plane's
// compile + publish is not included: vanishd coalesces it into one snapshot per control-loop
// tick; see perf/config_swap_bench.cpp for its cost). A first phase with one peer gives the
// per-handshake latency with nothing else going on.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ctl/dev_ca.hpp"
#include "ctl/peering/manager.hpp"

using namespace vanish::ctl;
using namespace vanish::ctl::peering;
using Clock = std::chrono::steady_clock;

namespace {

double cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Sim {
  std::unique_ptr<PeeringManager> m;
  void pump() {
    m->poll_once(0);
    if (m->dirty()) {
      m->sas();
      m->published();
    }
  }
};

std::string id_of(const std::string& node) {
  return "spiffe://cluster.local/ns/vanish-system/sa/" + node;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned n = 1000, workers = 2, rounds = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    unsigned v = unsigned(std::stoul(argv[i + 1]));
    if (a == "--peers")
      n = v;
    else if (a == "--workers")
      workers = v;
    else if (a == "--rounds")
      rounds = v;
  }
  // Descriptors: two sockets per peer plus files.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  char tmpl[] = "/tmp/vanish-peering-scale-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string err;
  CaOptions ca;
  if (!write_ca_dir(dir + "/ca", ca, &err)) {
    std::fprintf(stderr, "ca: %s\n", err.c_str());
    return 1;
  }
  auto settings_for = [&](const std::string& node) {
    IssueOptions io;
    io.spiffe_id = id_of(node);
    std::vector<std::string> w;
    std::string out = dir + "/" + node + "/";
    if (!write_node_files(dir + "/ca", io, out, &w, &err)) {
      std::fprintf(stderr, "issue %s: %s\n", node.c_str(), err.c_str());
      std::exit(1);
    }
    PeeringSettings s;
    s.cert_file = out + "cert.pem";
    s.key_file = out + "key.pem";
    s.bundle_file = out + "bundle.pem";
    s.listen_address = "127.0.0.1:0";
    s.trust_domain = "cluster.local";
    s.grace_ms = 500;
    s.handshake_timeout_ms = 30000;
    s.rekey_seconds = 0;
    return s;
  };
  std::printf("vanish-peering-scale: %u simulated peers, %u workers per appliance\n", n, workers);
  auto quiet = [](bool, const std::string&) {};

  // Simulated peers ("peer-NNNN" sort after "hub": the hub dials them all).
  std::vector<Sim> sims(n);
  std::vector<PeerSpec> hub_peers;
  auto t_setup = Clock::now();
  for (unsigned i = 0; i < n; i++) {
    char name[32];
    std::snprintf(name, sizeof name, "peer-%04u", i);
    sims[i].m = std::make_unique<PeeringManager>(name, workers, quiet);
    if (!sims[i].m->configure(settings_for(name), {{"hub", id_of("hub"), "127.0.0.1:1"}}, {},
                              &err)) {
      std::fprintf(stderr, "%s: %s\n", name, err.c_str());
      return 1;
    }
    hub_peers.push_back({name, id_of(name), "127.0.0.1:" + std::to_string(sims[i].m->port())});
  }
  std::printf("  set-up (certificates, listeners): %.2f s\n",
              std::chrono::duration<double>(Clock::now() - t_setup).count());

  Sim hub;
  hub.m = std::make_unique<PeeringManager>("hub", workers, quiet);
  PeeringSettings hs = settings_for("hub");

  auto reachable = [&](unsigned upto) { return hub.m->reachable_peers() >= upto; };
  auto run_until = [&](auto done, double limit_s) {
    auto end = Clock::now() + std::chrono::duration<double>(limit_s);
    while (!done() && Clock::now() < end) {
      hub.pump();
      for (auto& s : sims) s.pump();
    }
    return done();
  };

  // Phase 1: one peer alone (latency of one handshake + install).
  if (!hub.m->configure(hs, {hub_peers[0]}, {}, &err)) {
    std::fprintf(stderr, "hub: %s\n", err.c_str());
    return 1;
  }
  auto t0 = Clock::now();
  double c0 = cpu_s();
  if (!run_until([&] { return reachable(1); }, 10)) {
    std::fprintf(stderr, "one peer did not come up\n");
    return 1;
  }
  double one_wall = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  double one_cpu = (cpu_s() - c0) * 1e3;
  auto v = hub.m->view();
  std::printf(
      "  1 peer: handshake + SAs installed %.2f ms (hub's own view %.2f ms), CPU %.2f ms "
      "(both ends)\n",
      one_wall, v[0].handshake_ms, one_cpu);

  // Warm: five rekeys of that one peer (a fresh TLS handshake + install each).
  std::vector<double> one;
  for (int k = 0; k < 5; k++) {
    uint64_t before = hub.m->stats().rekeys;
    t0 = Clock::now();
    hub.m->rekey("");
    run_until([&] { return hub.m->stats().rekeys > before && !hub.m->dirty(); }, 10);
    one.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(one.begin(), one.end());
  std::printf(
      "  1 peer, warm (5 rekeys: new TLS handshake, SAs derived, installed, switched): "
      "median %.2f ms, min %.2f ms\n",
      one[2], one[0]);

  // Phase 2: all N at once (the hub's config names them all).
  if (!hub.m->configure(hs, hub_peers, {}, &err)) {
    std::fprintf(stderr, "hub: %s\n", err.c_str());
    return 1;
  }
  t0 = Clock::now();
  c0 = cpu_s();
  bool ok = run_until([&] { return reachable(n); }, 600);
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = cpu_s() - c0;
  std::printf(
      "  %u peers from cold: %s in %.2f s wall, CPU %.2f s = %.2f ms per peer (both ends)\n", n,
      ok ? "all reachable" : "NOT all reachable", wall, cpu, cpu * 1e3 / n);
  // Phase 3: rekey every peer at once.
  for (unsigned r = 0; r < rounds && ok; r++) {
    uint64_t before = hub.m->stats().rekeys;
    t0 = Clock::now();
    c0 = cpu_s();
    hub.m->rekey("");
    bool rk = run_until([&] { return hub.m->stats().rekeys >= before + n; }, 600);
    wall = std::chrono::duration<double>(Clock::now() - t0).count();
    cpu = cpu_s() - c0;
    std::printf(
        "  rekey of %u peers: %s in %.2f s wall, CPU %.2f s = %.2f ms per peer (both ends)\n", n,
        rk ? "done" : "NOT done", wall, cpu, cpu * 1e3 / n);
  }
  const PeeringStats& st = hub.m->stats();
  uint64_t refused = 0;
  for (uint64_t x : st.refusals) refused += x;
  std::printf("  hub: handshakes %llu, rekeys %llu, refusals %llu, protocol errors %llu\n",
              (unsigned long long)st.handshakes, (unsigned long long)st.rekeys,
              (unsigned long long)refused, (unsigned long long)st.protocol_errors);
  hub.m.reset();
  sims.clear();
  std::filesystem::remove_all(dir);
  return ok ? 0 : 1;
}
