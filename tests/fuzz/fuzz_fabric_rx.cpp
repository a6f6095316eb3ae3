// Fuzz target: any frame arriving on node-b's fabric port goes through the inbound pipeline.
// Seeds are real ESP packets made by node-a, so mutations reach SPI lookup, replay and ICV checks.
#include "tests/support/node_pair.hpp"
#include "tests/fuzz/fuzz_target.hpp"
#include "tests/fuzz/seeds.hpp"

using namespace vanish;

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  using namespace vanish::fuzz;
  auto& e = testing::env();
  std::vector<Bytes> frames = {v4_frame({10, 2, 0, 20}, 17, udp(8080, 32)),
                               v4_frame({10, 2, 0, 30}, 6, tcp(5432)),
                               v6_frame(0x20, 58, icmp_echo(128))};
  std::vector<Bytes> out;
  for (auto& f : frames) {
    dp::Burst b;
    b.push(testing::make_mbuf(f.data(), f.size()));
    e.a.pipe.outbound(e.a.ctx, b);
    for (uint16_t i = 0; i < e.a.ctx.to_fabric.n; i++) {
      rte_mbuf* m = e.a.ctx.to_fabric.pkts[i];
      auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
      out.emplace_back(p, p + rte_pktmbuf_data_len(m));
    }
    e.a.flush();
  }
  return out;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& e = testing::env();
  rte_mbuf* m = testing::make_mbuf(data, size);
  if (!m) return 0;
  dp::Burst b;
  b.push(m);
  e.b.ctx.now = rte_rdtsc();
  e.b.pipe.inbound(e.b.ctx, b, false);
  e.b.flush();
  return 0;
}
