// Mesh behaviour of the data plane (scenario.md cases 1-5): service VIP DNAT with weighted,
// sticky endpoint choice and reverse translation of replies; authorization at the destination
// node, cached per flow; replies exempt; new config generations re-decide cached flows;
// waypoint steering.
#include <rte_rcu_qsbr.h>

#include <map>
#include <set>

#include "dataplane/metrics.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace vanish::test {
namespace {

using namespace mesh;

const IpAddr kVip4 = [] {
  IpAddr a;
  IpAddr::parse("10.96.0.20", &a);
  return a;
}();
const IpAddr kVip6 = [] {
  IpAddr a;
  IpAddr::parse("fd00:96::20", &a);
  return a;
}();
IpAddr vip(bool v6) {
  return v6 ? kVip6 : kVip4;
}

// The inner packet node-a sent to node-b for one local frame (fails the test if none).
Bytes through_a(DpNode& a, const Bytes& frame) {
  Out o = a.outbound(frame);
  EXPECT_EQ(o.fabric.size(), 1u) << a.drops();
  if (o.fabric.size() != 1) return {};
  FabricPacket fp;
  EXPECT_TRUE(decode_fabric(o.fabric[0], kSaAB, &fp));
  return fp.inner;
}

uint16_t tcp_dport(const Bytes& ip) {
  size_t h = ip_hdr_len(ip);
  return uint16_t(ip[h + 2] << 8 | ip[h + 3]);
}
uint16_t tcp_sport(const Bytes& ip) {
  size_t h = ip_hdr_len(ip);
  return uint16_t(ip[h] << 8 | ip[h + 1]);
}

// ---- case 1: service VIP --------------------------------------------------------------------

TEST_F(DpTest, ServiceVipIsDnatedToBothEndpointsStickyPerConnection) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "v6" : "v4");
    std::map<IpAddr, unsigned, bool (*)(const IpAddr&, const IpAddr&)> seen(
        [](const IpAddr& x, const IpAddr& y) { return x.b < y.b; });
    for (uint16_t c = 0; c < 64; c++) {
      IpHdr h = ip_hdr(kSleep.addr(v6), vip(v6));
      Bytes syn = tcp(h, uint16_t(30000 + c), 80);
      Bytes inner = through_a(*a, local_frame(*a, kSleep.mac, syn));
      ASSERT_FALSE(inner.empty());
      IpAddr ep = ip_dst(inner);
      ASSERT_TRUE(ep == kHttpbin1.addr(v6) || ep == kHttpbin2.addr(v6)) << ep.str();
      EXPECT_EQ(tcp_dport(inner), 8080) << "target port";
      EXPECT_EQ(tcp_sport(inner), 30000 + c);
      EXPECT_EQ(ip_src(inner), kSleep.addr(v6));
      EXPECT_TRUE(ipv4_header_ok(inner));
      EXPECT_TRUE(l4_checksum_ok(inner)) << "incremental checksum update";
      seen[ep]++;
      // Later packets of the connection go to the same endpoint.
      for (int k = 0; k < 2; k++) {
        Bytes more = tcp(h, uint16_t(30000 + c), 80, kTcpAck, 2000 + k, 1, pattern(10));
        Bytes again = through_a(*a, local_frame(*a, kSleep.mac, more));
        EXPECT_EQ(ip_dst(again), ep) << "sticky";
        EXPECT_TRUE(l4_checksum_ok(again));
      }
    }
    EXPECT_EQ(seen.size(), 2u) << "both endpoints used over 64 connections";
    for (auto& [ep, n] : seen) EXPECT_GE(n, 10u) << ep.str() << " (capacity 1 each)";
  }
  EXPECT_EQ(a->ctr.service_flows, 128u);
  EXPECT_EQ(a->drops(), "");
}

