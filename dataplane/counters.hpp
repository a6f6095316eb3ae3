// Per-worker counters. Contract: written only by the owning worker (plain increments, no atomics);
// read by the control thread, which tolerates torn-free but slightly stale 64-bit values.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/drop_reasons.hpp"

namespace vanish::dp {

struct alignas(64) WorkerCounters {
  uint64_t local_rx = 0, local_tx = 0, fabric_rx = 0, fabric_tx = 0;
  uint64_t local_rx_bytes = 0, local_tx_bytes = 0, fabric_rx_bytes = 0, fabric_tx_bytes = 0;
  uint64_t encrypted = 0, decrypted = 0, hairpinned = 0, delivered = 0;
  uint64_t flow_hits = 0, flow_misses = 0, flows_created = 0, flows_aged = 0,
           flows_reclassified = 0;
  uint64_t arp_replies = 0, nd_adverts = 0, solicitations_sent = 0, neighbours_learned = 0;
  uint64_t icmp_errors_sent = 0, fragments_made = 0, handoff_out = 0, handoff_in = 0;
  uint64_t busy_polls = 0, idle_polls = 0;
  uint64_t authz_checks = 0, authz_denied_flows = 0, reply_flows = 0, service_flows = 0;
  uint64_t egress_flows = 0, egress_tx = 0, egress_rx = 0, host_inspected = 0, host_allowed = 0,
           host_denied_flows = 0;
  uint64_t drops[kDropReasonCount] = {};

  void drop(DropReason r) { drops[unsigned(r)]++; }
  uint64_t total_drops() const {
    uint64_t t = 0;
    for (auto d : drops) t += d;
    return t;
  }
  void add(const WorkerCounters& o) {
    const uint64_t* src = reinterpret_cast<const uint64_t*>(&o);
    uint64_t* dst = reinterpret_cast<uint64_t*>(this);
    // Every member is a uint64_t, drops[] last; stop before the alignment padding.
    constexpr unsigned n = unsigned(offsetof(WorkerCounters, drops) / 8) + kDropReasonCount;
    for (unsigned i = 0; i < n; i++) dst[i] += src[i];
  }
};

}  // namespace vanish::dp
