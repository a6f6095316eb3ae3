// vanish-hostname-bench: the cost of egress classification by host name (Config.egress,
// dataplane/stage_hostname.hpp) as the number of host patterns grows, all in one run so the
// figures are comparable and printed as ratios.
//   1. first packet of a new flow: node-a's whole outbound pipeline on a TCP segment carrying a
//      TLS ClientHello (SNI = one of the allowed hosts) from sleep to 203.0.113.10:443, one new
//      flow per packet (ns/new flow, mbuf alloc + copy included), and HostPolicy::decide() alone
//      (ns/decision);
//   2. steady state: established egress flows (ns/packet), and the encrypted mesh path (sleep ->
//      httpbin-1, UDP) with and without an egress block (issue target: unchanged).
// Pattern counts (--patterns, default 10,1000,10000) are interleaved over --rounds rounds; each
// figure is the median. Ratios are to the first count (issue target: 10k within 2x of 10).
//   vanish-hostname-bench [--patterns 10,1000,10000] [--rounds 5] [--flows 2048] [--size 1420]
#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ctl/compile.hpp"
#include "ctl/config_loader.hpp"
#include "dataplane/host_policy.hpp"
#include "tests/fuzz/hostname_seeds.hpp"
#include "tests/fuzz/seeds.hpp"
#include "tests/support/node_pair.hpp"

using namespace vanish;

namespace {

struct Args {
  std::vector<int> patterns{10, 1000, 10000};
  int rounds = 5;
  int flows = 2048;
  int size = 1420;
};

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') p++;
    if (*p) p++;
  }
  return v;
}

// The host every flow asks for: listed last, so no early exit favours small configs.
const char* kHost = "api.allowed-0.example.com";

// node-a plus an egress block with n patterns (half exact, half wildcards) over rules of 100.
std::unique_ptr<dp::Snapshot> node_a_with_patterns(const dp::Snapshot& prev, int n,
                                                   uint64_t generation, double* compile_ms) {
  config::Config c;
  std::vector<std::string> errs;
  if (!ctl::load_config(std::string(VANISH_SOURCE_ROOT) + "/examples/node-a.textproto", &c, &errs))
    std::exit(1);
  if (n >= 0) {
    auto* e = c.mutable_egress();
    e->set_mode(config::Egress::REGISTRY_ONLY);
    e->set_next_hop_mac("02:00:00:00:ee:01");
    config::HostRule* r = nullptr;
    for (int i = n - 1; i >= 0; i--) {
      if (!r || r->hosts_size() == 100) {
        r = e->add_rules();
        r->set_name("r" + std::to_string(e->rules_size()));
        r->set_namespace_("default");
        r->add_ports(443);
      }
      if (i == 0)
        r->add_hosts("*.allowed-0.example.com");
      else
        r->add_hosts((i % 2 ? "*.svc-" : "host-") + std::to_string(i) + ".example.com");
    }
  }
  std::vector<ctl::ConfigError> cerrs;
  uint64_t t0 = rte_rdtsc();
  auto s = ctl::compile_snapshot(c, ctl::CompileOptions{1, generation}, &prev, &cerrs);
  *compile_ms = double(rte_rdtsc() - t0) / double(rte_get_tsc_hz()) * 1e3;
  if (!s) {
    for (auto& e : cerrs) std::fprintf(stderr, "%s\n", e.str().c_str());
    std::exit(1);
  }
  return s;
}

std::vector<uint8_t> tcp_frame(uint16_t sport, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> tcp = {uint8_t(sport >> 8),
                              uint8_t(sport),
                              0x01,
                              0xbb,
                              0,
                              0,
                              0,
                              1,
                              0,
                              0,
                              0,
                              1,
                              0x50,
                              0x18,
                              0xff,
                              0xff,
                              0,
                              0,
                              0,
                              0};
  tcp.insert(tcp.end(), payload.begin(), payload.end());
  return fuzz::v4_frame({203, 0, 113, 10}, 6, tcp);
}

