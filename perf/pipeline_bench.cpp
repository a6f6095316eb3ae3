// vanish-pipeline-bench: the data-plane pipeline alone, in one process, no ports.
// Measures ns/packet of Pipeline::outbound (node-a) and Pipeline::inbound (node-b) per frame size,
// next to the cost of what the harness itself does per packet (mbuf alloc + copy + free), so the
// pipeline's own cost can be read off. Deterministic input, so it also runs under
// `valgrind --tool=callgrind` for instruction-level profiles (--packets N for a fixed count).
//   VANISH_HUGEPAGES=1 (default here: hugepages when free) vanish-pipeline-bench [--sizes
//   64,256,1420] [--flows 64] [--seconds 1] [--packets N]
//                         [--dir out|in|both] [--policies 1,10000] [--rounds R]
// --policies: node-b's config gets that many authorization policies, all applying to the
// destination (namespace default, DENY, never matching sleep), one config generation per count;
// inbound (where the verdict is made and cached per flow) is measured for each, the counts
// interleaved over --rounds rounds, and the ratio to the first count printed (issue target: 10k
// policies within 5 % of 1).
// --flow-counts 1000,1000000: per-core flow scaling (issue target: 1M flows within 10 % of 1k).
// Both directions (after one untimed pass that creates every flow); in each of --rounds rounds
// the counts alternate pass by pass, and the ratio to the first count is the median of the
// rounds' ratios. Flow f is sleep -> httpbin-1 UDP, source port
// 1024 + f % 60000, destination port 8080 + f / 60000, visited in order (each flow once per
// `count` packets, like vanish-perf); the ports are patched into a copy of one template, so the
// harness's own cost does not grow with the count. Inbound replays ESP that node-a sealed for
// the same flows (8192 packets per pass, sealed untimed between passes).
// --bursts 2 (default): flows mode hands the pipeline two bursts at a time, and it runs them as
// the worker does (Pipeline::outbound_pair / inbound_pair once the table holds pairs_pay()'s
// number of flows, else one by one); 1: one burst at a time; 3-4: outbound runs that long.
#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ctl/compile.hpp"
#include "ctl/config_loader.hpp"
#include "ctl/model.hpp"
#include "tests/fuzz/seeds.hpp"
#include "tests/support/node_pair.hpp"

using namespace vanish;

