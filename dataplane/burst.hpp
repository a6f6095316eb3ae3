// Burst: the unit every stage processes. A fixed-size plain struct of parallel arrays
// (packets + per-packet facts), so stages run two-phase loops over it without allocation.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/flow_key.hpp"

namespace vanish::crypto {
class EspSa;
}

namespace vanish::dp {

inline constexpr uint16_t kBurstSize = 32;

// kDeliver: an inbound flow allowed to its local destination. kEgress: to a destination outside
// the mesh, sent unencrypted to the egress next hop on the fabric port (stage_egress.hpp).
enum class FlowAction : uint8_t { kDrop = 0, kEncrypt, kHairpin, kDeliver, kEgress };

// Facts one stage learns about a packet and a later stage uses.
struct PacketInfo {
  uint16_t l3_off;    // offset of the (inner) IP header in the mbuf data
  uint16_t l4_off;    // offset of the L4 header (0 for non-first fragments)
  uint16_t ip_len;    // IP total length (header included)
  uint8_t is_v6;      // IP version of the (inner) packet
  uint8_t l4_proto;   // TCP/UDP/ICMP/ICMPv6/...
  FlowAction action;  // outbound decision
  uint8_t is_fragment;
  uint16_t entropy;       // outbound: inner UDP source port for this flow (from the flow entry)
  uint32_t flow;          // flow entry index (outbound)
  uint32_t node;          // destination node (outbound), SA peer node (inbound)
  uint32_t dst_workload;  // WorkloadIdx of the destination, when known
  uint32_t identity;      // source identity id
  crypto::EspSa* sa;      // inbound SA (set by FabricIngress)
  uint16_t esp_off;       // inbound: offset of the ESP header
  uint16_t esp_len;       // inbound: ESP header .. ICV length
  FlowKey key;
};

// A flow-table lookup of a burst's keys spread over another burst's cipher work
// (WorkerCtx::begin_lookup / lookahead_step / lookup): hashes, buckets prefetched
// [0, fetched), matched [0, matched). Valid from begin_lookup() to lookup(), during which nothing
// compacts or refills the burst.
struct FlowLookup {
  bool started = false;
  uint16_t fetched = 0, matched = 0;
  uint32_t hash[kBurstSize];
  int32_t idx[kBurstSize];
};

struct Burst {
  uint16_t n = 0;
  rte_mbuf* pkts[kBurstSize];
  PacketInfo info[kBurstSize];
  FlowLookup lookup;

  void clear() { n = 0; }
  // Keeps packet i as the next survivor of a filtering pass (two-index compaction, i >= keep).
  void keep(uint16_t i, uint16_t& kept) {
    if (kept != i) {
      pkts[kept] = pkts[i];
      info[kept] = info[i];
    }
    kept++;
  }
  // Appends a packet; caller guarantees n < kBurstSize.
  PacketInfo& push(rte_mbuf* m) {
    pkts[n] = m;
    return info[n++];
  }
};

// Packets leaving a stage towards a port. Flushed by the worker after each burst.
struct TxBuffer {
  static constexpr uint16_t kCap = 256;
  uint16_t n = 0;
  rte_mbuf* pkts[kCap];
  bool full() const { return n >= kCap; }
};

}  // namespace vanish::dp
