// Snapshot: the compiled, immutable data-plane view of one config generation.
//
// Contract
// - Built by the control thread (ctl/compile.cpp) from the mesh config, then published to the
//   workers by one pointer swap (see dataplane/publisher.hpp). Workers only read it, except for
//   the explicitly mutable parts below, which have a single writer each.
// - Freed by the control thread after an rte_rcu_qsbr grace period, never while a worker may
//   still hold it.
// - Mutable parts: EspSa objects (an outbound SA is written only by the worker it belongs to; an
//   inbound SA only by its owner worker) and the NeighbourTable (relaxed atomics). SA objects are
//   shared_ptr-owned so a new generation can carry the same SA (and its sequence numbers and
//   replay window) forward.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "crypto/esp.hpp"
#include "dataplane/flat_map.hpp"
#include "dataplane/types.hpp"

namespace vanish::dp {

inline constexpr unsigned kMaxWorkers = 16;

// An appliance node of the mesh (this one or a peer).
struct NodeInfo {
  std::string name;
  std::string spiffe_id;          // spiffe://<td>/... of the appliance (peering issue)
  IpAddr fabric_v4, fabric_v6;    // unspecified when the node has no such address
  MacAddr fabric_mac;             // static next hop MAC for now (ARP/ND later)
  IpAddr gateway_v4, gateway_v6;  // local-port gateway addresses
  MacAddr local_mac;
  std::vector<IpPrefix> workload_prefixes;
};

// Hot per-workload facts, indexed by WorkloadIdx.
struct WorkloadInfo {
  NodeIdx node;
  IdentityId identity;
  uint32_t neighbour_slot = kInvalidIdx;  // local workloads only: slot in NeighbourTable
};

// Cold per-workload facts for vanishctl and logs.
struct WorkloadMeta {
  std::string uid, name, ns, service_account;
  std::vector<IpAddr> addresses;
};

// A workload identity. Its wire id is stable across nodes and config versions: the first 32 bits
// (big-endian) of SHA-256 of the principal, 0 excluded; a collision rejects the config.
struct IdentityMeta {
  IdentityId id;
  std::string principal;  // SPIFFE id without "spiffe://": "cluster.local/ns/default/sa/sleep"
  std::string ns, service_account;
};

// Outbound SAs towards one peer node: one per worker, so sequence numbers need no atomics.
struct PeerTx {
  bool reachable = false;   // an SA exists for every worker
  bool outer_ipv6 = false;  // fabric family used to reach the peer
  crypto::EspSa* sa[kMaxWorkers] = {};
  uint16_t udp_sport[kMaxWorkers] = {};  // outer UDP source port per SA (receive-side RSS entropy)
};

struct InboundSa {
  crypto::EspSa* sa = nullptr;
  NodeIdx peer;
  uint16_t owner_worker = 0;  // only this worker opens packets of this SA (replay window owner)
};

// MAC addresses of local workloads, learned from ARP/ND/IP traffic on the local port, or static.
// Entry = MAC in the low 48 bits, bit 63 = valid. Any worker may write (relaxed), any may read.
class NeighbourTable {
 public:
  explicit NeighbourTable(size_t slots)
      : n_(slots), e_(new std::atomic<uint64_t>[slots ? slots : 1]) {
    for (size_t i = 0; i < n_; i++) e_[i].store(0, std::memory_order_relaxed);
  }
  size_t size() const { return n_; }
  bool get(uint32_t slot, MacAddr* mac) const {
    if (slot >= n_) return false;
    uint64_t v = e_[slot].load(std::memory_order_relaxed);
    if (!(v >> 63)) return false;
    for (int i = 0; i < 6; i++) mac->b[i] = uint8_t(v >> (40 - 8 * i));
    return true;
  }
  // Returns true if the entry changed.
  bool learn(uint32_t slot, const MacAddr& mac) {
    if (slot >= n_) return false;
    uint64_t v = 1ull << 63;
    for (int i = 0; i < 6; i++) v |= uint64_t(mac.b[i]) << (40 - 8 * i);
    if (e_[slot].load(std::memory_order_relaxed) == v) return false;
    e_[slot].store(v, std::memory_order_relaxed);
    return true;
  }

 private:
  size_t n_;
  std::unique_ptr<std::atomic<uint64_t>[]> e_;
};

struct Snapshot {
  uint64_t generation = 0;
  NodeIdx self;
  unsigned n_workers = 1;
  uint32_t fabric_mtu = 1500;  // IP MTU of the fabric link
  bool outer_ipv6 = false;     // default outer family (per peer in PeerTx)

  std::vector<NodeInfo> nodes;          // indexed by NodeIdx
  std::vector<WorkloadInfo> workloads;  // indexed by WorkloadIdx
  std::vector<WorkloadMeta> workload_meta;
  std::vector<IdentityMeta> identities;
  FlatMap<uint32_t, uint32_t, IntHash> identity_by_id;   // wire id -> index in identities
  FlatMap<IpAddr, uint32_t, IpAddrHash> workload_by_ip;  // address -> WorkloadIdx

  std::vector<PeerTx> peer_tx;  // indexed by NodeIdx (self and unreachable: reachable=false)
  FlatMap<uint32_t, InboundSa, IntHash> sa_in;  // SPI -> inbound SA

  std::shared_ptr<NeighbourTable> neighbours;
  std::vector<std::shared_ptr<crypto::EspSa>> sa_owner;  // keeps every SA above alive

  const NodeInfo& self_node() const { return nodes[self.value]; }
  const WorkloadInfo* workload(const IpAddr& a) const {
    const uint32_t* i = workload_by_ip.find(a);
    return i ? &workloads[*i] : nullptr;
  }
};

}  // namespace vanish::dp