namespace {

struct Args {
  std::vector<int> sizes{64, 256, 1420};
  int flows = 64;
  double seconds = 1.0;
  long packets = 0;
  std::string dir = "both";
  std::vector<int> policies;  // empty: the example config as it is
  std::vector<int> flow_counts;
  int rounds = 3;
  int bursts = 2;  // bursts per pipeline call: 2 = Pipeline::outbound_pair / inbound_pair
};

// node-b's example config plus n DENY policies applying to namespace default (httpbin-1's) that
// never match sleep, compiled against the running snapshot (SAs and replay windows carry on).
std::unique_ptr<dp::Snapshot> node_b_with_policies(const dp::Snapshot& prev, int n,
                                                   uint64_t generation) {
  config::Config c;
  std::vector<std::string> errs;
  if (!ctl::load_config(std::string(VANISH_SOURCE_ROOT) + "/examples/node-b.textproto", &c, &errs))
    std::exit(1);
  for (int i = 0; i < n; i++) {
    auto* p = c.add_authorizations();
    p->set_name("deny-" + std::to_string(i));
    p->set_namespace_("default");
    p->set_scope(istio::security::NAMESPACE);
    p->set_action(istio::security::DENY);
    auto* m = p->add_rules()->add_clauses()->add_matches();
    m->add_principals()->set_exact("cluster.local/ns/other-" + std::to_string(i) + "/sa/x");
    m->add_destination_ports(uint32_t(10000 + i % 50000));
  }
  std::vector<ctl::ConfigError> cerrs;
  auto s = ctl::compile_snapshot(c, ctl::CompileOptions{1, generation}, &prev, &cerrs);
  if (!s) {
    for (auto& e : cerrs) std::fprintf(stderr, "%s\n", e.str().c_str());
    std::exit(1);
  }
  return s;
}

// sleep (10.1.0.10) -> httpbin-1 (10.2.0.20) UDP, frame of `size` bytes, source port 10000+flow.
std::vector<uint8_t> frame(int size, int flow) {
  int payload = std::max(0, size - 14 - 20 - 8);
  auto f = fuzz::v4_frame({10, 2, 0, 20}, 17, fuzz::udp(8080, size_t(payload)));
  uint16_t sport = uint16_t(10000 + flow);
  f[34] = uint8_t(sport >> 8);
  f[35] = uint8_t(sport);
  return f;
}

void free_tx(dp::WorkerCtx& c) {
  rte_pktmbuf_free_bulk(c.to_local.pkts, c.to_local.n);
  rte_pktmbuf_free_bulk(c.to_fabric.pkts, c.to_fabric.n);
  c.to_local.n = c.to_fabric.n = 0;
}

// Appends what node-a queued for the fabric to *enc (as bytes), then frees it.
void take_fabric(testing::Env& e, std::vector<std::vector<uint8_t>>* enc) {
  for (uint16_t i = 0; i < e.a.ctx.to_fabric.n; i++) {
    auto* p = rte_pktmbuf_mtod(e.a.ctx.to_fabric.pkts[i], const uint8_t*);
    enc->emplace_back(p, p + rte_pktmbuf_data_len(e.a.ctx.to_fabric.pkts[i]));
  }
  free_tx(e.a.ctx);
}

// 8192 real fabric frames made by node-a from the plaintext templates (sequence numbers go on
// increasing from call to call, so node-b's replay windows accept every batch).
std::vector<std::vector<uint8_t>> encrypt_with_node_a(
    testing::Env& e, const std::vector<std::vector<uint8_t>>& plain) {
  std::vector<std::vector<uint8_t>> enc;
  while (enc.size() < 8192) {
    dp::Burst b;
    for (int i = 0; i < 32; i++) {
      const auto& t = plain[(enc.size() + size_t(i)) % plain.size()];
      b.push(testing::make_mbuf(t.data(), t.size()));
    }
    e.a.pipe.outbound(e.a.ctx, b);
    take_fabric(e, &enc);
  }
  return enc;
}

// Fills b.pkts with kBurstSize empty mbufs (exits if the pool is empty).
void alloc_burst(rte_mempool* pool, dp::Burst& b) {
  if (rte_pktmbuf_alloc_bulk(pool, b.pkts, dp::kBurstSize) != 0) {
    std::fprintf(stderr, "pool exhausted\n");
    std::exit(1);
  }
}

// Runs `body(bursts, nb)` over `nb` bursts (1..4) of 32 copies of the templates at a time until
// the time/packet budget is used; returns ns/packet of the whole loop. body_ns (optional):
// ns/packet spent in body() alone, timed around each call (a TSC read per call), so cache effects
// of the harness's copies that show up inside body() are the body's, and what the harness does
// outside it is not.
template <typename Body>
double run_bursts(const Args& a, rte_mempool* pool, const std::vector<std::vector<uint8_t>>& tmpl,
                  long* done, unsigned nb, Body&& body, double* body_ns = nullptr) {
  const uint64_t hz = rte_get_tsc_hz();
  uint64_t start = rte_rdtsc(), deadline = start + uint64_t(a.seconds * double(hz));
  long n = 0;
  size_t next = 0;
  uint64_t in_body = 0;
  dp::Burst bs[4];
  while (a.packets ? n < a.packets : rte_rdtsc() < deadline) {
    for (unsigned k = 0; k < nb; k++) {
      dp::Burst& b = bs[k];
      alloc_burst(pool, b);
      for (uint16_t i = 0; i < dp::kBurstSize; i++) {
        const auto& t = tmpl[next];
        next = next + 1 == tmpl.size() ? 0 : next + 1;
        std::memcpy(rte_pktmbuf_append(b.pkts[i], uint16_t(t.size())), t.data(), t.size());
      }
      b.n = dp::kBurstSize;
    }
    const uint64_t t0 = rte_rdtsc();
    body(bs, nb);
    in_body += rte_rdtsc() - t0;
    n += long(nb) * dp::kBurstSize;
  }
  *done = n;
  if (body_ns) *body_ns = double(in_body) / double(hz) * 1e9 / double(n);
  return double(rte_rdtsc() - start) / double(hz) * 1e9 / double(n);
}

// run_bursts() one burst at a time through `body(burst)`.
template <typename Body>
double run(const Args& a, rte_mempool* pool, const std::vector<std::vector<uint8_t>>& tmpl,
           long* done, Body&& body, double* body_ns = nullptr) {
  return run_bursts(
      a, pool, tmpl, done, 1, [&](dp::Burst* b, unsigned) { body(*b); }, body_ns);
}

// ns: the whole loop per packet; io_ns: the harness alone (alloc + copy + free); pipe_ns: the
// pipeline call alone, timed around it (so "pipeline alone" is measured, not ns - io_ns).
void report(const char* what, int size, double ns, double io_ns, double pipe_ns) {
  double mpps = 1e3 / ns;
  std::printf(
      "%-9s %5d B  %8.1f ns/pkt  %6.2f Mpps  %6.2f Gbps(in)   pipeline alone %6.1f ns  "
      "(%.2f Mpps)  harness %6.1f ns\n",
      what, size, ns, mpps, mpps * size * 8 / 1e3, pipe_ns, 1e3 / pipe_ns, io_ns);
  std::printf(
      "{\"bench\":\"pipeline\",\"dir\":\"%s\",\"size\":%d,\"ns_per_pkt\":%.1f,\"mpps\":%.3f,"
      "\"harness_ns\":%.1f,\"pipeline_ns\":%.1f,\"pipeline_mpps\":%.3f}\n",
      what, size, ns, mpps, io_ns, pipe_ns, 1e3 / pipe_ns);
}

// Inbound ns/packet (cached verdicts) of one config generation: fresh ESP from node-a, timed.
double inbound_ns(const Args& a, testing::Env& e, const std::vector<std::vector<uint8_t>>& plain) {
  std::vector<std::vector<uint8_t>> enc = encrypt_with_node_a(e, plain);
  Args one = a;
  one.packets = long(enc.size());
  long n;
  uint64_t before = e.b.ctr.delivered;
  double ns = run(one, e.pool, enc, &n, [&](dp::Burst& b) {
    e.b.ctx.now = rte_rdtsc();
    e.b.pipe.inbound(e.b.ctx, b, false);
    free_tx(e.b.ctx);
  });
  if (e.b.ctr.delivered - before != uint64_t(n)) {
    std::fprintf(stderr, "inbound delivered %lu of %ld (drops %lu)\n", e.b.ctr.delivered - before,
                 n, e.b.ctr.total_drops());
    std::exit(1);
  }
  return ns;
}

int policy_mode(const Args& a, testing::Env& e) {
  std::vector<std::unique_ptr<dp::Snapshot>> keep;  // snapshots stay alive (one thread, no RCU)
  std::vector<std::unique_ptr<dp::Snapshot>> snaps;
  uint64_t gen = 100;
  for (int n : a.policies) snaps.push_back(node_b_with_policies(*e.b.ctx.snap, n, ++gen));
  for (int size : a.sizes) {
    std::vector<std::vector<uint8_t>> plain;
    for (int f = 0; f < a.flows; f++) plain.push_back(frame(size, f));
    std::vector<std::vector<double>> ns(a.policies.size());
    for (int r = 0; r < a.rounds; r++) {
      for (size_t k = 0; k < snaps.size(); k++) {
        e.b.ctx.snap = snaps[k].get();  // a new generation: cached verdicts are re-decided
        uint64_t checks = e.b.ctr.authz_checks;
        inbound_ns(a, e, plain);  // warm-up pass (re-decides every flow once)
        if (e.b.ctr.authz_checks - checks != uint64_t(a.flows)) {
          std::fprintf(stderr, "expected %d verdicts, made %lu\n", a.flows,
                       e.b.ctr.authz_checks - checks);
          return 1;
        }
        double sum = 0;
        const uint64_t hz = rte_get_tsc_hz();
        uint64_t end = rte_rdtsc() + uint64_t(a.seconds * double(hz));
        int passes = 0;
        do {
          sum += inbound_ns(a, e, plain);
          passes++;
        } while (rte_rdtsc() < end);
        ns[k].push_back(sum / passes);
        // Alternate generations so both counts see the same machine noise; bump the generation
        // so the next visit re-decides again.
        snaps[k]->generation = snaps[k]->decision_generation = ++gen;
      }
    }
    for (size_t k = 0; k < snaps.size(); k++) {
      std::vector<double> v = ns[k];
      std::sort(v.begin(), v.end());
      double med = v[v.size() / 2];
      std::sort(ns[0].begin(), ns[0].end());
      double base = ns[0][ns[0].size() / 2];
      std::printf("inbound %5d B  %6d policies  %8.1f ns/pkt  %6.2f Mpps  ratio to %d: %.3f\n",
                  size, a.policies[k], med, 1e3 / med, a.policies[0], base / med);
      std::printf(
          "{\"bench\":\"pipeline_policies\",\"size\":%d,\"policies\":%d,\"ns_per_pkt\":%.1f,"
          "\"mpps\":%.3f,\"ratio\":%.4f}\n",
          size, a.policies[k], med, 1e3 / med, base / med);
    }
  }
  e.b.ctx.snap = e.b.snap.get();
  keep = std::move(snaps);
  return 0;
}

// Flow f of the --flow-counts mode (see the header).
void set_flow(uint8_t* frame, uint32_t f) {
  const uint16_t sp = uint16_t(1024 + f % 60000), dp = uint16_t(8080 + f / 60000);
  frame[34] = uint8_t(sp >> 8);
  frame[35] = uint8_t(sp);
  frame[36] = uint8_t(dp >> 8);
  frame[37] = uint8_t(dp);
}

// `n` packets of flows *cursor, *cursor + 1, .. (mod count) through `body`, `nb` bursts (1..4)
// per call; ns/packet.
template <typename Body>
double run_flows(rte_mempool* pool, const std::vector<uint8_t>& tmpl, uint32_t count,
                 uint32_t* cursor, long n, unsigned nb, Body&& body) {
  dp::Burst bs[4];
  const uint64_t start = rte_rdtsc();
  for (long done = 0; done < n; done += long(nb) * dp::kBurstSize) {
    for (unsigned k = 0; k < nb; k++) {
      dp::Burst& b = bs[k];
      alloc_burst(pool, b);
      for (uint16_t i = 0; i < dp::kBurstSize; i++) {
        auto* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(b.pkts[i], uint16_t(tmpl.size())));
        std::memcpy(p, tmpl.data(), tmpl.size());
        set_flow(p, *cursor);
        *cursor = *cursor + 1 == count ? 0 : *cursor + 1;
      }
      b.n = dp::kBurstSize;
    }
    body(bs, nb);
  }
  return double(rte_rdtsc() - start) / double(rte_get_tsc_hz()) * 1e9 / double(n);
}