TEST_F(DpTest, ServiceRepliesComeBackFromTheVip) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "v6" : "v4");
    Bytes syn = tcp(ip_hdr(kSleep.addr(v6), vip(v6)), 31000, 80);
    Out ao = a->outbound(local_frame(*a, kSleep.mac, syn));
    ASSERT_EQ(ao.fabric.size(), 1u);
    Out bo = b->inbound(ao.fabric);
    ASSERT_EQ(bo.local.size(), 1u) << b->drops();
    Bytes at_server = l3_of(bo.local[0]);
    IpAddr ep = ip_dst(at_server);
    const Workload& srv = ep == kHttpbin1.addr(v6) ? kHttpbin1 : kHttpbin2;
    EXPECT_EQ(tcp_dport(at_server), 8080);
    // The endpoint answers from its own address and port ...
    Bytes synack = tcp(ip_hdr(ep, kSleep.addr(v6)), 8080, 31000, kTcpSyn | kTcpAck, 5000, 1001);
    Out br = b->outbound(local_frame(*b, srv.mac, synack));
    ASSERT_EQ(br.fabric.size(), 1u) << b->drops();
    Out ar = a->inbound(br.fabric);
    ASSERT_EQ(ar.local.size(), 1u) << a->drops();
    // ... and sleep sees the VIP and service port, checksums intact.
    Bytes got = l3_of(ar.local[0]);
    Bytes want = tcp(ip_hdr(vip(v6), kSleep.addr(v6)), 80, 31000, kTcpSyn | kTcpAck, 5000, 1001);
    EXPECT_EQ(got, dec_ttl(want)) << "byte-exact: incremental = recomputed checksums";
    EXPECT_EQ(ip_src(got), vip(v6));
    EXPECT_EQ(tcp_sport(got), 80);
    EXPECT_EQ(tcp_dport(got), 31000);
    EXPECT_TRUE(ipv4_header_ok(got));
    EXPECT_TRUE(l4_checksum_ok(got));
  }
  EXPECT_EQ(a->ctr.reply_flows, 2u);
  EXPECT_EQ(a->ctr.authz_checks, 0u) << "replies need no authorization";
  EXPECT_EQ(a->drops(), "");
  EXPECT_EQ(b->drops(), "");
}

// An ICMP error about a DNATed packet quotes it as its sender sent it (to the VIP and the
// service port, with its own checksums): otherwise the sender's stack cannot match the error to
// its socket, and PMTU discovery through a service VIP black-holes large packets.
TEST_F(DpTest, IcmpErrorsAboutServiceTrafficQuoteTheVip) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "v6" : "v4");
    const size_t ip_hlen = v6 ? 40 : 20, quote_off = v6 ? 48 : 28;
    // Too big for the tunnel with DF (IPv6: always): fragmentation needed / packet too big.
    const size_t lim = dp::max_inner_len(false, 1500);
    Bytes big = tcp(ip_hdr(kSleep.addr(v6), vip(v6)), 30500, 80, kTcpAck, 1, 1,
                    pattern(lim + 1 - ip_hlen - 20));
    Out o = a->outbound(local_frame(*a, kSleep.mac, big));
    EXPECT_TRUE(o.fabric.empty());
    ASSERT_EQ(o.local.size(), 1u) << a->drops();
    Bytes r = l3_of(o.local[0]);
    EXPECT_EQ(r[ip_hlen], v6 ? 2 : 3);
    EXPECT_TRUE(l4_checksum_ok(r)) << "the ICMP checksum covers the restored quote";
    Bytes fwd = dec_ttl(big);
    ASSERT_GT(r.size(), quote_off + 40);
    EXPECT_EQ(Bytes(r.begin() + quote_off, r.end()),
              Bytes(fwd.begin(), fwd.begin() + (r.size() - quote_off)))
        << "the packet as sleep sent it (TTL - 1): VIP, port 80, its checksums";
    // TTL 1: time exceeded, quoting the packet as received.
    IpHdr h1 = ip_hdr(kSleep.addr(v6), vip(v6), 1);
    Bytes syn = tcp(h1, 30501, 80);
    Out t = a->outbound(local_frame(*a, kSleep.mac, syn));
    ASSERT_EQ(t.local.size(), 1u) << a->drops();
    Bytes te = l3_of(t.local[0]);
    EXPECT_TRUE(l4_checksum_ok(te));
    EXPECT_EQ(Bytes(te.begin() + quote_off, te.end()), syn);
  }
  EXPECT_EQ(a->ctr.icmp_errors_sent, 4u);
  EXPECT_EQ(a->ctr.service_flows, 4u) << "all four were DNATed before the errors";
}

