// NodePair: node-a and node-b of examples/ in one process, for fuzz targets and in-process
// benchmarks: EAL (no hugepages, unique file prefix), one mempool, both snapshots compiled from
// examples/, and a WorkerCtx + Pipeline each (worker 0, no ports).
// Contract: env() initialises once per process; every packet handed to a pipeline is consumed by
// it (queued on a TX buffer, which flush() frees, or freed and counted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/pipeline.hpp"

namespace vanish::testing {

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

// Initialises on first use (later calls return the same Env, whatever they ask for).
// `config_suffix` picks e.g. the "-v6fabric" example variants; `flow_capacity` sizes each node's
// flow table.
Env& env(const char* config_suffix = "", uint32_t flow_capacity = 4096);

// Copies bytes into a fresh mbuf (nullptr if too large or no mbuf).
rte_mbuf* make_mbuf(const uint8_t* data, size_t len);

}  // namespace vanish::testing
