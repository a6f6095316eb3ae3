// Fuzz target: any frame arriving on node-a's local port goes through the outbound pipeline;
// whatever node-a sends to the fabric is fed to node-b's inbound pipeline.
#include "tests/support/node_pair.hpp"
#include "tests/fuzz/fuzz_target.hpp"
#include "tests/fuzz/seeds.hpp"

using namespace vanish;

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  using namespace vanish::fuzz;
  return {v4_frame({10, 2, 0, 20}, 17, udp(8080, 32)),
          v4_frame({10, 2, 0, 30}, 6, tcp(5432)),
          v4_frame({10, 2, 0, 20}, 1, icmp_echo(8)),
          v4_frame({10, 1, 0, 1}, 1, icmp_echo(8)),
          v4_frame({10, 1, 0, 11}, 17, udp(53, 10)),
          v4_frame({10, 2, 0, 20}, 17, udp(8080, 1500), 64, 0),
          v4_frame({10, 2, 0, 20}, 17, udp(8080, 10), 1),
          v4_frame({10, 96, 0, 20}, 6, tcp(80)),       // service VIP: DNAT
          v4_frame({10, 96, 0, 20}, 17, udp(80, 16)),  // service VIP over UDP
          v4_frame({10, 1, 0, 11}, 6, tcp(8080)),      // hairpin: authorized here
          v6_frame(0x20, 17, udp(8080, 40)),
          v6_frame(0x20, 58, icmp_echo(128)),
          v6_frame(0x20, 44, {17, 0, 0, 1, 0, 0, 0, 7, 0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4}),
          arp_request({10, 1, 0, 1}),
          neighbour_solicit()};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& e = testing::env();
  // Mutations nearly always break the IPv4 header checksum, and the local port drops such frames
  // first: the harness fills it in, so the stages behind it are reached, except for inputs whose
  // last byte is odd (those arrive as they are and exercise the check).
  std::vector<uint8_t> frame(data, data + size);
  if (size && !(data[size - 1] & 1)) fuzz::fill_ipv4_checksum(frame);
  rte_mbuf* m = testing::make_mbuf(frame.data(), frame.size());
  if (!m) return 0;
  // Odd-length inputs also go through the paired path the worker takes with big tables: the
  // frame twice, as two bursts (Pipeline::outbound_pair), and node-b's input split in two.
  const bool pair = size & 1;
  dp::Burst b, b2;
  b.push(m);
  if (pair) {
    if (rte_mbuf* m2 = testing::make_mbuf(frame.data(), frame.size())) b2.push(m2);
  }
  e.a.ctx.now = rte_rdtsc();
  if (b2.n)
    e.a.pipe.outbound_pair(e.a.ctx, b, b2);
  else
    e.a.pipe.outbound(e.a.ctx, b);
  // Carry node-a's fabric output to node-b.
  dp::Burst in;
  for (uint16_t i = 0; i < e.a.ctx.to_fabric.n && in.n < dp::kBurstSize; i++) {
    in.push(e.a.ctx.to_fabric.pkts[i]);
    e.a.ctx.to_fabric.pkts[i] = nullptr;
  }
  for (uint16_t i = in.n; i < e.a.ctx.to_fabric.n; i++) rte_pktmbuf_free(e.a.ctx.to_fabric.pkts[i]);
  e.a.ctx.to_fabric.n = 0;
  e.a.flush();
  if (in.n) {
    e.b.ctx.now = rte_rdtsc();
    if (pair && in.n >= 2) {
      dp::Burst in2;
      const uint16_t half = in.n / 2;
      for (uint16_t i = half; i < in.n; i++) in2.push(in.pkts[i]);
      in.n = half;
      e.b.pipe.inbound_pair(e.b.ctx, in, in2, false);
    } else {
      e.b.pipe.inbound(e.b.ctx, in, false);
    }
    e.b.flush();
  }
  return 0;
}