TEST_F(DpTest, UdpToTheVipKeepsAZeroChecksumZeroAndFixesOthers) {
  Bytes u = udp(ip_hdr(kSleep.v4, kVip4), 5000, 80, pattern(20));
  Bytes inner = through_a(*a, local_frame(*a, kSleep.mac, u));
  EXPECT_TRUE(l4_checksum_ok(inner));
  Bytes z = u;
  z[20 + 6] = z[20 + 7] = 0;  // IPv4 UDP without checksum
  Bytes inner2 = through_a(*a, local_frame(*a, kSleep.mac, z));
  ASSERT_GE(inner2.size(), 28u);
  EXPECT_EQ(inner2[26], 0);
  EXPECT_EQ(inner2[27], 0);
  EXPECT_TRUE(ipv4_header_ok(inner2));
}

TEST_F(DpTest, VipOnAnUnknownPortOrWithoutEndpointsIsDropped) {
  Bytes p81 = tcp(ip_hdr(kSleep.v4, kVip4), 30000, 81);
  EXPECT_TRUE(a->outbound(local_frame(*a, kSleep.mac, p81)).fabric.empty());
  EXPECT_EQ(a->drops(), "no_route=1");
  // Both endpoints unhealthy: the VIP resolves to nothing.
  auto a2 = keep(DpNode::load("node-a.textproto", [](config::Config& c) {
    for (auto& w : *c.mutable_workloads())
      if (w.name().rfind("httpbin", 0) == 0) w.set_status(istio::workload::UNHEALTHY);
  }));
  Bytes syn = tcp(ip_hdr(kSleep.v4, kVip4), 30000, 80);
  EXPECT_TRUE(a2->outbound(local_frame(*a2, kSleep.mac, syn)).fabric.empty());
  EXPECT_EQ(a2->drops(), "no_endpoint=1");
}

TEST_F(DpTest, CapacityWeightsTheEndpointChoice) {
  auto a2 = keep(DpNode::load("node-a.textproto", [](config::Config& c) {
    for (auto& w : *c.mutable_workloads())
      if (w.name() == "httpbin-1") w.mutable_capacity()->set_value(3);
  }));
  unsigned to1 = 0, n = 400;
  for (unsigned c = 0; c < n; c++) {
    Bytes syn = tcp(ip_hdr(kSleep.v4, kVip4), uint16_t(20000 + c), 80);
    Bytes inner = through_a(*a2, local_frame(*a2, kSleep.mac, syn));
    if (ip_dst(inner) == kHttpbin1.v4) to1++;
  }
  // Expected 300 of 400 (3:1); 5 sigma of a binomial(400, 0.75) is ~43.
  EXPECT_GT(to1, 250u);
  EXPECT_LT(to1, 350u);
}

