// Stage FabricIngress: first stage of the inbound pipeline (packets from the fabric port).
// Accepts only ESP-in-UDP (dport 4500) addressed to this node's fabric MAC and address, not
// fragmented; finds the inbound SA by SPI. A packet whose SA belongs to another worker (the
// replay window's single writer) is handed off to that worker's ring.
// With an egress block (Config.egress), an IP packet to this node's fabric MAC but not to its
// fabric address is kept with info.action = kEgress (a reply from outside the mesh, for
// EgressForward::receive); every other kept packet has info.action = kDrop.
// Contract: kept packets have info.sa/node/esp_off/esp_len set (or action kEgress) and belong to
// this worker; the rest are handed off, or freed and counted.
#pragma once

#include "dataplane/worker_ctx.hpp"

namespace vanish::dp {

class FabricIngress final {
 public:
  // from_handoff: packets another worker already counted and handed to us.
  void process(WorkerCtx& ctx, Burst& b, bool from_handoff);
};

}  // namespace vanish::dp
