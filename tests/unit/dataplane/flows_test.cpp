// The worker mailbox (control thread <-> worker, the worker simulated by a thread), and what it
// serves on a real pipeline (node-a): flow dumps, static flow entries, packet trace.
#include <gtest/gtest.h>
#include <rte_byteorder.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "dataplane/worker_mailbox.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace vanish::test {
namespace {

using namespace mesh;
using dp::DropReason;
using dp::MailOp;
using dp::MailRequest;
using dp::WorkerMailbox;
using Status = WorkerMailbox::Status;
using namespace std::chrono_literals;

// A worker loop: serves requests by answering total = limit * 2, optionally slowly.
class FakeWorker {
 public:
  explicit FakeWorker(WorkerMailbox& mb, std::chrono::milliseconds delay = 0ms)
      : mb_(mb), delay_(delay), t_([this] { loop(); }) {}
  ~FakeWorker() {
    stop_ = true;
    t_.join();
  }
  unsigned served() const { return served_.load(); }

 private:
  void loop() {
    while (!stop_.load(std::memory_order_relaxed)) {
      if (mb_.wants_service() && mb_.take()) {
        std::this_thread::sleep_for(delay_);
        mb_.worker_result().total = uint64_t(mb_.worker_request().limit) * 2;
        mb_.worker_result().flows.push_back(dp::FlowRecord{});
        served_++;
        mb_.complete();
      }
      std::this_thread::yield();
    }
  }
  WorkerMailbox& mb_;
  std::chrono::milliseconds delay_;
  std::atomic<bool> stop_{false};
  std::atomic<unsigned> served_{0};
  std::thread t_;
};

MailRequest dump_req(uint32_t limit) {
  MailRequest r;
  r.op = MailOp::kDumpFlows;
  r.limit = limit;
  return r;
}

TEST(WorkerMailbox, ServedByTheWorker) {
  WorkerMailbox mb;
  FakeWorker w(mb);
  for (uint32_t i = 1; i <= 1000; i++) {
    ASSERT_EQ(mb.call(dump_req(i), 2000ms, {}), Status::kOk) << i;
    ASSERT_EQ(mb.result().total, uint64_t(i) * 2);
    ASSERT_EQ(mb.result().flows.size(), 1u);
  }
  EXPECT_EQ(w.served(), 1000u);
}

TEST(WorkerMailbox, NoWorkerTimesOutAndWithdraws) {
  WorkerMailbox mb;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(mb.call(dump_req(1), 50ms, {}), Status::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(mb.state(), WorkerMailbox::kIdle);  // withdrawn: a later worker never sees it
  FakeWorker w(mb);
  EXPECT_EQ(mb.call(dump_req(3), 2000ms, {}), Status::kOk);
  EXPECT_EQ(mb.result().total, 6u);
  EXPECT_EQ(w.served(), 1u);
}

TEST(WorkerMailbox, StoppedWorkerAnswersAtOnce) {
  WorkerMailbox mb;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(mb.call(dump_req(1), 5000ms, [] { return false; }), Status::kStopped);
  std::atomic<bool> alive{true};
  std::thread killer([&] {
    std::this_thread::sleep_for(30ms);
    alive = false;
  });
  EXPECT_EQ(mb.call(dump_req(1), 5000ms, [&] { return alive.load(); }), Status::kStopped);
  killer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(WorkerMailbox, SlowWorkerFinishesInTheBackground) {
  WorkerMailbox mb;
  FakeWorker w(mb, 150ms);
  EXPECT_EQ(mb.call(dump_req(1), 20ms, {}), Status::kTimeout);  // taken, not yet done
  // While it is being served, the slot is not ours.
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(mb.post(dump_req(2)), Status::kBusy);
  // Once done, the stale result is discarded and the next request goes through.
  for (int i = 0; i < 100 && mb.state() != WorkerMailbox::kDone; i++)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(mb.call(dump_req(5), 2000ms, {}), Status::kOk);
  EXPECT_EQ(mb.result().total, 10u);
  EXPECT_EQ(w.served(), 2u);
}

// ---- on node-a's pipeline ------------------------------------------------------------------

dp::FlowKey udp_key(const Workload& s, const Workload& d, uint16_t sport, uint16_t dport) {
  dp::FlowKey k{};
  std::memcpy(k.src, s.v4.b.data(), 16);
  std::memcpy(k.dst, d.v4.b.data(), 16);
  k.sport = rte_cpu_to_be_16(sport);
  k.dport = rte_cpu_to_be_16(dport);
  k.proto = 17;
  k.zone = dp::kZoneOutbound;
  return k;
}

class Flows : public DpTest {
 protected:
  Bytes sleep_to_httpbin1(unsigned i) {
    return local_frame(*a, kSleep.mac, flow_packet(L4::kUdp, ip_hdr(kSleep, kHttpbin1, false), i));
  }
  // Runs a request to completion on the test's thread (as the worker would between bursts).
  dp::MailResult run(const MailRequest& q) {
    dp::MailResult r;
    r.flows.reserve(std::max<uint32_t>(q.limit, 2));
    r.trace.reserve(dp::TraceState::kMaxRecords);
    while (!dp::execute_mail(q, r, a->ctx, trace)) {
    }
    return r;
  }
  dp::TraceState trace;
};

TEST_F(Flows, DumpShowsTheFlowWithItsDecision) {
  a->outbound({sleep_to_httpbin1(0), sleep_to_httpbin1(1), sleep_to_httpbin1(2)});
  ASSERT_EQ(a->ctr.encrypted, 3u);
  MailRequest q = dump_req(10);
  dp::MailResult r = run(q);
  ASSERT_EQ(r.total, 1u);
  ASSERT_EQ(r.flows.size(), 1u);
  const dp::FlowKey want = udp_key(kSleep, kHttpbin1, 40000, 7777);
  EXPECT_TRUE(dp::FlowTable::key_eq(r.flows[0].key, want));
  EXPECT_EQ(r.flows[0].entry.action, dp::FlowAction::kEncrypt);
  EXPECT_EQ(r.flows[0].entry.packets, 3u);
  // A filter that matches nothing, one that matches by port.
  q.match.has_port = true;
  q.match.port_be = rte_cpu_to_be_16(1);
  EXPECT_EQ(run(q).total, 0u);
  q.match.port_be = rte_cpu_to_be_16(7777);
  EXPECT_EQ(run(q).total, 1u);
}

TEST_F(Flows, StaticDenyDropsUntilDeleted) {
  MailRequest q;
  q.op = MailOp::kAddFlow;
  q.key = udp_key(kSleep, kHttpbin1, 40000, 7777);
  q.deny = true;
  dp::MailResult r = run(q);
  ASSERT_EQ(r.error, dp::MailError::kNone);
  EXPECT_FALSE(r.existed);
  EXPECT_EQ(r.flows[0].entry.is_static, 1);
  Out o = a->outbound({sleep_to_httpbin1(0), sleep_to_httpbin1(1)});
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "static_deny=2");
  // Pinned across a new config generation.
  ASSERT_TRUE(a->reload(a->cfg));
  a->outbound(sleep_to_httpbin1(2));
  EXPECT_EQ(a->drop(DropReason::kStaticDeny), 3u);
  EXPECT_EQ(a->ctr.flows_reclassified, 0u);

  q.op = MailOp::kDelFlow;
  r = run(q);
  ASSERT_EQ(r.error, dp::MailError::kNone);
  EXPECT_EQ(r.flows[0].entry.packets, 3u);
  o = a->outbound(sleep_to_httpbin1(3));
  EXPECT_EQ(o.fabric.size(), 1u);
  EXPECT_EQ(run(q).error, dp::MailError::kNone);
  EXPECT_EQ(run(q).error, dp::MailError::kNotFound);
}

TEST_F(Flows, StaticAllowIsNotReclassified) {
  MailRequest q;
  q.op = MailOp::kAddFlow;
  q.key = udp_key(kSleep, kHttpbin1, 40000, 7777);
  dp::MailResult r = run(q);
  ASSERT_EQ(r.error, dp::MailError::kNone);
  EXPECT_EQ(r.flows[0].entry.action, dp::FlowAction::kEncrypt);
  ASSERT_TRUE(a->reload(a->cfg));
  Out o = a->outbound(sleep_to_httpbin1(0));
  EXPECT_EQ(o.fabric.size(), 1u);
  EXPECT_EQ(a->ctr.flows_reclassified, 0u);
  EXPECT_EQ(a->ctr.flow_hits, 1u);
  // An endpoint on a destination that is no VIP is refused.
  q.has_endpoint = true;
  q.endpoint = kHttpbin1.v4;
  q.endpoint_port_be = rte_cpu_to_be_16(7777);
  EXPECT_EQ(run(q).error, dp::MailError::kNotService);
}

TEST_F(Flows, TraceRecordsEveryStageOfAPacket) {
  dp::FlowMatch m;
  m.has_addr = true;
  m.addr = kHttpbin1.v4;
  trace.arm(1, m);
  a->ctx.trace = &trace;
  // A packet that does not match, then two that do: only the first of those is traced.
  Bytes other =
      local_frame(*a, kSleep.mac, flow_packet(L4::kUdp, ip_hdr(kSleep, kPostgres, false), 0));
  Out o = a->outbound({other, sleep_to_httpbin1(0), sleep_to_httpbin1(1)});
  ASSERT_EQ(o.fabric.size(), 3u);
  const auto& recs = trace.records();
  std::vector<std::string> got;
  for (const auto& r : recs) {
    std::string s =
        std::string(dp::trace_stage_name(r.stage)) + " " + dp::trace_verdict_name(r.verdict);
    if (r.verdict == dp::TraceVerdict::kNext) s += " " + std::string(dp::trace_stage_name(r.next));
    got.push_back(s);
    EXPECT_EQ(r.packet, 0u);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"local-ingress next outbound-classify",
                                           "outbound-classify next ttl-decrement",
                                           "ttl-decrement next fabric-mtu",
                                           "fabric-mtu next esp-encap", "esp-encap tx-fabric"}));
  ASSERT_GE(recs.size(), 2u);
  EXPECT_TRUE(recs[1].has_key);
  EXPECT_TRUE(dp::FlowTable::key_eq(recs[1].key, udp_key(kSleep, kHttpbin1, 40000, 7777)));
  EXPECT_EQ(recs[1].action, dp::FlowAction::kEncrypt);
  // Done: the next burst turns tracing off.
  a->outbound(sleep_to_httpbin1(2));
  EXPECT_EQ(a->ctx.trace, nullptr);
  EXPECT_EQ(recs.size(), 5u);
}