TEST_F(DpTest, RepliesAreTranslatedOnAnotherWorker) {
  // sleep's connection to the VIP is made on worker 0 (a's table); the reply arrives on worker 1,
  // whose own table knows nothing: it finds the flow in worker 0's table (conntrack.hpp).
  Bytes syn = tcp(ip_hdr(kSleep.v4, kVip4), 31500, 80);
  Out ao = a->outbound(local_frame(*a, kSleep.mac, syn));
  Out bo = b->inbound(ao.fabric);
  ASSERT_EQ(bo.local.size(), 1u);
  IpAddr ep = ip_dst(l3_of(bo.local[0]));
  const Workload& srv = ep == kHttpbin1.v4 ? kHttpbin1 : kHttpbin2;
  Bytes synack = tcp(ip_hdr(ep, kSleep.v4), 8080, 31500, kTcpSyn | kTcpAck, 5000, 1001);
  Out br = b->outbound(local_frame(*b, srv.mac, synack));
  ASSERT_EQ(br.fabric.size(), 1u);
  dp::FlowTable worker1("mesh_test_w1", 1024, 0);
  ASSERT_TRUE(worker1.ok());
  dp::FlowTable* tables[] = {a->flows.get(), &worker1};
  a->ctx.flows = &worker1;
  a->ctx.all_flows = tables;
  a->ctx.n_all_flows = 2;
  Out ar = a->inbound(br.fabric);
  a->ctx.flows = a->flows.get();
  a->ctx.all_flows = nullptr;
  a->ctx.n_all_flows = 0;
  ASSERT_EQ(ar.local.size(), 1u) << a->drops();
  Bytes want = tcp(ip_hdr(kVip4, kSleep.v4), 80, 31500, kTcpSyn | kTcpAck, 5000, 1001);
  EXPECT_EQ(l3_of(ar.local[0]), dec_ttl(want));
  EXPECT_EQ(worker1.size(), 1u) << "worker 1 caches the reply flow in its own table";
}

TEST_F(DpTest, AgingADnatFlowTakesItsReplyIndexAlong) {
  Bytes syn = tcp(ip_hdr(kSleep.v4, kVip4), 31600, 80);
  Bytes udp_flow = udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(4));
  a->outbound({local_frame(*a, kSleep.mac, syn), local_frame(*a, kSleep.mac, udp_flow)});
  EXPECT_EQ(a->flows->size(), 3u) << "two flows + the VIP flow's reply index";
  // A small budget walks a few positions per call; enough calls visit them all.
  unsigned removed = 0;
  for (int i = 0; i < 1000 && a->flows->size(); i++) removed += a->flows->age(~0ull >> 1, 0, 8);
  EXPECT_EQ(removed, 2u) << "reply-index keys are not counted or aged on their own";
  EXPECT_EQ(a->flows->size(), 0u);
}

TEST(FlowTableShared, RcuModeLooksUpFromReadersAndReusesPositionsAfterAGracePeriod) {
  vanish::test::TestQsbr qsbr(2, 0);
  ASSERT_TRUE(qsbr.ok());
  rte_rcu_qsbr* v = qsbr.get();
  {
    dp::FlowTable t("mesh_test_rcu", 64, 0, v);
    ASSERT_TRUE(t.ok());
    dp::FlowKey k{};
    k.proto = 17;
    std::vector<int32_t> pos;
    for (uint8_t i = 0; i < 64; i++) {
      k.src[15] = i;
      int32_t p = t.insert(k);
      ASSERT_GE(p, 0);
      pos.push_back(p);
      EXPECT_EQ(t.lookup_shared(k), p);
    }
    // Aging everything out defers the positions until the reader (thread 0) is quiescent.
    for (auto& p : pos) t.entry(p).touch(0);
    EXPECT_EQ(t.age(uint64_t(1) << 40, 10, 1000), 64u);
    k.src[15] = 3;
    EXPECT_EQ(t.lookup_shared(k), -1);
    k.src[15] = 100;
    EXPECT_EQ(t.insert(k), -1) << "no position is reused while a reader may still hold it";
    rte_rcu_qsbr_quiescent(v, 0);
    k.src[15] = 200;
    EXPECT_GE(t.insert(k), 0) << "freed positions come back after the grace period";
  }
}

// ---- cases 2-5: authorization at the destination --------------------------------------------

TEST_F(DpTest, UntrustedToTheServiceIsDeniedAtNodeB) {  // case 2
  for (bool v6 : {false, true}) {
    Bytes syn = tcp(ip_hdr(kCurl.addr(v6), vip(v6)), 32000, 80);
    Out ao = a->outbound(local_frame(*a, kCurl.mac, syn));
    ASSERT_EQ(ao.fabric.size(), 1u) << "node-a forwards; node-b decides";
    Out bo = b->inbound(ao.fabric);
    EXPECT_TRUE(bo.local.empty());
  }
  EXPECT_EQ(b->drops(), "authz_denied=2");
  EXPECT_EQ(b->ctr.authz_denied_flows, 2u);
}