// 8192 fabric frames node-a sealed for flows *cursor.. (mod count).
std::vector<std::vector<uint8_t>> seal_flows(testing::Env& e, const std::vector<uint8_t>& tmpl,
                                             uint32_t count, uint32_t* cursor) {
  std::vector<std::vector<uint8_t>> enc;
  while (enc.size() < 8192) {
    run_flows(e.pool, tmpl, count, cursor, dp::kBurstSize, 1, [&](dp::Burst* b, unsigned) {
      e.a.ctx.now = rte_rdtsc();
      e.a.pipe.outbound(e.a.ctx, *b);
    });
    take_fabric(e, &enc);
  }
  return enc;
}

int flows_mode(const Args& a, testing::Env& e) {
  const size_t nc = a.flow_counts.size();
  for (int size : a.sizes) {
    const std::vector<uint8_t> tmpl = frame(size, 0);
    std::vector<uint32_t> out_cur(nc, 0), in_cur(nc, 0);
    std::vector<std::vector<double>> out_ns(nc), in_ns(nc);
    const uint64_t hz = rte_get_tsc_hz();
    auto outbound = [&](size_t k, long n) {
      const unsigned nb = unsigned(a.bursts);
      return run_flows(e.pool, tmpl, uint32_t(a.flow_counts[k]), &out_cur[k], n, nb,
                       [&](dp::Burst* b, unsigned m) {
                         e.a.ctx.now = rte_rdtsc();
                         // As the worker decides (Pipeline::pairs_pay).
                         if (m >= 2 && dp::Pipeline::pairs_pay(e.a.ctx)) {
                           dp::Burst* bp[4] = {&b[0], &b[1], &b[2], &b[3]};
                           e.a.pipe.outbound_run(e.a.ctx, bp, m);
                         } else {
                           for (unsigned j = 0; j < m; j++) e.a.pipe.outbound(e.a.ctx, b[j]);
                         }
                         free_tx(e.a.ctx);
                       });
    };
    // One inbound pass of flow count k: 8192 packets node-a sealed (untimed), replayed into
    // node-b; adds the timed ns and the packet count.
    auto inbound = [&](size_t k, double* ns_sum, long* pkts) {
      std::vector<std::vector<uint8_t>> enc =
          seal_flows(e, tmpl, uint32_t(a.flow_counts[k]), &in_cur[k]);
      Args one = a;
      one.packets = long(enc.size());
      long n;
      const uint64_t before = e.b.ctr.delivered;
      const double ns =
          run_bursts(one, e.pool, enc, &n, unsigned(a.bursts), [&](dp::Burst* b, unsigned m) {
            e.b.ctx.now = rte_rdtsc();
            // As the worker decides (Pipeline::pairs_pay); runs longer than two are outbound only.
            unsigned j = 0;
            for (; m >= 2 && j + 2 <= m && dp::Pipeline::pairs_pay(e.b.ctx); j += 2)
              e.b.pipe.inbound_pair(e.b.ctx, b[j], b[j + 1], false);
            for (; j < m; j++) e.b.pipe.inbound(e.b.ctx, b[j], false);
            free_tx(e.b.ctx);
          });
      if (e.b.ctr.delivered - before != uint64_t(n)) {
        std::fprintf(stderr, "inbound delivered %lu of %ld (drops %lu)\n",
                     e.b.ctr.delivered - before, n, e.b.ctr.total_drops());
        std::exit(1);
      }
      *ns_sum += ns * double(n);
      *pkts += n;
    };
    // Untimed: every flow created on both nodes.
    for (size_t k = 0; k < nc; k++) {
      long n = (long(a.flow_counts[k]) + dp::kBurstSize - 1) / dp::kBurstSize * dp::kBurstSize;
      outbound(k, n);
      double ns = 0;
      long pk = 0;
      for (long done = 0; done < n; done += 8192) inbound(k, &ns, &pk);
    }
    const uint64_t created = e.a.ctr.flows_created + e.b.ctr.flows_created;
    // Each round alternates the counts pass by pass (65536 packets outbound, 8192 inbound) for
    // about `seconds` per count, so a slow spell of the machine (they last seconds here) weighs
    // on every count alike instead of on whichever count was running.
    for (int r = 0; r < a.rounds; r++) {
      std::vector<double> o_sum(nc, 0), i_sum(nc, 0);
      std::vector<long> o_pk(nc, 0), i_pk(nc, 0);
      uint64_t end = rte_rdtsc() + uint64_t(a.seconds * double(nc) * double(hz));
      do {
        for (size_t k = 0; k < nc; k++) {
          o_sum[k] += outbound(k, 65536) * 65536.0;
          o_pk[k] += 65536;
        }
      } while (rte_rdtsc() < end);
      end = rte_rdtsc() + uint64_t(a.seconds * double(nc) * double(hz));
      do {
        for (size_t k = 0; k < nc; k++) inbound(k, &i_sum[k], &i_pk[k]);
      } while (rte_rdtsc() < end);
      for (size_t k = 0; k < nc; k++) {
        out_ns[k].push_back(o_sum[k] / double(o_pk[k]));
        in_ns[k].push_back(i_sum[k] / double(i_pk[k]));
      }
    }
    if (e.a.ctr.flows_created + e.b.ctr.flows_created != created) {
      std::fprintf(stderr, "%lu flows were created while timing: the tables did not hold them\n",
                   e.a.ctr.flows_created + e.b.ctr.flows_created - created);
      return 1;
    }
    auto med = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    for (int d = 0; d < 2; d++) {
      const char* dir = d == 0 ? "outbound" : "inbound";
      auto& ns = d == 0 ? out_ns : in_ns;
      for (size_t k = 0; k < nc; k++) {
        const double m = med(ns[k]);
        // Each round's counts ran interleaved: the ratio is the median of the rounds' ratios.
        std::vector<double> ratios;
        for (size_t r = 0; r < ns[k].size(); r++) ratios.push_back(ns[0][r] / ns[k][r]);
        const double ratio = med(ratios);
        std::printf("%-8s %5d B  %8d flows  %8.1f ns/pkt  %6.2f Mpps  ratio to %d: %.3f\n", dir,
                    size, a.flow_counts[k], m, 1e3 / m, a.flow_counts[0], ratio);
        std::printf(
            "{\"bench\":\"pipeline_flows\",\"dir\":\"%s\",\"size\":%d,\"flows\":%d,"
            "\"ns_per_pkt\":%.1f,\"mpps\":%.3f,\"ratio\":%.4f}\n",
            d == 0 ? "out" : "in", size, a.flow_counts[k], m, 1e3 / m, ratio);
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string s = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", s.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (s == "--sizes") {
      a.sizes.clear();
      std::string v = val();
      for (size_t p = 0; p < v.size();) {
        size_t c = v.find(',', p);
        a.sizes.push_back(std::atoi(v.substr(p, c - p).c_str()));
        p = c == std::string::npos ? v.size() : c + 1;
      }
    } else if (s == "--flows") {
      a.flows = std::max(1, std::atoi(val().c_str()));
      if (a.flows > 50000) {  // one UDP source port per flow, from 10000 up
        std::fprintf(stderr,
                     "--flows %d: at most 50000 here (one source port each); vanish-perf "
                     "(perf/lab) runs up to 16M flows\n",
                     a.flows);
        std::exit(2);
      }
    } else if (s == "--seconds") {
      a.seconds = std::atof(val().c_str());
    } else if (s == "--packets") {
      a.packets = std::atol(val().c_str());
    } else if (s == "--dir") {
      a.dir = val();
    } else if (s == "--policies") {
      std::string v = val();
      for (size_t p = 0; p < v.size();) {
        size_t c = v.find(',', p);
        a.policies.push_back(std::atoi(v.substr(p, c - p).c_str()));
        p = c == std::string::npos ? v.size() : c + 1;
      }
    } else if (s == "--flow-counts") {
      std::string v = val();
      for (size_t p = 0; p < v.size();) {
        size_t c = v.find(',', p);
        int n = std::atoi(v.substr(p, c - p).c_str());
        if (n < 1 || n > (1 << 22)) {
          std::fprintf(stderr, "--flow-counts: %d out of range 1..4194304\n", n);
          std::exit(2);
        }
        a.flow_counts.push_back(n);
        p = c == std::string::npos ? v.size() : c + 1;
      }
    } else if (s == "--rounds") {
      a.rounds = std::max(1, std::atoi(val().c_str()));
    } else if (s == "--bursts") {
      a.bursts = std::atoi(val().c_str());
      if (a.bursts < 1 || a.bursts > 4) {
        std::fprintf(stderr, "--bursts: 1 to 4\n");
        std::exit(2);
      }
    } else {
      std::fprintf(stderr,
                   "usage: %s [--sizes L] [--flows N] [--seconds S] [--packets N] "
                   "[--dir out|in|both] [--policies N,N..] [--flow-counts N,N..] [--rounds R] "
                   "[--bursts 1|2]\n",
                   argv[0]);
      return 2;
    }
  }
  setenv("VANISH_HUGEPAGES", "1", 0);  // benchmarks prefer hugepages when free
  uint32_t capacity = 4096;
  for (int c : a.flow_counts) {
    while (capacity < 2u * uint32_t(c)) capacity <<= 1;  // two nodes' worth of headroom
  }
  auto& e = testing::env("", capacity);
  if (!a.policies.empty()) return policy_mode(a, e);
  if (!a.flow_counts.empty()) return flows_mode(a, e);
  for (int size : a.sizes) {
    if (size < 60 || size > 1514) {
      std::fprintf(stderr, "size %d out of range 60..1514\n", size);
      return 2;
    }
    std::vector<std::vector<uint8_t>> plain;
    for (int f = 0; f < a.flows; f++) plain.push_back(frame(size, f));
    long n;
    // The harness alone: alloc + copy + free.
    double io = run(a, e.pool, plain, &n, [](dp::Burst& b) { rte_pktmbuf_free_bulk(b.pkts, b.n); });
    if (a.dir != "in") {
      double pipe_ns = 0;
      double ns = run(
          a, e.pool, plain, &n,
          [&](dp::Burst& b) {
            e.a.ctx.now = rte_rdtsc();
            e.a.pipe.outbound(e.a.ctx, b);
            free_tx(e.a.ctx);
          },
          &pipe_ns);
      if (e.a.ctr.encrypted == 0) {
        std::fprintf(stderr, "outbound encrypted nothing: drops %lu\n", e.a.ctr.total_drops());
        return 1;
      }
      report("outbound", size, ns, io, pipe_ns);
    }
    if (a.dir != "out") {
      // Real fabric frames from node-a, made again (outside the timed loop) after each pass.
      std::vector<std::vector<uint8_t>> enc = encrypt_with_node_a(e, plain);
      uint64_t before = e.b.ctr.delivered;
      Args one = a;
      if (!a.packets) one.packets = long(enc.size());
      // The harness's own cost here is copying from 8192 distinct frames (megabytes, mostly out
      // of L2), not from the few plaintext templates: measure it on the same frames.
      long n_io = 0;
      double io_in = 0;
      for (int rep = 0; rep < 4; rep++)
        io_in +=
            run(one, e.pool, enc, &n_io, [](dp::Burst& b) { rte_pktmbuf_free_bulk(b.pkts, b.n); });
      io_in /= 4;
      double total_ns = 0, total_pipe_ns = 0;
      long total = 0;
      const uint64_t hz = rte_get_tsc_hz();
      uint64_t end = rte_rdtsc() + uint64_t(a.seconds * double(hz));
      do {
        double pipe_ns = 0;
        double ns = run(
            one, e.pool, enc, &n,
            [&](dp::Burst& b) {
              e.b.ctx.now = rte_rdtsc();
              e.b.pipe.inbound(e.b.ctx, b, false);
              free_tx(e.b.ctx);
            },
            &pipe_ns);
        total_ns += ns * double(n);
        total_pipe_ns += pipe_ns * double(n);
        total += n;
        if (a.packets) break;
        enc = encrypt_with_node_a(e, plain);  // fresh sequence numbers for the next pass
      } while (rte_rdtsc() < end);
      if (e.b.ctr.delivered - before != uint64_t(total)) {
        std::fprintf(stderr, "inbound delivered %lu of %ld (drops %lu)\n",
                     e.b.ctr.delivered - before, total, e.b.ctr.total_drops());
        return 1;
      }
      report("inbound", size, total_ns / double(total), io_in, total_pipe_ns / double(total));
    }
  }
  return 0;
}
