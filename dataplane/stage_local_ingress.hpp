// Stage LocalIngress: first stage of the outbound pipeline (packets from the local port).
// Parses Ethernet / IPv4 / IPv6 / TCP / UDP / ICMP and fills PacketInfo + FlowKey.
// ARP, Neighbor Discovery and echo requests to the gateway are answered here and leave the burst.
// Contract: every packet either stays in the burst (a well-formed IP packet addressed to the
// gateway's MAC, trimmed to its IP length) or is consumed (replied to, or freed and counted).
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

// Parses the IP packet at l3_off of m into info (shared with the inbound path for inner packets).
// Returns false if the headers are malformed. Does not look at Ethernet.
bool parse_ip(const rte_mbuf* m, uint16_t l3_off, PacketInfo& info);

class LocalIngress final {
 public:
  void process(WorkerCtx& ctx, Burst& b);

 private:
  bool answer_echo(WorkerCtx& ctx, rte_mbuf* m, const PacketInfo& info);
};

}  // namespace vanish::dp