TEST_F(DpTest, PostgresAdmitsOnlySleepOn5432) {  // cases 3, 4, 5
  struct Case {
    const Workload* src;
    uint16_t port;
    bool allowed;
  } cases[] = {{&kSleep, 5432, true}, {&kSleep, 22, false}, {&kCurl, 5432, false}};
  for (bool v6 : {false, true}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(c.src->name + ":" + std::to_string(c.port) + (v6 ? " v6" : " v4"));
      uint64_t denied = b->drop(dp::DropReason::kAuthzDenied);
      Bytes syn = tcp(ip_hdr(*c.src, kPostgres, v6), 33000, c.port);
      Out ao = a->outbound(local_frame(*a, c.src->mac, syn));
      ASSERT_EQ(ao.fabric.size(), 1u);
      Out bo = b->inbound(ao.fabric);
      EXPECT_EQ(bo.local.size(), c.allowed ? 1u : 0u);
      EXPECT_EQ(b->drop(dp::DropReason::kAuthzDenied), denied + (c.allowed ? 0 : 1));
      if (c.allowed) {
        EXPECT_EQ(l3_of(bo.local[0]), dec_ttl(syn));
      }
    }
  }
}

TEST_F(DpTest, TheVerdictIsComputedOncePerFlow) {
  std::vector<Bytes> frames;
  for (unsigned i = 0; i < 20; i++)
    frames.push_back(local_frame(
        *a, kSleep.mac,
        tcp(ip_hdr(kSleep, kPostgres, false), 34000, i % 2 ? 5432 : 22, kTcpAck, 100 + i)));
  Out ao = a->outbound(frames);
  ASSERT_EQ(ao.fabric.size(), 20u);
  Out bo = b->inbound(ao.fabric);
  EXPECT_EQ(bo.local.size(), 10u);
  EXPECT_EQ(b->ctr.authz_checks, 2u) << "two flows, twenty packets";
  EXPECT_EQ(b->drops(), "authz_denied=10");
}

TEST_F(DpTest, RepliesToALocalClientSkipThePoliciesOfItsNamespace) {
  // An ALLOW policy in namespace default admitting nobody: new flows to sleep are denied, but the
  // replies to sleep's own connection to postgres are not new flows.
  auto edit = [](config::Config& c) {
    auto* p = c.add_authorizations();
    p->set_name("allow-none");
    p->set_namespace_("default");
    p->set_scope(istio::security::NAMESPACE);
    p->set_action(istio::security::ALLOW);
    p->add_rules()->add_clauses()->add_matches()->add_principals()->set_exact("nobody");
  };
  auto a2 = keep(DpNode::load("node-a.textproto", edit));
  auto b2 = keep(DpNode::load("node-b.textproto", edit));
  Bytes syn = tcp(ip_hdr(kSleep, kPostgres, false), 35000, 5432);
  Out ao = a2->outbound(local_frame(*a2, kSleep.mac, syn));
  ASSERT_EQ(b2->inbound(ao.fabric).local.size(), 1u);
  Bytes synack = tcp(ip_hdr(kPostgres, kSleep, false), 5432, 35000, kTcpSyn | kTcpAck);
  Out br = b2->outbound(local_frame(*b2, kPostgres.mac, synack));
  EXPECT_EQ(a2->inbound(br.fabric).local.size(), 1u) << a2->drops();
  // A connection postgres opens towards sleep is a new flow: denied by default/allow-none.
  Bytes open = tcp(ip_hdr(kPostgres, kSleep, false), 36000, 8080);
  Out br2 = b2->outbound(local_frame(*b2, kPostgres.mac, open));
  EXPECT_TRUE(a2->inbound(br2.fabric).local.empty());
  EXPECT_EQ(a2->drops(), "authz_denied=1");
  EXPECT_EQ(a2->ctr.reply_flows, 1u);
}

