// WorkerMailbox: how the control thread gets at a worker's private state (its flow table, its
// packet trace) without a lock: a single-slot mailbox per worker.
//
// Contract
// - One control thread posts (post/wait); the owning worker serves (wants_service/take/
//   complete, or serve_mailbox()) between bursts, so its flow table is only ever written by the
//   worker (the flow table has one writer, and a scan is not safe against it).
// - The worker's check is one relaxed atomic load (plus a plain bool while a long request is in
//   progress) per loop iteration, also when idle; it never blocks, never allocates: result
//   buffers are sized by the control thread before posting.
// - Slot states: kIdle -> (control) kPosted -> (worker take) kBusy -> (worker complete) kDone ->
//   (control, at its next post) kIdle. The control thread waits with a deadline; a request the
//   worker has not taken by then is withdrawn (kPosted -> kIdle), one it is serving finishes in
//   the background (the next post then reports busy until it is done). A worker that is not
//   running answers nothing: wait() returns kStopped as soon as `alive` says so, never hangs.
// - A dump scans at most kScanBudget key positions per worker loop iteration (a large table does
//   not stall the worker); it is a consistent view of no single instant (entries inserted or
//   aged during the scan may or may not appear).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "dataplane/flow_table.hpp"
#include "dataplane/trace.hpp"

namespace vanish::dp {

struct WorkerCtx;

enum class MailOp : uint8_t {
  kNone,
  kDumpFlows,
  kAddFlow,
  kDelFlow,
  kTraceArm,
  kTraceDisarm,
  kTraceFetch
};

// Why a request failed on the worker side.
enum class MailError : uint8_t {
  kNone,
  kTableFull,    // add: the flow table has no free entry
  kNotFound,     // del: no such entry
  kNotService,   // add --endpoint: the destination is not a service VIP:port
  kNotEndpoint,  // add --endpoint: not an endpoint of that VIP:port (family and port)
  kBadRequest,   // unknown op, reply-index zone, ...
};
const char* mail_error_text(MailError e);

struct FlowRecord {
  FlowKey key;
  FlowEntry entry;
};

// Written by the control thread before post(); read by the worker.
struct MailRequest {
  MailOp op = MailOp::kNone;
  FlowMatch match;            // dump, trace arm
  uint32_t limit = 0;         // dump: at most this many records (<= result.flows capacity)
  FlowKey key{};              // add, del (zone kZoneOutbound or kZoneInbound)
  bool deny = false;          // add: pin a drop (static_deny); else pin the current classification
  bool has_endpoint = false;  // add: pin this VIP endpoint (zone out)
  IpAddr endpoint;
  uint16_t endpoint_port_be = 0;
  uint32_t count = 0;  // trace arm
};

// Written by the worker; read by the control thread after completion.
struct MailResult {
  MailError error = MailError::kNone;
  uint64_t total = 0;              // dump: entries that matched (shown or not)
  std::vector<FlowRecord> flows;   // dump (capacity = limit); add/del: the entry
  bool existed = false;            // add: the key had an entry already
  std::vector<TraceRecord> trace;  // fetch (capacity TraceState::kMaxRecords)
  bool trace_armed = false, trace_truncated = false;
  uint32_t trace_packets = 0, trace_remaining = 0;
  uint64_t tsc = 0;  // the worker's TSC when it served the request
  // Worker-side progress of a dump (key position cursor).
  uint32_t cursor = 0;
};

class WorkerMailbox {
 public:
  enum State : uint32_t { kIdle, kPosted, kBusy, kDone };
  enum class Status { kOk, kBusy, kTimeout, kStopped };

  static constexpr uint32_t kScanBudget = 2048;

  // ---- control thread ----
  // Copies `r` into the slot, resets the result (buffers sized for the request) and posts it.
  // kBusy: the previous request is still being served (it timed out earlier); nothing posted.
  Status post(const MailRequest& r);
  // Waits until the worker completed the posted request, `deadline` passed or alive() is false
  // (alive may be empty). After kOk, result() holds the answer until the next post().
  Status wait(std::chrono::steady_clock::time_point deadline, const std::function<bool()>& alive);
  // post() + wait().
  Status call(const MailRequest& r, std::chrono::milliseconds timeout,
              const std::function<bool()>& alive);
  const MailResult& result() const { return res_; }

  // ---- owning worker ----
  bool wants_service() const {
    return serving_ || state_.load(std::memory_order_relaxed) == kPosted;
  }
  // Claims a posted request (false: none, or the control thread withdrew it).
  bool take();
  // Publishes the result.
  void complete();
  bool serving() const { return serving_; }
  const MailRequest& worker_request() const { return req_; }
  MailResult& worker_result() { return res_; }

  State state() const { return State(state_.load(std::memory_order_acquire)); }

 private:
  alignas(64) std::atomic<uint32_t> state_{kIdle};
  bool serving_ = false;  // worker only: a taken request spans loop iterations
  MailRequest req_;
  MailResult res_;
};

// Worker side: serves the pending request, if any, on ctx's flow table and `trace` (a dump may
// take several calls). Call between bursts, online for RCU.
void serve_mailbox(WorkerMailbox& mb, WorkerCtx& ctx, TraceState& trace);

// The work of one request, synchronously (serve_mailbox's body; fixtures call it directly).
// Returns false while a dump still has positions to scan (call again).
bool execute_mail(const MailRequest& req, MailResult& res, WorkerCtx& ctx, TraceState& trace);

}  // namespace vanish::dp
