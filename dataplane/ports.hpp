// Port setup: one RX and one TX queue per worker on each of the two ports (local, fabric).
// The local port uses symmetric RSS (both directions of a connection hash alike) when the device
// supports RSS; virtual ports without RSS run one queue per worker as given.
#pragma once

#include <rte_mempool.h>

#include <cstdint>
#include <string>

namespace vanish::dp {

struct PortSetup {
  uint16_t port = 0;
  uint16_t queues = 1;
  uint16_t rx_desc = 1024, tx_desc = 1024;
  bool symmetric_rss = false;
  rte_mempool* pool = nullptr;
};

// Configures and starts the port. Returns false with a message in *err.
bool setup_port(const PortSetup& p, std::string* err);
void stop_port(uint16_t port);
std::string port_describe(uint16_t port);

}  // namespace vanish::dp