// ---- live updates ---------------------------------------------------------------------------

TEST_F(DpTest, ANewGenerationRedecidesCachedFlows) {
  auto pkt = [&](unsigned i) {
    return local_frame(*a, kSleep.mac,
                       udp(ip_hdr(kSleep, kHttpbin1, false), 40000, 7777, pattern(8, uint8_t(i))));
  };
  ASSERT_EQ(b->inbound(a->outbound(pkt(0)).fabric).local.size(), 1u);
  // Generation 2 denies sleep -> namespace default on node-b.
  config::Config deny = b->cfg;
  auto* p = deny.add_authorizations();
  p->set_name("deny-sleep");
  p->set_namespace_("default");
  p->set_scope(istio::security::NAMESPACE);
  p->set_action(istio::security::DENY);
  p->add_rules()->add_clauses()->add_matches()->add_principals()->set_exact(
      "cluster.local/ns/default/sa/sleep");
  config::Config allow = b->cfg;
  ASSERT_TRUE(b->reload(deny));
  EXPECT_TRUE(b->inbound(a->outbound(pkt(1)).fabric).local.empty());
  EXPECT_EQ(b->drops(), "authz_denied=1");
  // Generation 3 lifts it again: the same flow flows.
  ASSERT_TRUE(b->reload(allow));
  EXPECT_EQ(b->inbound(a->outbound(pkt(2)).fabric).local.size(), 1u);
  EXPECT_EQ(b->ctr.flows_reclassified, 2u);
  EXPECT_EQ(b->ctr.flows_created, 1u);
}

// Metrics labels (the istio_tcp_* names): an SA-only republish keeps the label epoch (and skips
// rebuilding the names); a config that renames a workload starts a new epoch, which its own
// republish and a re-apply of the same names keep.
TEST_F(DpTest, MetricsLabelEpochsFollowNamesNotRepublishes) {
  dp::Metrics m(dp::MetricsSources{});
  m.label(*a->snap);
  const uint32_t e0 = a->snap->label_epoch;
  ASSERT_TRUE(a->republish());
  m.label(*a->snap);
  EXPECT_EQ(a->snap->label_epoch, e0);
  config::Config next = a->cfg;
  for (auto& w : *next.mutable_workloads())
    if (w.name() == "sleep") w.set_name("sleep-2");
  ASSERT_TRUE(a->reload(next));
  m.label(*a->snap);
  EXPECT_EQ(a->snap->label_epoch, e0 + 1);
  ASSERT_TRUE(a->republish());
  m.label(*a->snap);
  EXPECT_EQ(a->snap->label_epoch, e0 + 1);
  ASSERT_TRUE(a->reload(a->cfg));  // a new decision generation, the same names
  m.label(*a->snap);
  EXPECT_EQ(a->snap->label_epoch, e0 + 1);
}

// A republish of the running config after an SA change (a rekey) is a new generation but not
// a new decision generation: cached verdicts on both nodes stay, nothing is re-decided. An applied
// config still re-decides every flow.
TEST_F(DpTest, AnSaOnlyRepublishKeepsCachedVerdicts) {
  auto pkt = [&](unsigned i) {
    return local_frame(*a, kSleep.mac,
                       udp(ip_hdr(kSleep, kHttpbin1, false), 40000, 7777, pattern(8, uint8_t(i))));
  };
  ASSERT_EQ(b->inbound(a->outbound(pkt(0)).fabric).local.size(), 1u);
  const uint64_t checks = b->ctr.authz_checks;
  ASSERT_TRUE(a->republish());
  ASSERT_TRUE(b->republish());
  EXPECT_EQ(a->snap->generation, 2u);
  EXPECT_EQ(a->snap->decision_generation, 1u);
  ASSERT_EQ(b->inbound(a->outbound(pkt(1)).fabric).local.size(), 1u);
  EXPECT_EQ(a->ctr.flows_reclassified, 0u);
  EXPECT_EQ(b->ctr.flows_reclassified, 0u);
  EXPECT_EQ(b->ctr.authz_checks, checks) << "no new authorization decision";
  // An applied config (even the same one) re-decides on both sides.
  ASSERT_TRUE(a->reload(a->cfg));
  ASSERT_TRUE(b->reload(b->cfg));
  ASSERT_EQ(b->inbound(a->outbound(pkt(2)).fabric).local.size(), 1u);
  EXPECT_EQ(a->ctr.flows_reclassified, 1u);
  EXPECT_EQ(b->ctr.flows_reclassified, 1u);
  EXPECT_EQ(b->ctr.authz_checks, checks + 1);
  EXPECT_EQ(a->drops(), "");
  EXPECT_EQ(b->drops(), "");
}

