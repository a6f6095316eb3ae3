// Compiling a validated config into an immutable data-plane Snapshot (dataplane/snapshot.hpp).
//
// Contract
// - compile_snapshot() validates the config first (validate_config) and builds nothing if it
//   fails: it returns nullptr and appends the reasons to *errors. It also returns nullptr for
//   bad options (n_workers outside 1..dp::kMaxWorkers) or an SA the crypto layer refuses.
// - Index order follows the config: nodes[i] is NodeIdx(i), workloads[i] is WorkloadIdx(i).
//   Local workloads (on this_node) get dense neighbour slots in config order.
// - Identities are the distinct workload principals in order of first use; their wire ids come
//   from identity_id_for().
// - Static SAs from this node to a peer give PeerTx: one outbound EspSa per worker w <
//   n_workers with SPI spi_base + w; reachable when every worker has one and the peer has a
//   fabric address of the outer family (fabric.ipv6). Static SAs to this node give sa_in
//   entries for SPIs spi_base .. spi_base + dp::kMaxWorkers - 1 (the sender may run more
//   workers than we do); SPI spi_base + k belongs to worker k % n_workers.
// - Dynamic SAs (mTLS peering, ctl/peering/manager.hpp) come from opts.dynamic_sas() when it is
//   set: per peer node, an outbound EspSa per worker (PeerTx, reachable when every worker has one
//   and the peer has a fabric address) and any number of inbound SAs (sa_in, with their owner
//   worker). The objects are shared, not copied: the snapshot keeps them alive (sa_owner) and
//   every generation that lists them uses the same sequence numbers and replay windows. A peer
//   without dynamic SAs is unreachable (fail closed). An inbound SPI that collides with another
//   is an error.
// - `previous` (may be null) is only read. From it the new snapshot carries forward
//   * every SA whose direction, peer, worker, SPI, cipher, key, salt, ESN and window are
//     unchanged (the same shared EspSa object, so sequence numbers and replay windows go on);
//   * MACs learned for local workload addresses that are still local workloads.
//   Static `neighbours` from the config are applied after, so they win.
// - Runs on the control thread; allocates; never touches packets.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctl/model.hpp"  // identity_id_for(), workload_principal()
#include "ctl/validate.hpp"
#include "dataplane/snapshot.hpp"
#include "vanish/config.pb.h"

namespace vanish::ctl {

// SAs keyed by peering handshakes (owned by the peering manager; see the contract above).
struct DynamicPeerSas {
  std::string node;                                          // Node.name of the peer
  std::shared_ptr<crypto::EspSa> outbound[dp::kMaxWorkers];  // by local worker; all or none
  uint16_t udp_sport[dp::kMaxWorkers] = {};
  struct Inbound {
    std::shared_ptr<crypto::EspSa> sa;
    uint16_t owner_worker = 0;
  };
  std::vector<Inbound> inbound;
};
struct DynamicSas {
  std::vector<DynamicPeerSas> peers;
};

struct CompileOptions {
  unsigned n_workers = 1;   // worker lcores, 1..dp::kMaxWorkers
  uint64_t generation = 0;  // copied into Snapshot::generation
  // Byte-exact test fixtures only: outbound ESP IVs equal the sequence number instead of being
  // masked with a random per-SA value (crypto::EspSaParams::deterministic_iv).
  bool deterministic_iv = false;
  // The current peering SAs (null or unset: none). Called once per compile.
  std::function<std::shared_ptr<const DynamicSas>()> dynamic_sas;
  // The config is the one `previous` was compiled from, and was validated then
  // (LiveConfig::republish after an SA change): it is not validated again, everything but the
  // SA tables is taken from `previous` (copied, or shared: authz engine, egress policy,
  // neighbour table), and the snapshot keeps previous->decision_generation if every peer's
  // reachability is unchanged too. False: a full compile, decision_generation = generation.
  bool same_config = false;
};

std::unique_ptr<dp::Snapshot> compile_snapshot(const config::Config& cfg,
                                               const CompileOptions& opts,
                                               const dp::Snapshot* previous,
                                               std::vector<ConfigError>* errors);

}  // namespace vanish::ctl