void free_tx(dp::WorkerCtx& c) {
  rte_pktmbuf_free_bulk(c.to_local.pkts, c.to_local.n);
  rte_pktmbuf_free_bulk(c.to_fabric.pkts, c.to_fabric.n);
  c.to_local.n = c.to_fabric.n = 0;
}

// ns per packet of node-a's outbound pipeline over the frames (bursts of 32).
double outbound_ns(testing::Env& e, const std::vector<std::vector<uint8_t>>& frames,
                   uint64_t* sent) {
  uint64_t total = 0;
  dp::Burst b;
  for (size_t at = 0; at < frames.size();) {
    uint16_t n = uint16_t(std::min<size_t>(dp::kBurstSize, frames.size() - at));
    if (rte_pktmbuf_alloc_bulk(e.pool, b.pkts, n) != 0) std::exit(1);
    for (uint16_t i = 0; i < n; i++) {
      const auto& f = frames[at + i];
      std::memcpy(rte_pktmbuf_append(b.pkts[i], uint16_t(f.size())), f.data(), f.size());
    }
    b.n = n;
    uint64_t t0 = rte_rdtsc();
    e.a.ctx.now = t0;
    e.a.pipe.outbound(e.a.ctx, b);
    total += rte_rdtsc() - t0;
    *sent += e.a.ctx.to_fabric.n;
    free_tx(e.a.ctx);
    at += n;
  }
  return double(total) / double(rte_get_tsc_hz()) * 1e9 / double(frames.size());
}