TEST_F(DpTest, ServiceFlowsStayOnTheirEndpointAcrossGenerations) {
  std::map<uint16_t, IpAddr, std::less<>> first;
  for (uint16_t c = 0; c < 16; c++) {
    Bytes syn = tcp(ip_hdr(kSleep.v4, kVip4), uint16_t(37000 + c), 80);
    first[c] = ip_dst(through_a(*a, local_frame(*a, kSleep.mac, syn)));
  }
  ASSERT_TRUE(a->reload(a->cfg));
  for (uint16_t c = 0; c < 16; c++) {
    Bytes more = tcp(ip_hdr(kSleep.v4, kVip4), uint16_t(37000 + c), 80, kTcpAck, 5);
    EXPECT_EQ(ip_dst(through_a(*a, local_frame(*a, kSleep.mac, more))), first[c]);
  }
  // Removing httpbin-2 from the service moves its connections to httpbin-1.
  config::Config one = a->cfg;
  for (auto& w : *one.mutable_workloads())
    if (w.name() == "httpbin-2") w.mutable_services()->clear();
  ASSERT_TRUE(a->reload(one));
  for (uint16_t c = 0; c < 16; c++) {
    Bytes more = tcp(ip_hdr(kSleep.v4, kVip4), uint16_t(37000 + c), 80, kTcpAck, 6);
    EXPECT_EQ(ip_dst(through_a(*a, local_frame(*a, kSleep.mac, more))), kHttpbin1.v4);
  }
}

// ---- waypoints ------------------------------------------------------------------------------

TEST_F(DpTest, AWorkloadsWaypointReceivesItsTrafficUnchanged) {
  // postgres names httpbin-2 as its waypoint (by address): sleep -> postgres goes to httpbin-2's
  // MAC on node-b with the original destination; httpbin-2 itself reaches postgres directly.
  auto edit = [](config::Config& c) {
    for (auto& w : *c.mutable_workloads())
      if (w.name() == "postgres")
        w.mutable_waypoint()->mutable_address()->set_address(std::string("\x0a\x02\x00\x15", 4));
  };
  auto a2 = keep(DpNode::load("node-a.textproto", edit));
  auto b2 = keep(DpNode::load("node-b.textproto", edit));
  Bytes syn = tcp(ip_hdr(kSleep, kPostgres, false), 38000, 5432);
  Out ao = a2->outbound(local_frame(*a2, kSleep.mac, syn));
  ASSERT_EQ(ao.fabric.size(), 1u);
  Out bo = b2->inbound(ao.fabric);
  ASSERT_EQ(bo.local.size(), 1u) << b2->drops();
  EXPECT_EQ(bo.local[0], eth_ip(kHttpbin2.mac, kBLocalMac, dec_ttl(syn)));
  Bytes fwd = tcp(ip_hdr(kHttpbin2, kPostgres, false), 38001, 5432);
  Out h = b2->outbound(local_frame(*b2, kHttpbin2.mac, fwd));
  // httpbin-2 (sa httpbin) is not sleep: data/allow-sleep denies it at postgres (hairpin).
  EXPECT_TRUE(h.local.empty());
  EXPECT_EQ(b2->drops(), "authz_denied=1");
}

}  // namespace
}  // namespace vanish::test
