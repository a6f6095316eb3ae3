#include "dataplane/worker_mailbox.hpp"

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_pause.h>

#include <thread>

#include "dataplane/stage_authorize.hpp"
#include "dataplane/stage_classify.hpp"

namespace vanish::dp {

const char* mail_error_text(MailError e) {
  switch (e) {
    case MailError::kNone:
      return "ok";
    case MailError::kTableFull:
      return "the worker's flow table is full";
    case MailError::kNotFound:
      return "no such flow entry";
    case MailError::kNotService:
      return "the destination is not a service VIP:port";
    case MailError::kNotEndpoint:
      return "not an endpoint of that service VIP:port";
    case MailError::kBadRequest:
      return "bad request";
  }
  return "?";
}

// ---- control side ------------------------------------------------------------------------

WorkerMailbox::Status WorkerMailbox::post(const MailRequest& r) {
  uint32_t s = state_.load(std::memory_order_acquire);
  if (s == kDone) {  // a result nobody collected (it timed out): the slot is ours again
    state_.store(kIdle, std::memory_order_relaxed);
    s = kIdle;
  }
  if (s != kIdle) return Status::kBusy;
  req_ = r;
  res_.error = MailError::kNone;
  res_.total = 0;
  res_.flows.clear();
  res_.flows.reserve(std::max<uint32_t>(r.limit, 2));  // add/del return one entry
  res_.existed = false;
  res_.trace.clear();
  if (r.op == MailOp::kTraceFetch || r.op == MailOp::kTraceDisarm)
    res_.trace.reserve(TraceState::kMaxRecords);
  res_.trace_armed = res_.trace_truncated = false;
  res_.trace_packets = res_.trace_remaining = 0;
  res_.tsc = 0;
  res_.cursor = 0;
  state_.store(kPosted, std::memory_order_release);
  return Status::kOk;
}

WorkerMailbox::Status WorkerMailbox::wait(std::chrono::steady_clock::time_point deadline,
                                          const std::function<bool()>& alive) {
  for (unsigned spin = 0;; spin++) {
    if (state_.load(std::memory_order_acquire) == kDone) return Status::kOk;
    bool stopped = alive && !alive();
    if (stopped || std::chrono::steady_clock::now() >= deadline) {
      uint32_t exp = kPosted;  // withdraw it unless the worker took it meanwhile
      if (state_.compare_exchange_strong(exp, kIdle, std::memory_order_acq_rel))
        return stopped ? Status::kStopped : Status::kTimeout;
      if (exp == kDone) return Status::kOk;
      return stopped ? Status::kStopped : Status::kTimeout;  // kBusy: finishes in the background
    }
    if (spin < 64)
      rte_pause();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

WorkerMailbox::Status WorkerMailbox::call(const MailRequest& r, std::chrono::milliseconds timeout,
                                          const std::function<bool()>& alive) {
  if (alive && !alive()) return Status::kStopped;
  Status s = post(r);
  if (s != Status::kOk) return s;
  return wait(std::chrono::steady_clock::now() + timeout, alive);
}

// ---- worker side -------------------------------------------------------------------------

bool WorkerMailbox::take() {
  uint32_t exp = kPosted;
  if (!state_.compare_exchange_strong(exp, kBusy, std::memory_order_acquire)) return false;
  serving_ = true;
  return true;
}

void WorkerMailbox::complete() {
  serving_ = false;
  state_.store(kDone, std::memory_order_release);
}

namespace {

bool dump(const MailRequest& q, MailResult& r, WorkerCtx& ctx) {
  FlowTable& t = *ctx.flows;
  const uint32_t n = t.positions();
  const uint32_t end = std::min<uint64_t>(n, uint64_t(r.cursor) + WorkerMailbox::kScanBudget);
  for (uint32_t pos = r.cursor; pos < end; pos++) {
    FlowKey k;
    if (!t.key_at(pos, &k) || !q.match.matches(k)) continue;
    r.total++;
    if (r.flows.size() < q.limit && r.flows.size() < r.flows.capacity())
      r.flows.push_back(FlowRecord{k, t.entry(int32_t(pos))});
  }
  r.cursor = end;
  return end >= n;
}

void add_flow(const MailRequest& q, MailResult& r, WorkerCtx& ctx) {
  const Snapshot& s = *ctx.snap;
  FlowTable& t = *ctx.flows;
  const FlowKey& key = q.key;
  if ((key.zone != kZoneOutbound && key.zone != kZoneInbound) ||
      (q.has_endpoint && (key.zone != kZoneOutbound || q.deny))) {
    r.error = MailError::kBadRequest;
    return;
  }
  const VipEntry* vip = s.vip(key.dst_ip(), key.dport, key.proto);
  if (q.has_endpoint) {
    if (!vip) {
      r.error = MailError::kNotService;
      return;
    }
    bool found = false;
    for (uint32_t i = 0; i < vip->n_endpoints && !found; i++) {
      const ServiceEndpoint& ep = s.endpoints[vip->first_endpoint + i];
      found = ep.addr == q.endpoint && rte_cpu_to_be_16(ep.target_port) == q.endpoint_port_be;
    }
    if (!found) {
      r.error = MailError::kNotEndpoint;
      return;
    }
  }
  int32_t pos = t.lookup(key);
  r.existed = pos >= 0;
  if (pos < 0) {
    pos = t.insert(key);
    if (pos < 0) {
      r.error = MailError::kTableFull;
      return;
    }
    FlowEntry& e = t.reset(pos);
    e.created_tsc = ctx.now;
    e.entropy = uint16_t(0xC000 | (rte_hash_crc(&key, sizeof(FlowKey), 0) & 0x3fff));
    e.service = e.policy = kInvalidIdx;
    ctx.ctr->flows_created++;
  }
  FlowEntry& e = t.entry(pos);
  e.touch(ctx.now);
  const bool had = key.zone == kZoneOutbound && e.nat == NatKind::kDnat;
  const FlowKey old_ri = had ? FlowTable::reply_index_key(key, e) : FlowKey{};
  const uint32_t* sw = s.workload_by_ip.find(key.src_ip());
  const uint32_t* dw = s.workload_by_ip.find(key.dst_ip());
  if (q.deny) {
    e.generation = gen32(s.decision_generation);
    e.action = FlowAction::kDrop;
    e.drop_reason = uint8_t(DropReason::kStaticDeny);
    e.src_workload = sw ? *sw : kInvalidIdx;
    e.dst_workload = dw ? *dw : kInvalidIdx;
    e.identity = sw ? s.workloads[*sw].identity.value : 0;
    e.node = dw ? s.workloads[*dw].node.value : kInvalidIdx;
    e.nat = NatKind::kNone;
    e.is_reply = 0;
    e.service = vip ? vip->service : kInvalidIdx;
    e.policy = kInvalidIdx;
    e.authz_reason = 0;
  } else if (key.zone == kZoneOutbound) {
    if (q.has_endpoint) {  // classify() keeps the previous endpoint while it is one
      e.nat = NatKind::kDnat;
      e.nat_addr = q.endpoint;
      e.nat_port = q.endpoint_port_be;
    }
    OutboundClassify::classify(ctx, key, e);
  } else {  // inbound, as InboundAuthorize decides a new flow
    e.generation = gen32(s.decision_generation);
    e.src_workload = sw ? *sw : kInvalidIdx;
    e.dst_workload = dw ? *dw : kInvalidIdx;
    e.identity = sw ? s.workloads[*sw].identity.value : 0;
    e.node = sw ? s.workloads[*sw].node.value : kInvalidIdx;
    e.service = kInvalidIdx;
    if (!dw || !(s.workloads[*dw].node == s.self)) {
      e.action = FlowAction::kDrop;
      e.drop_reason = uint8_t(DropReason::kNotLocal);
      e.policy = kInvalidIdx;
      e.authz_reason = 0;
      e.nat = NatKind::kNone;
    } else {
      uint32_t id = sw ? s.workloads[*sw].identity_index : kInvalidIdx;
      bool ok = InboundAuthorize::decide(ctx, key, id, *dw, e);
      e.action = ok ? FlowAction::kDeliver : FlowAction::kDrop;
    }
  }
  const bool has = key.zone == kZoneOutbound && e.nat == NatKind::kDnat;
  const FlowKey new_ri = has ? FlowTable::reply_index_key(key, e) : FlowKey{};
  if (had && (!has || !FlowTable::key_eq(old_ri, new_ri))) t.erase(old_ri);
  if (has && !OutboundClassify::index_reply(ctx, key, e)) {
    e.action = FlowAction::kDrop;
    e.drop_reason = uint8_t(DropReason::kFlowTableFull);
  }
  e.is_static = 1;
  r.flows.push_back(FlowRecord{key, e});
}

void del_flow(const MailRequest& q, MailResult& r, WorkerCtx& ctx) {
  FlowTable& t = *ctx.flows;
  int32_t pos = t.lookup(q.key);
  if (pos < 0 || q.key.zone == kZoneReplyIndex) {
    r.error = MailError::kNotFound;
    return;
  }
  const FlowEntry e = t.entry(pos);
  r.existed = true;
  r.flows.push_back(FlowRecord{q.key, e});
  if (q.key.zone == kZoneOutbound && e.nat == NatKind::kDnat)
    t.erase(FlowTable::reply_index_key(q.key, e));
  t.erase(q.key);
}

void fetch_trace(MailResult& r, const WorkerCtx& ctx, const TraceState& trace) {
  for (const TraceRecord& rec : trace.records()) {
    if (r.trace.size() >= r.trace.capacity()) break;
    r.trace.push_back(rec);
  }
  r.trace_armed = ctx.trace != nullptr && trace.armed();
  r.trace_truncated = trace.truncated();
  r.trace_packets = trace.packets();
  r.trace_remaining = trace.remaining();
}

}  // namespace

bool execute_mail(const MailRequest& req, MailResult& res, WorkerCtx& ctx, TraceState& trace) {
  switch (req.op) {
    case MailOp::kDumpFlows:
      return dump(req, res, ctx);
    case MailOp::kAddFlow:
      add_flow(req, res, ctx);
      return true;
    case MailOp::kDelFlow:
      del_flow(req, res, ctx);
      return true;
    case MailOp::kTraceArm:
      trace.arm(req.count, req.match);
      ctx.trace = req.count ? &trace : nullptr;
      fetch_trace(res, ctx, trace);
      return true;
    case MailOp::kTraceDisarm:
      trace.disarm();
      ctx.trace = nullptr;
      fetch_trace(res, ctx, trace);
      return true;
    case MailOp::kTraceFetch:
      fetch_trace(res, ctx, trace);
      return true;
    case MailOp::kNone:
      break;
  }
  res.error = MailError::kBadRequest;
  return true;
}

void serve_mailbox(WorkerMailbox& mb, WorkerCtx& ctx, TraceState& trace) {
  if (!mb.serving() && !mb.take()) return;
  MailResult& r = mb.worker_result();
  r.tsc = rte_rdtsc();
  if (execute_mail(mb.worker_request(), r, ctx, trace)) mb.complete();
}

}  // namespace vanish::dp