void clear_flows(testing::Env& e) {
  std::vector<dp::FlowKey> keys;
  e.a.flows->for_each([&](const dp::FlowKey& k, const dp::FlowEntry&) { keys.push_back(k); });
  for (const auto& k : keys) e.a.flows->erase(k);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string s = argv[i];
    if (s == "--patterns" && i + 1 < argc)
      a.patterns = parse_list(argv[++i]);
    else if (s == "--rounds" && i + 1 < argc)
      a.rounds = std::atoi(argv[++i]);
    else if (s == "--flows" && i + 1 < argc)
      a.flows = std::min(3000, std::atoi(argv[++i]));
    else if (s == "--size" && i + 1 < argc)
      a.size = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--patterns 10,1000,10000] [--rounds R] [--flows N] [--size B]\n",
                   argv[0]);
      return 2;
    }
  }
  testing::Env& e = testing::env();
  std::vector<std::unique_ptr<dp::Snapshot>> snaps;
  std::vector<double> compile_ms;
  uint64_t gen = 100;
  // snaps[0]: no egress block (the baseline mesh); then one per pattern count.
  std::vector<int> counts = {-1};
  counts.insert(counts.end(), a.patterns.begin(), a.patterns.end());
  for (int n : counts) {
    double ms;
    snaps.push_back(node_a_with_patterns(*e.a.ctx.snap, n, ++gen, &ms));
    compile_ms.push_back(ms);
  }
  const std::vector<uint8_t> hello = fuzz::client_hello(kHost);
  std::vector<std::vector<uint8_t>> first(size_t(a.flows)), steady;
  for (int f = 0; f < a.flows; f++) first[size_t(f)] = tcp_frame(uint16_t(20000 + f), hello);
  std::vector<uint8_t> data(size_t(std::max(0, a.size - 14 - 20 - 20)), 0x42);
  for (int f = 0; f < 64; f++) steady.push_back(tcp_frame(uint16_t(20000 + f), data));
  std::vector<std::vector<uint8_t>> mesh;
  for (int f = 0; f < 64; f++) {
    auto fr = fuzz::v4_frame({10, 2, 0, 20}, 17, fuzz::udp(8080, size_t(std::max(0, a.size - 42))));
    fr[34] = uint8_t((10000 + f) >> 8);
    fr[35] = uint8_t(10000 + f);
    mesh.push_back(fr);
  }
  std::vector<std::vector<uint8_t>> mesh_rep;  // 8192 packets per measurement
  for (int r = 0; r < 128; r++) mesh_rep.insert(mesh_rep.end(), mesh.begin(), mesh.end());
  std::vector<std::vector<uint8_t>> steady_rep;
  for (int r = 0; r < 128; r++) steady_rep.insert(steady_rep.end(), steady.begin(), steady.end());

  const size_t K = snaps.size();
  std::vector<std::vector<double>> first_ns(K), decide_ns(K), steady_ns(K), mesh_ns(K);
  for (int round = 0; round < a.rounds; round++) {
    for (size_t k = 0; k < K; k++) {
      e.a.ctx.snap = snaps[k].get();
      snaps[k]->generation = snaps[k]->decision_generation = ++gen;
      clear_flows(e);
      uint64_t sent = 0;
      // Mesh path (encrypt): warm, then timed.
      outbound_ns(e, mesh, &sent);
      sent = 0;
      mesh_ns[k].push_back(outbound_ns(e, mesh_rep, &sent));
      if (sent != mesh_rep.size()) {
        std::fprintf(stderr, "mesh: sent %lu of %zu\n", sent, mesh_rep.size());
        return 1;
      }
      if (k == 0) continue;  // no egress: nothing else to measure
      // First packets of new egress flows.
      clear_flows(e);
      uint64_t inspected = e.a.ctr.host_inspected;
      sent = 0;
      first_ns[k].push_back(outbound_ns(e, first, &sent));
      if (sent != first.size() || e.a.ctr.host_inspected - inspected != first.size()) {
        std::fprintf(stderr, "first packets: sent %lu inspected %lu of %zu (drops %s)\n", sent,
                     e.a.ctr.host_inspected - inspected, first.size(), "");
        return 1;
      }
      // Steady state on 64 of those flows (decided, cached).
      sent = 0;
      steady_ns[k].push_back(outbound_ns(e, steady_rep, &sent));
      if (sent != steady_rep.size()) return 1;
      // decide() alone.
      const dp::HostPolicy& p = *snaps[k]->egress;
      hs_scratch_t* scr = p.scratch(0);
      const int iters = 200000;
      uint64_t t0 = rte_rdtsc();
      unsigned allowed = 0;
      for (int i = 0; i < iters; i++) allowed += p.decide(kHost, 0, 443, scr).allow;
      decide_ns[k].push_back(double(rte_rdtsc() - t0) / double(rte_get_tsc_hz()) * 1e9 / iters);
      if (allowed != unsigned(iters)) return 1;
    }
  }
  std::printf("vanish-hostname-bench: %d rounds (medians), %d new flows per round, %d B steady\n",
              a.rounds, a.flows, a.size);
  std::printf("%-10s %12s %14s %12s %14s %14s %12s\n", "patterns", "compile ms", "first pkt ns",
              "ratio", "decide() ns", "ratio", "steady ns");
  for (size_t k = 1; k < K; k++) {
    double f = median(first_ns[k]), d = median(decide_ns[k]), s = median(steady_ns[k]);
    std::printf("%-10d %12.1f %14.1f %11.2fx %14.1f %13.2fx %12.1f\n", counts[k], compile_ms[k], f,
                f / median(first_ns[1]), d, d / median(decide_ns[1]), s);
    std::printf(
        "{\"bench\":\"hostname\",\"patterns\":%d,\"compile_ms\":%.1f,\"first_packet_ns\":%.1f,"
        "\"first_packet_ratio\":%.3f,\"decide_ns\":%.1f,\"decide_ratio\":%.3f,\"steady_ns\":%.1f}"
        "\n",
        counts[k], compile_ms[k], f, f / median(first_ns[1]), d, d / median(decide_ns[1]), s);
  }
  std::printf("mesh path (encrypt, %d B), ns/packet: no egress %.1f", a.size, median(mesh_ns[0]));
  for (size_t k = 1; k < K; k++)
    std::printf(", %d patterns %.1f (%.3fx)", counts[k], median(mesh_ns[k]),
                median(mesh_ns[k]) / median(mesh_ns[0]));
  std::printf("\n");
  return 0;
}
