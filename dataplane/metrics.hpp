// Metrics: the appliance's counters for Prometheus (text exposition, see metrics_http.hpp) and
// DPDK telemetry (/vanish/stats, /vanish/drops; dpdk-telemetry.py reads them).
//
// Series (README "Metrics"): per port (rte_eth_stats), per worker (every WorkerCounters field),
// per drop reason and worker, per peer node (SA reachability), config generation and reloads,
// and Istio's istio_tcp_{sent,received}_bytes_total / istio_tcp_connections_{opened,closed}_total
// from the workers' connection aggregates (conn_metrics.hpp).
//
// Contract
// - Control thread: label() (before a snapshot is published), render(), count_reload().
//   Nothing here blocks a worker: counters are read with plain/relaxed 64-bit loads.
// - Telemetry callbacks run on DPDK's telemetry thread; they read only the workers' counters and
//   port stats (never the snapshot) and are disabled by the destructor, which must run before
//   the workers are destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/publisher.hpp"
#include "dataplane/worker.hpp"

namespace vanish::dp {

struct MetricsSources {
  std::string node;
  std::vector<const Worker*> workers;
  uint16_t local_port = 0, fabric_port = 1;
  SnapshotPublisher* pub = nullptr;
  uint64_t start_tsc = 0;
};

class Metrics {
 public:
  explicit Metrics(MetricsSources src);
  // The workers, once they exist (before the first render()).
  void set_workers(std::vector<const Worker*> ws);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Sets s.label_epoch: the current epoch while every WorkloadIdx/ServiceIdx of the current epoch
  // still names the same workload/service in s (appending is fine), else a new one.
  void label(Snapshot& s);
  void count_reload(bool applied) { (applied ? reloads_ok_ : reloads_rejected_)++; }

  // Prometheus text exposition format 0.0.4.
  std::string render();
  // Appends more series to every render() (vanishd: peering).
  std::function<void(std::string&)> extra;

  // Registers /vanish/stats and /vanish/drops with DPDK telemetry (once per process).
  bool register_telemetry();

 private:
  struct Names {
    struct Workload {
      std::string name, ns, principal;  // principal: spiffe://... or empty
    };
    std::vector<Workload> workloads;
    struct Service {
      std::string hostname, name, ns;
    };
    std::vector<Service> services;
  };
  static Names names_of(const Snapshot& s);
  // The istio_tcp_* label string of a slot ("" for unknown epochs); cached per worker and slot.
  const std::string& conn_labels(unsigned worker, uint32_t slot);
  void resolve_all();

  MetricsSources src_;
  std::map<uint32_t, Names> epochs_;  // the last few label epochs
  uint32_t epoch_ = 0;
  bool first_ = true;
  uint64_t labelled_decisions_ = 0;  // decision_generation of the last snapshot labelled
  std::vector<std::vector<std::string>> conn_labels_;  // [worker][slot]: "" = not resolved yet
  uint64_t reloads_ok_ = 0, reloads_rejected_ = 0;
  std::atomic<uint64_t> generation_{0};

  friend struct MetricsTelemetry;
};

}  // namespace vanish::dp
