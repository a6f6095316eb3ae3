// Neighbour handling on the local port: the appliance is the workloads' gateway.
// - Answers ARP requests and ICMPv6 Neighbor Solicitations for its gateway addresses.
// - Learns local workloads' MACs from ARP, NS/NA options and IP traffic (NeighbourTable).
// - Solicits a local workload's MAC when a delivery finds none (rate limited per slot).
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

// Consumes an ARP frame (Ethernet at offset 0): replies in place or frees it.
void handle_arp(WorkerCtx& ctx, rte_mbuf* m);

// Consumes an NS/NA (info describes the IPv6/ICMPv6 headers): answers or frees it.
void handle_ndp(WorkerCtx& ctx, rte_mbuf* m, const PacketInfo& info);

// Learns that local address `ip` lives at `mac` (no-op unless ip is a workload of this node).
void learn_neighbour(WorkerCtx& ctx, const IpAddr& ip, const MacAddr& mac);

// Sends an ARP request or NS for a local workload address.
void solicit_neighbour(WorkerCtx& ctx, const IpAddr& target);

}  // namespace vanish::dp
