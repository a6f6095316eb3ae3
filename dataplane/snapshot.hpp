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

namespace vanish::authz {
class Engine;
}

namespace vanish::dp {

class HostPolicy;  // dataplane/host_policy.hpp

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
  uint32_t identity_index = kInvalidIdx;  // index in Snapshot::identities (= authz identity)
  uint32_t waypoint = kInvalidIdx;        // WorkloadIdx of its waypoint (Workload.waypoint)
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

// A service VIP and port (Istio Service.addresses x Service.ports). Key of Snapshot::vips.
struct VipKey {
  IpAddr addr;
  uint16_t port = 0;  // service port, host order
  uint16_t pad = 0;
  friend bool operator==(const VipKey&, const VipKey&) = default;
};
struct VipKeyHash {
  size_t operator()(const VipKey& k) const {
    IpAddr a = k.addr;
    a.b[0] ^= uint8_t(k.port >> 8);  // v4-mapped and ULA v6 VIPs rarely use byte 0/1 fully
    a.b[1] ^= uint8_t(k.port);
    return IpAddrHash{}(a);
  }
};

// One endpoint of a VIP:port, in the VIP's address family. Endpoints of a VIP are contiguous in
// Snapshot::endpoints; cum_weight is the running sum of capacities (weighted random choice).
struct ServiceEndpoint {
  IpAddr addr;           // the endpoint workload's address of the VIP's family
  uint32_t workload;     // WorkloadIdx
  uint32_t cum_weight;   // sum of the capacities of this and the earlier endpoints
  uint16_t target_port;  // host order
};

// What a VIP:port resolves to. n_endpoints == 0 (no healthy endpoint of the family): drop.
struct VipEntry {
  uint32_t service;  // ServiceIdx (config order)
  uint32_t first_endpoint = 0, n_endpoints = 0;
  uint32_t total_weight = 0;
  uint32_t waypoint = kInvalidIdx;  // WorkloadIdx of the service's waypoint, if it names one
};

struct ServiceMeta {
  std::string name, ns, hostname;
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
  // The generation whose classification and authorization inputs this snapshot has: the config
  // and which peers are reachable. A republish of the running config that changed only SAs (a
  // rekey, a peer's new peering SAs) keeps the previous snapshot's value, so the flows decided
  // under it stay valid instead of all being re-decided on their next packet; anything else
  // (an applied config, a peer becoming reachable or unreachable) sets it to `generation`.
  // Flow entries carry gen32() of it (FlowEntry::generation). SAs themselves are never cached
  // in a flow: EspEncap and FabricIngress read them from the snapshot per packet.
  uint64_t decision_generation = 0;
  // Metrics (dataplane/metrics.hpp): changes only when a WorkloadIdx or ServiceIdx of an earlier
  // generation names another workload/service; set by the control thread before publishing.
  uint32_t label_epoch = 0;
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

  // Services: VIP:port -> endpoints (the VIP's family only; unhealthy/zero-capacity excluded).
  FlatMap<VipKey, VipEntry, VipKeyHash> vips;
  std::vector<ServiceEndpoint> endpoints;
  std::vector<ServiceMeta> service_meta;  // indexed by ServiceIdx
  // A workload that is some service's or workload's waypoint (WorkloadIdx -> true), so a
  // receiving node can tell "delivered to the waypoint" from "not local" (see EspDecap).
  std::vector<uint8_t> is_waypoint;
  bool has_waypoints = false;  // any workload or service names one (skips the inbound check)

  // Authorization (ztunnel semantics), evaluated once per new flow at the destination node.
  // Its workload indices are WorkloadIdx and its identity indices index `identities`.
  std::shared_ptr<const authz::Engine> authz;

  // Egress to destinations outside the mesh and its hostname rules (Config.egress); null: none
  // (such traffic is dropped as no_route).
  std::shared_ptr<const HostPolicy> egress;

  std::shared_ptr<NeighbourTable> neighbours;
  std::vector<std::shared_ptr<crypto::EspSa>> sa_owner;  // keeps every SA above alive

  const NodeInfo& self_node() const { return nodes[self.value]; }
  // The service VIP:port entry for a TCP/UDP destination (port in network order), or null.
  const VipEntry* vip(const IpAddr& dst, uint16_t dport_be, uint8_t proto) const {
    if (proto != 6 && proto != 17) return nullptr;
    return vips.find(VipKey{dst, uint16_t((dport_be >> 8) | (dport_be << 8)), 0});
  }
  // The waypoint (WorkloadIdx) traffic to this destination is steered to: the VIP's service's
  // waypoint, else the destination workload's; kInvalidIdx when none.
  uint32_t waypoint_of(const IpAddr& dst, uint16_t dport_be, uint8_t proto) const {
    if (const VipEntry* v = vip(dst, dport_be, proto)) return v->waypoint;
    const uint32_t* w = workload_by_ip.find(dst);
    return w ? workloads[*w].waypoint : kInvalidIdx;
  }
  const WorkloadInfo* workload(const IpAddr& a) const {
    const uint32_t* i = workload_by_ip.find(a);
    return i ? &workloads[*i] : nullptr;
  }
};

}  // namespace vanish::dp
