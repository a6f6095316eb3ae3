// ControlService: what the control socket shows of the running data plane — the commands
// LiveConfig (ctl/live_config.hpp) does not serve itself: vanishctl workloads / services /
// policies / sas / peers / stats (ctl_views.cpp) and flows / flow add|del / trace
// (ctl_flows.cpp). Protocol: ctl/proto/vanish/ctl.proto.
//
// Contract
// - Control thread only. It reads the snapshot being served (pub->current(), safe: the control
//   thread is the one that frees snapshots) and the workers' counters (plain 64-bit loads,
//   possibly a little stale). It never blocks a worker and never takes a lock a worker takes;
//   whatever needs a worker's private state (its flow table, tracing) goes through that
//   worker's mailbox, which the worker serves between bursts.
// - Each handler returns false for a command that is not one of its own (the caller tries the
//   next), true after filling the response (ok, payload or error).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/publisher.hpp"
#include "dataplane/worker.hpp"
#include "vanish/ctl.pb.h"

namespace vanish::dp {

struct ControlContext {
  SnapshotPublisher* pub = nullptr;
  std::vector<Worker*> workers;
  uint16_t local_port = 0, fabric_port = 1;
  uint64_t start_tsc = 0;
};

// vanishctl workloads / services / policies / sas / peers / stats (ctl_views.cpp).
bool handle_views(ControlContext& c, const ctl::v1::Request& req, ctl::v1::Response* resp);
// Samples the workers' counters about once a second for the load figures of `vanishctl status`
// (Mpps, busy %); call every control-loop tick (ctl_views.cpp). Cheap: a TSC read per call.
void views_tick(ControlContext& c);
// vanishctl flows / flow add|del / trace (ctl_flows.cpp).
bool handle_flows(ControlContext& c, const ctl::v1::Request& req, ctl::v1::Response* resp);

}  // namespace vanish::dp
