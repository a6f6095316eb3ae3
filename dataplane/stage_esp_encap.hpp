// Stage EspEncap: turns an inner IP packet into a fabric packet and queues it on the fabric port.
//   strip Eth | prepend UDP(6081) + Geneve(identity option) | ESP-seal (transport mode, AES-GCM)
//   | prepend the worker's precomputed outer template (Eth | IPv4/IPv6 | UDP 4500) and patch
//   lengths and checksums.
// Contract: every packet is either queued to the fabric (encrypted) or freed and counted. A packet
// is never sent unencrypted: no SA or a failed seal drops it (fail closed).
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class EspEncap final {
 public:
  // Works on any array of packets (a Burst or the fragment overflow).
  void process(WorkerCtx& ctx, rte_mbuf** pkts, PacketInfo* info, uint16_t n);
};

}  // namespace vanish::dp