TEST_F(Flows, TraceRecordsADropWithItsReason) {
  trace.arm(2, dp::FlowMatch{});
  a->ctx.trace = &trace;
  // Forged source (httpbin-2 lives on node-b): classify drops it.
  a->outbound(
      local_frame(*a, kSleep.mac, udp(ip_hdr(kHttpbin2, kHttpbin1, false), 1, 2, pattern(8))));
  const auto& recs = trace.records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].stage, dp::TraceStage::kLocalIngress);
  EXPECT_EQ(recs[1].stage, dp::TraceStage::kClassify);
  EXPECT_EQ(recs[1].verdict, dp::TraceVerdict::kDrop);
  EXPECT_EQ(recs[1].drop_reason, uint8_t(DropReason::kUnknownSource));
  EXPECT_EQ(trace.remaining(), 1u);
}

TEST_F(Flows, NothingRecordedWhenOff) {
  trace.arm(5, dp::FlowMatch{});  // armed but not installed in the worker context
  a->outbound({sleep_to_httpbin1(0), sleep_to_httpbin1(1)});
  EXPECT_TRUE(trace.records().empty());
  EXPECT_EQ(a->ctx.trace, nullptr);
  // Through the mailbox: arm, then disarm; traffic after disarm is not recorded.
  MailRequest q;
  q.op = MailOp::kTraceArm;
  q.count = 1;
  run(q);
  EXPECT_EQ(a->ctx.trace, &trace);
  q.op = MailOp::kTraceDisarm;
  dp::MailResult r = run(q);
  EXPECT_FALSE(r.trace_armed);
  EXPECT_EQ(a->ctx.trace, nullptr);
  a->outbound(sleep_to_httpbin1(2));
  EXPECT_TRUE(trace.records().empty());
}

}  // namespace
}  // namespace vanish::test
