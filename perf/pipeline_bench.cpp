// vanish-pipeline-bench: the data-plane pipeline alone, in one process, no ports.
// Measures ns/packet of Pipeline::outbound (node-a) and Pipeline::inbound (node-b) per frame size,
// next to the cost of what the harness itself does per packet (mbuf alloc + copy + free), so the
// pipeline's own cost can be read off. Deterministic input, so it also runs under
// `valgrind --tool=callgrind` for instruction-level profiles (--packets N for a fixed count).
//   VANISH_HUGEPAGES=1 (default here: hugepages when free) vanish-pipeline-bench [--sizes
//   64,256,1420] [--flows 64] [--seconds 1] [--packets N]
//                         [--dir out|in|both] [--v6]
#include <rte_cycles.h>
#include <rte_mbuf.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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
};

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
    for (uint16_t i = 0; i < e.a.ctx.to_fabric.n; i++) {
      auto* p = rte_pktmbuf_mtod(e.a.ctx.to_fabric.pkts[i], const uint8_t*);
      enc.emplace_back(p, p + rte_pktmbuf_data_len(e.a.ctx.to_fabric.pkts[i]));
    }
    free_tx(e.a.ctx);
  }
  return enc;
}

// Runs `body(burst)` over bursts of 32 copies of the templates until time/packet budget is used.
template <typename Body>
double run(const Args& a, rte_mempool* pool, const std::vector<std::vector<uint8_t>>& tmpl,
           long* done, Body&& body) {
  const uint64_t hz = rte_get_tsc_hz();
  uint64_t start = rte_rdtsc(), deadline = start + uint64_t(a.seconds * double(hz));
  long n = 0;
  size_t next = 0;
  dp::Burst b;
  while (a.packets ? n < a.packets : rte_rdtsc() < deadline) {
    if (rte_pktmbuf_alloc_bulk(pool, b.pkts, dp::kBurstSize) != 0) {
      std::fprintf(stderr, "pool exhausted\n");
      std::exit(1);
    }
    for (uint16_t i = 0; i < dp::kBurstSize; i++) {
      const auto& t = tmpl[next];
      next = next + 1 == tmpl.size() ? 0 : next + 1;
      std::memcpy(rte_pktmbuf_append(b.pkts[i], uint16_t(t.size())), t.data(), t.size());
    }
    b.n = dp::kBurstSize;
    body(b);
    n += dp::kBurstSize;
  }
  *done = n;
  return double(rte_rdtsc() - start) / double(hz) * 1e9 / double(n);
}

void report(const char* what, int size, double ns, double io_ns) {
  double mpps = 1e3 / ns;
  std::printf("%-9s %5d B  %8.1f ns/pkt  %6.2f Mpps  %6.2f Gbps(in)   pipeline alone %6.1f ns\n",
              what, size, ns, mpps, mpps * size * 8 / 1e3, ns - io_ns);
  std::printf(
      "{\"bench\":\"pipeline\",\"dir\":\"%s\",\"size\":%d,\"ns_per_pkt\":%.1f,\"mpps\":%.3f,"
      "\"harness_ns\":%.1f,\"pipeline_ns\":%.1f}\n",
      what, size, ns, mpps, io_ns, ns - io_ns);
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
    } else if (s == "--seconds") {
      a.seconds = std::atof(val().c_str());
    } else if (s == "--packets") {
      a.packets = std::atol(val().c_str());
    } else if (s == "--dir") {
      a.dir = val();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--sizes L] [--flows N] [--seconds S] [--packets N] "
                   "[--dir out|in|both]\n",
                   argv[0]);
      return 2;
    }
  }
  setenv("VANISH_HUGEPAGES", "1", 0);  // benchmarks prefer hugepages when free
  auto& e = testing::env();
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
      double ns = run(a, e.pool, plain, &n, [&](dp::Burst& b) {
        e.a.ctx.now = rte_rdtsc();
        e.a.pipe.outbound(e.a.ctx, b);
        free_tx(e.a.ctx);
      });
      if (e.a.ctr.encrypted == 0) {
        std::fprintf(stderr, "outbound encrypted nothing: drops %lu\n", e.a.ctr.total_drops());
        return 1;
      }
      report("outbound", size, ns, io);
    }
    if (a.dir != "out") {
      // Real fabric frames from node-a, made again (outside the timed loop) after each pass.
      std::vector<std::vector<uint8_t>> enc = encrypt_with_node_a(e, plain);
      uint64_t before = e.b.ctr.delivered;
      Args one = a;
      if (!a.packets) one.packets = long(enc.size());
      double total_ns = 0;
      long total = 0;
      const uint64_t hz = rte_get_tsc_hz();
      uint64_t end = rte_rdtsc() + uint64_t(a.seconds * double(hz));
      do {
        double ns = run(one, e.pool, enc, &n, [&](dp::Burst& b) {
          e.b.ctx.now = rte_rdtsc();
          e.b.pipe.inbound(e.b.ctx, b, false);
          free_tx(e.b.ctx);
        });
        total_ns += ns * double(n);
        total += n;
        if (a.packets) break;
        enc = encrypt_with_node_a(e, plain);  // fresh sequence numbers for the next pass
      } while (rte_rdtsc() < end);
      if (e.b.ctr.delivered - before != uint64_t(total)) {
        std::fprintf(stderr, "inbound delivered %lu of %ld (drops %lu)\n",
                     e.b.ctr.delivered - before, total, e.b.ctr.total_drops());
        return 1;
      }
      report("inbound", size, total_ns / double(total), io);
    }
  }
  return 0;
}
