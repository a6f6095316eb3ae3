// Shared set-up for the data-plane fuzz targets: EAL (no hugepages, unique file prefix), one
// mempool, node-a and node-b snapshots compiled from examples/, and a WorkerCtx + Pipeline each.
// Contract: env() initialises once per process; every packet handed to a pipeline is consumed by
// it (queued on a TX buffer, which flush() frees, or freed and counted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/pipeline.hpp"

namespace vanish::fuzz {

struct Node {
  std::unique_ptr<dp::Snapshot> snap;
  std::unique_ptr<dp::FlowTable> flows;
  dp::WorkerCounters ctr;
  dp::WorkerCtx ctx;
  dp::Pipeline pipe;
  void flush();  // frees what the pipeline queued for TX
};

struct Env {
  rte_mempool* pool = nullptr;
  Node a, b;
};

Env& env();

// Copies bytes into a fresh mbuf (nullptr if too large or no mbuf).
rte_mbuf* make_mbuf(const uint8_t* data, size_t len);

}  // namespace vanish::fuzz
