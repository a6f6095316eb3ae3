// Whole-pipeline round trips through both appliances (scenario.md cases 3, 6, 7, 8): a
// workload's packet enters node-a's local port, crosses the fabric as node-a's real output,
// leaves node-b's local port; the reply goes back the same way. IPv4 and IPv6 overlay, IPv4
// and IPv6 fabric.
#include <gtest/gtest.h>

#include "ctl/model.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace vanish::test {
namespace {

using namespace mesh;

uint32_t identity_of(const Workload& w) {
  return ctl::identity_id_for(w.principal).value;
}

enum class Case {
  kPostgres5432,  // case 3: sleep -> postgres:5432 TCP (allowed)
  kUdp,           // case 7: UDP sleep -> httpbin-1
  kIcmpEcho,      // case 7: ICMP echo sleep -> httpbin-1
  kTcp,           // TCP sleep -> httpbin-1:8080 (case 1 after DNAT)
};

struct RoundTrip {
  Case c;
  bool v6;         // case 8: IPv6 overlay
  bool fabric_v6;  // case 8: IPv6 fabric
};

std::string rt_name(const ::testing::TestParamInfo<RoundTrip>& i) {
  static const char* names[] = {"postgres5432", "udp", "icmp_echo", "tcp"};
  return std::string(names[int(i.param.c)]) + (i.param.v6 ? "_v6" : "_v4") +
         (i.param.fabric_v6 ? "_fabric6" : "_fabric4");
}

class RoundTripTest : public DpTest, public ::testing::WithParamInterface<RoundTrip> {
 protected:
  void SetUp() override {
    DpTest::SetUp();
    if (GetParam().fabric_v6) {
      a = DpNode::load("node-a-v6fabric.textproto");
      b = DpNode::load("node-b-v6fabric.textproto");
      ASSERT_TRUE(a && b);
    }
  }
};

// The request (sleep -> server) and the server's answer, packet i of the exchange.
void exchange(Case c, bool v6, unsigned i, const Workload** server, Bytes* req, Bytes* rep) {
  *server = c == Case::kPostgres5432 ? &kPostgres : &kHttpbin1;
  IpHdr fwd = ip_hdr(kSleep, **server, v6), back = ip_hdr(**server, kSleep, v6);
  switch (c) {
    case Case::kPostgres5432:
      *req = tcp(fwd, 41000, 5432, i == 0 ? kTcpSyn : kTcpAck, 100 + i, i ? 900 : 0,
                 i ? pattern(30, uint8_t(i)) : Bytes{});
      *rep = tcp(back, 5432, 41000, i == 0 ? kTcpSyn | kTcpAck : kTcpAck, 900 + i, 101 + i,
                 pattern(20, uint8_t(i)));
      break;
    case Case::kUdp:
      *req = flow_packet(L4::kUdp, fwd, i);
      *rep = reply_packet(L4::kUdp, back, i);
      break;
    case Case::kIcmpEcho:
      *req = flow_packet(L4::kIcmp, fwd, i);
      *rep = reply_packet(L4::kIcmp, back, i);
      break;
    case Case::kTcp:
      *req = flow_packet(L4::kTcp, fwd, i);
      *rep = reply_packet(L4::kTcp, back, i);
      break;
  }
}

TEST_P(RoundTripTest, DeliveredBothWays) {
  const RoundTrip p = GetParam();
  constexpr unsigned kRounds = 3;
  for (unsigned i = 0; i < kRounds; i++) {
    SCOPED_TRACE("round " + std::to_string(i));
    const Workload* srv;
    Bytes req, rep;
    exchange(p.c, p.v6, i, &srv, &req, &rep);

    // sleep -> node-a -> fabric -> node-b -> server.
    Out ao = a->outbound(local_frame(*a, kSleep.mac, req));
    ASSERT_TRUE(ao.local.empty());
    ASSERT_EQ(ao.fabric.size(), 1u) << a->drops();
    FabricPacket fp;
    ASSERT_TRUE(decode_fabric(ao.fabric[0], kSaAB, &fp));
    EXPECT_EQ(fp.outer_v6, p.fabric_v6);
    EXPECT_EQ(fp.esp.spi, kSaAB.spi);
    EXPECT_EQ(fp.esp.seq, i + 1);
    EXPECT_EQ(fp.geneve_options, geneve_identity(identity_of(kSleep)));
    Out bo = b->inbound(ao.fabric);
    ASSERT_TRUE(bo.fabric.empty());
    ASSERT_EQ(bo.local.size(), 1u) << b->drops();
    EXPECT_EQ(bo.local[0], eth_ip(srv->mac, kBLocalMac, dec_ttl(req)));

    // server -> node-b -> fabric -> node-a -> sleep.
    Out br = b->outbound(local_frame(*b, srv->mac, rep));
    ASSERT_TRUE(br.local.empty());
    ASSERT_EQ(br.fabric.size(), 1u) << b->drops();
    ASSERT_TRUE(decode_fabric(br.fabric[0], kSaBA, &fp));
    EXPECT_EQ(fp.eth_src, kBFabricMac);
    EXPECT_EQ(fp.eth_dst, kAFabricMac);
    EXPECT_EQ(fp.outer_src, p.fabric_v6 ? kBFabric6 : kBFabric4);
    EXPECT_EQ(fp.outer_dst, p.fabric_v6 ? kAFabric6 : kAFabric4);
    EXPECT_EQ(fp.sport, derived_sport(kSaBA.spi));
    EXPECT_EQ(fp.esp.spi, kSaBA.spi);
    EXPECT_EQ(fp.esp.seq, i + 1);
    EXPECT_EQ(fp.geneve_options, geneve_identity(identity_of(*srv)));
    EXPECT_EQ(fp.inner, dec_ttl(rep));
    Out ar = a->inbound(br.fabric);
    ASSERT_TRUE(ar.fabric.empty());
    ASSERT_EQ(ar.local.size(), 1u) << a->drops();
    EXPECT_EQ(ar.local[0], eth_ip(kSleep.mac, kALocalMac, dec_ttl(rep)));
  }
  for (DpNode* n : {a.get(), b.get()}) {
    EXPECT_EQ(n->drops(), "");
    EXPECT_EQ(n->ctr.encrypted, kRounds);
    EXPECT_EQ(n->ctr.decrypted, kRounds);
    EXPECT_EQ(n->ctr.delivered, kRounds);
    EXPECT_EQ(n->ctr.flows_created, 2u) << "one outbound and one inbound flow per node";
    EXPECT_EQ(n->ctr.flow_hits, 2 * (kRounds - 1));
  }
}

std::vector<RoundTrip> all_round_trips() {
  std::vector<RoundTrip> v;
  for (Case c : {Case::kPostgres5432, Case::kUdp, Case::kIcmpEcho, Case::kTcp})
    for (bool v6 : {false, true})
      for (bool f6 : {false, true}) v.push_back({c, v6, f6});
  return v;
}
INSTANTIATE_TEST_SUITE_P(Scenario, RoundTripTest, ::testing::ValuesIn(all_round_trips()), rt_name);

// Case 6: a packet from node-a that claims a node-b workload as its source.
class SpoofTest : public DpTest, public ::testing::WithParamInterface<RoundTrip> {
 protected:
  void SetUp() override {
    DpTest::SetUp();
    if (GetParam().fabric_v6) {
      a = DpNode::load("node-a-v6fabric.textproto");
      b = DpNode::load("node-b-v6fabric.textproto");
      ASSERT_TRUE(a && b);
    }
  }
};

TEST_P(SpoofTest, ClaimingANodeBWorkloadIsDropped) {
  const RoundTrip p = GetParam();
  Bytes lie = udp(ip_hdr(kHttpbin2, kHttpbin1, p.v6), 7777, 7777, pattern(30));
  // node-a itself refuses to send it: httpbin-2 is not its workload.
  Out ao = a->outbound(local_frame(*a, kSleep.mac, lie));
  EXPECT_TRUE(ao.fabric.empty());
  EXPECT_TRUE(ao.local.empty());
  EXPECT_EQ(a->drops(), "unknown_source=1");
  // A node-a that does send it (valid SA, valid ICV) is caught by node-b, whatever identity
  // it claims.
  auto sa = make_sa(kSaAB);
  for (uint32_t id : {identity_of(kHttpbin2), identity_of(kSleep)}) {
    Bytes payload = geneve_udp(0xC001, p.v6 ? kEthIpv6 : kEthIpv4, geneve_identity(id), lie);
    Out bo = b->inbound(fabric_a_to_b(seal(*sa, payload), p.fabric_v6));
    EXPECT_TRUE(bo.local.empty());
    EXPECT_TRUE(bo.fabric.empty());
  }
  EXPECT_EQ(b->drops(), "identity_spoof=2");
  EXPECT_EQ(b->ctr.decrypted, 2u) << "authentic, decrypted, then refused";
  EXPECT_EQ(b->ctr.delivered, 0u);
  // The reverse: node-b claiming sleep is refused by node-a.
  auto sba = make_sa(kSaBA);
  Bytes lie2 = udp(ip_hdr(kSleep, kCurl, p.v6), 1, 2, pattern(30));
  Out ai =
      a->inbound(fabric_b_to_a(seal(*sba, geneve_udp(0xC001, p.v6 ? kEthIpv6 : kEthIpv4,
                                                     geneve_identity(identity_of(kSleep)), lie2)),
                               p.fabric_v6));
  EXPECT_TRUE(ai.local.empty());
  EXPECT_EQ(a->drops(), "unknown_source=1 identity_spoof=1");
}

std::vector<RoundTrip> spoof_cases() {
  std::vector<RoundTrip> v;
  for (bool v6 : {false, true})
    for (bool f6 : {false, true}) v.push_back({Case::kUdp, v6, f6});
  return v;
}
INSTANTIATE_TEST_SUITE_P(Case6, SpoofTest, ::testing::ValuesIn(spoof_cases()), rt_name);

TEST_F(DpTest, ManyFlowsBothWaysInFullBursts) {
  // 4 bursts of 32 mixed packets each way: every one arrives, in order, byte for byte.
  std::vector<Bytes> req, rep, fa, fb;
  // (postgres only admits sleep on 5432: data/allow-sleep; see the authorization tests.)
  const Workload* servers[] = {&kHttpbin1, &kHttpbin2};
  for (unsigned i = 0; i < 128; i++) {
    const Workload& s = *servers[i % 2];
    bool v6 = (i / 3) % 2;
    L4 p = L4(i % 3);
    req.push_back(flow_packet(p, ip_hdr(kSleep, s, v6), i, 20 + i));
    rep.push_back(reply_packet(p, ip_hdr(s, kSleep, v6), i, 20 + i));
    fa.push_back(local_frame(*a, kSleep.mac, req.back()));
    fb.push_back(local_frame(*b, s.mac, rep.back()));
  }
  Out ao = a->outbound(fa);
  ASSERT_EQ(ao.fabric.size(), 128u);
  Out bo = b->inbound(ao.fabric);
  ASSERT_EQ(bo.local.size(), 128u);
  Out br = b->outbound(fb);
  ASSERT_EQ(br.fabric.size(), 128u);
  Out ar = a->inbound(br.fabric);
  ASSERT_EQ(ar.local.size(), 128u);
  for (unsigned i = 0; i < 128; i++) {
    EXPECT_EQ(l3_of(bo.local[i]), dec_ttl(req[i])) << i;
    EXPECT_EQ(l3_of(ar.local[i]), dec_ttl(rep[i])) << i;
  }
  EXPECT_EQ(a->drops(), "");
  EXPECT_EQ(b->drops(), "");
}

// ---- config swaps (a new snapshot generation under traffic) ---------------------------------

TEST_F(DpTest, ConfigSwapCarriesSequenceNumbersAndReplayWindows) {
  auto pkt = [](unsigned i) {
    return udp(ip_hdr(kSleep, kHttpbin1, false), 40000, 7777, pattern(20, uint8_t(i)));
  };
  Out f1 = a->outbound({local_frame(*a, kSleep.mac, pkt(0)), local_frame(*a, kSleep.mac, pkt(1))});
  ASSERT_EQ(f1.fabric.size(), 2u);
  EXPECT_EQ(b->inbound(f1.fabric).local.size(), 2u);
  ASSERT_TRUE(a->reload(a->cfg));
  ASSERT_TRUE(b->reload(b->cfg));
  Out f2 = a->outbound(local_frame(*a, kSleep.mac, pkt(2)));
  ASSERT_EQ(f2.fabric.size(), 1u);
  FabricPacket fp;
  ASSERT_TRUE(decode_fabric(f2.fabric[0], kSaAB, &fp));
  EXPECT_EQ(fp.esp.seq, 3u) << "the SA (and its counter) survived the swap";
  EXPECT_EQ(a->ctr.flows_reclassified, 1u);
  EXPECT_EQ(b->inbound(f2.fabric).local.size(), 1u);
  EXPECT_TRUE(b->inbound(f1.fabric[0]).local.empty());
  EXPECT_EQ(b->drops(), "replay=1") << "the replay window survived the swap";
}

TEST_F(DpTest, ConfigSwapRemovingTheSaFailsClosedForCachedFlows) {
  Bytes f = local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(9)));
  EXPECT_EQ(a->outbound(f).fabric.size(), 1u);
  config::Config next = a->cfg;
  next.clear_static_sas();
  ASSERT_TRUE(a->reload(next));
  Out o = a->outbound(f);
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "no_sa=1");
  EXPECT_EQ(a->ctr.flows_reclassified, 1u);
}

TEST_F(DpTest, ConfigSwapToANewKeyRejectsTheOldOne) {
  config::Config next = b->cfg;
  for (auto& sa : *next.mutable_static_sas())
    if (sa.from_node() == "node-a") sa.set_key_hex("00112233445566778899aabbccddeeff");
  ASSERT_TRUE(b->reload(next));
  Out o = a->outbound(
      local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(9))));
  ASSERT_EQ(o.fabric.size(), 1u);
  EXPECT_TRUE(b->inbound(o.fabric).local.empty());
  EXPECT_EQ(b->drops(), "bad_icv=1");
}

TEST_F(DpTest, ConfigSwapKeepsLearnedMacs) {
  a->outbound(arp(kArpRequest, mac("02:00:00:aa:00:99"), kCurl.v4, MacAddr{}, kAGw4));
  config::Config next = a->cfg;
  next.clear_neighbours();
  ASSERT_TRUE(a->reload(next));
  EXPECT_EQ(a->neighbour(kCurl.v4), mac("02:00:00:aa:00:99"));
  EXPECT_EQ(a->neighbour(kSleep.v4), kSleep.mac) << "static MACs are remembered as learned";
}

}  // namespace
}  // namespace vanish::test
