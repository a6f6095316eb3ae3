// Inbound fixtures (node-b, packets from the fabric): node-a's real output decrypted and
// delivered; anti-replay; integrity; identity verification; malformed fabric packets.
#include <gtest/gtest.h>

#include "ctl/model.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace vanish::test {
namespace {

using namespace mesh;
using dp::DropReason;

uint32_t identity_of(const Workload& w) {
  return ctl::identity_id_for(w.principal).value;
}

// node-a's fabric frames for `ips` (each from sleep's MAC), one per input.
std::vector<Bytes> sealed_by_a(DpNode& a, const std::vector<Bytes>& ips) {
  std::vector<Bytes> frames;
  for (const Bytes& ip : ips) frames.push_back(local_frame(a, kSleep.mac, ip));
  Out o = a.outbound(frames);
  EXPECT_EQ(o.fabric.size(), ips.size()) << a.drops();
  return o.fabric;
}

Bytes sleep_to_httpbin1(unsigned i, bool v6 = false) {
  return udp(ip_hdr(kSleep, kHttpbin1, v6), 40000, 7777, pattern(40, uint8_t(i)));
}

std::vector<Bytes> n_packets(unsigned n, bool v6 = false) {
  std::vector<Bytes> v;
  for (unsigned i = 0; i < n; i++) v.push_back(sleep_to_httpbin1(i, v6));
  return v;
}

const crypto::EspSa& inbound_sa(const DpNode& n, uint32_t spi) {
  const dp::InboundSa* in = n.snap->sa_in.find(spi);
  EXPECT_TRUE(in);
  return *in->sa;
}

// ---- delivery --------------------------------------------------------------------------------

struct DeliverCase {
  L4 proto;
  bool v6, fabric_v6;
};
std::string deliver_name(const ::testing::TestParamInfo<DeliverCase>& i) {
  return std::string(l4_name(i.param.proto)) + (i.param.v6 ? "_v6" : "_v4") +
         (i.param.fabric_v6 ? "_fabric6" : "_fabric4");
}

class InboundDeliver : public DpTest, public ::testing::WithParamInterface<DeliverCase> {};

TEST_P(InboundDeliver, NodeAOutputIsDeliveredToHttpbin1) {
  const DeliverCase c = GetParam();
  DpNode* na = c.fabric_v6 ? keep(DpNode::load("node-a-v6fabric.textproto")) : a.get();
  DpNode* nb = c.fabric_v6 ? keep(DpNode::load("node-b-v6fabric.textproto")) : b.get();
  ASSERT_TRUE(na && nb);
  std::vector<Bytes> in;
  for (unsigned i = 0; i < 3; i++)
    in.push_back(flow_packet(c.proto, ip_hdr(kSleep, kHttpbin1, c.v6), i, 100 + i));
  std::vector<Bytes> fabric = sealed_by_a(*na, in);
  ASSERT_EQ(fabric.size(), 3u);
  Out o = nb->inbound(fabric);
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 3u);
  for (unsigned i = 0; i < 3; i++)
    EXPECT_EQ(o.local[i], eth_ip(kHttpbin1.mac, kBLocalMac, dec_ttl(in[i])))
        << "got\n"
        << hex(o.local[i]) << "\nwant\n"
        << hex(eth_ip(kHttpbin1.mac, kBLocalMac, dec_ttl(in[i])));
  EXPECT_EQ(nb->drops(), "");
  EXPECT_EQ(nb->ctr.fabric_rx, 3u);
  EXPECT_EQ(nb->ctr.decrypted, 3u);
  EXPECT_EQ(nb->ctr.delivered, 3u);
  EXPECT_EQ(inbound_sa(*nb, kSaAB.spi).replay_top(), 3u);
}

std::vector<DeliverCase> all_deliver_cases() {
  std::vector<DeliverCase> v;
  for (L4 p : {L4::kUdp, L4::kTcp, L4::kIcmp})
    for (bool v6 : {false, true})
      for (bool f6 : {false, true}) v.push_back({p, v6, f6});
  return v;
}
INSTANTIATE_TEST_SUITE_P(All, InboundDeliver, ::testing::ValuesIn(all_deliver_cases()),
                         deliver_name);

TEST_F(DpTest, DeliveryToEveryNodeBWorkload) {
  for (const Workload* w : {&kHttpbin1, &kHttpbin2, &kPostgres})
    for (bool v6 : {false, true}) {
      Bytes in = tcp(ip_hdr(kSleep, *w, v6), 40001, 5432);
      auto f = sealed_by_a(*a, {in});
      ASSERT_EQ(f.size(), 1u);
      Out o = b->inbound(f);
      ASSERT_EQ(o.local.size(), 1u) << w->name;
      EXPECT_EQ(o.local[0], eth_ip(w->mac, kBLocalMac, dec_ttl(in))) << w->name;
    }
  EXPECT_EQ(b->drops(), "");
}

TEST_F(DpTest, InboundToWorkloadWithoutMacSolicits) {
  DpNode* nb = keep(
      DpNode::load("node-b.textproto", [](config::Config& c) { c.mutable_neighbours()->Clear(); }));
  ASSERT_TRUE(nb);
  Out o = nb->inbound(sealed_by_a(*a, {sleep_to_httpbin1(0)}));
  EXPECT_EQ(nb->drops(), "neighbour_miss=1");
  ASSERT_EQ(o.local.size(), 1u);
  Bytes want = arp(kArpRequest, kBLocalMac, kBGw4, MacAddr{}, kHttpbin1.v4);
  want.resize(kEth + 28);
  EXPECT_EQ(o.local[0], want);
  // After the workload answers (ARP reply to the gateway), delivery works.
  Out r = nb->outbound(arp(kArpReply, kHttpbin1.mac, kHttpbin1.v4, kBLocalMac, kBGw4, &kBLocalMac));
  EXPECT_TRUE(r.local.empty());
  EXPECT_EQ(nb->neighbour(kHttpbin1.v4), kHttpbin1.mac);
  Bytes in = sleep_to_httpbin1(1);
  o = nb->inbound(sealed_by_a(*a, {in}));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(o.local[0], eth_ip(kHttpbin1.mac, kBLocalMac, dec_ttl(in)));
}

// ---- anti-replay -----------------------------------------------------------------------------

TEST_F(DpTest, ReplayedPacketIsDropped) {
  auto f = sealed_by_a(*a, n_packets(2));
  Out o = b->inbound(f);
  EXPECT_EQ(o.local.size(), 2u);
  o = b->inbound(f[0]);
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "replay=1");
  o = b->inbound({f[1], f[1]});  // twice in one burst, both already seen
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "replay=3");
  EXPECT_EQ(b->ctr.delivered, 2u);
}

TEST_F(DpTest, DuplicateWithinOneBurstIsDropped) {
  auto f = sealed_by_a(*a, n_packets(1));
  Out o = b->inbound({f[0], f[0]});
  EXPECT_EQ(o.local.size(), 1u);
  EXPECT_EQ(b->drops(), "replay=1");
}

TEST_F(DpTest, ReorderedWithinTheWindowIsAllDelivered) {
  auto in = n_packets(10);
  auto f = sealed_by_a(*a, in);
  ASSERT_EQ(f.size(), 10u);
  const unsigned order[] = {0, 2, 1, 4, 3, 6, 5, 8, 7, 9};  // seq 1,3,2,5,4,7,6,9,8,10
  std::vector<Bytes> shuffled;
  for (unsigned i : order) shuffled.push_back(f[i]);
  Out o = b->inbound(shuffled);
  EXPECT_EQ(b->drops(), "");
  ASSERT_EQ(o.local.size(), 10u);
  for (unsigned k = 0; k < 10; k++)
    EXPECT_EQ(o.local[k], eth_ip(kHttpbin1.mac, kBLocalMac, dec_ttl(in[order[k]])));
  // One at a time, too.
  auto g = sealed_by_a(*a, n_packets(10));
  for (unsigned i : order) EXPECT_EQ(b->inbound(g[i]).local.size(), 1u) << i;
  EXPECT_EQ(b->drops(), "");
}

TEST_F(DpTest, TooOldIsDropped) {
  std::vector<Bytes> f = sealed_by_a(*a, n_packets(5000));
  ASSERT_EQ(f.size(), 5000u);
  Out o = b->inbound(f);
  EXPECT_EQ(o.local.size(), 5000u);
  EXPECT_EQ(b->drops(), "");
  EXPECT_EQ(inbound_sa(*b, kSaAB.spi).replay_top(), 5000u);
  o = b->inbound(f[0]);  // seq 1: 4999 behind, the window holds 4096
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "replay_too_old=1");
  o = b->inbound(f[5000 - 4096 - 1]);  // seq 904: just left of the window
  EXPECT_EQ(b->drops(), "replay_too_old=2");
  o = b->inbound(f[5000 - 4096]);  // seq 905: the oldest the window holds, already seen
  EXPECT_EQ(b->drops(), "replay=1 replay_too_old=2");
}

TEST_F(DpTest, LateButInsideTheWindowIsDelivered) {
  std::vector<Bytes> f = sealed_by_a(*a, n_packets(4096));
  std::vector<Bytes> all_but_first(f.begin() + 1, f.end());
  Out o = b->inbound(all_but_first);
  EXPECT_EQ(o.local.size(), 4095u);
  o = b->inbound(f[0]);  // seq 1 with top 4096: the window's last slot
  EXPECT_EQ(o.local.size(), 1u);
  EXPECT_EQ(b->drops(), "");
}

// ---- integrity -------------------------------------------------------------------------------

struct Flip {
  const char* what;
  size_t offset_from_esp;  // SIZE_MAX - k: k bytes from the end of the frame
  uint8_t mask;
  DropReason reason;
};

TEST_F(DpTest, FlippedBitsAreRejectedAndDoNotMoveTheWindow) {
  std::vector<Bytes> f = sealed_by_a(*a, n_packets(3));
  ASSERT_EQ(f.size(), 3u);
  const size_t esp = esp_offset(f[0]);
  const Flip flips[] = {
      {"SPI to another valid SA (0xa01)", 3, 0x01, DropReason::kBadIcv},
      {"SPI to an unknown SA (0xe00)", 2, 0x04, DropReason::kUnknownSpi},
      {"sequence number", 7, 0x40, DropReason::kBadIcv},
      {"IV", 12, 0x10, DropReason::kBadIcv},
      {"first ciphertext byte", 16, 0x01, DropReason::kBadIcv},
      {"last ciphertext byte", SIZE_MAX - 17, 0x80, DropReason::kBadIcv},
      {"first ICV byte", SIZE_MAX - 16, 0x01, DropReason::kBadIcv},
      {"last ICV byte", SIZE_MAX - 1, 0x01, DropReason::kBadIcv},
  };
  ASSERT_TRUE(b->snap->sa_in.find(0xa01));
  ASSERT_FALSE(b->snap->sa_in.find(0xe00));
  uint64_t bad_icv = 0, unknown = 0;
  for (const Flip& fl : flips) {
    SCOPED_TRACE(fl.what);
    for (unsigned i = 0; i < 3; i++) {
      Bytes x = f[i];
      size_t off = fl.offset_from_esp >= SIZE_MAX - 64 ? x.size() - (SIZE_MAX - fl.offset_from_esp)
                                                       : esp + fl.offset_from_esp;
      x[off] ^= fl.mask;
      Out o = b->inbound(x);
      EXPECT_TRUE(o.local.empty());
      (fl.reason == DropReason::kBadIcv ? bad_icv : unknown)++;
    }
    EXPECT_EQ(b->drop(DropReason::kBadIcv), bad_icv);
    EXPECT_EQ(b->drop(DropReason::kUnknownSpi), unknown);
  }
  EXPECT_EQ(b->ctr.decrypted, 0u);
  EXPECT_EQ(inbound_sa(*b, 0xa00).replay_top(), 0u) << "a failed ICV never moves the window";
  EXPECT_EQ(inbound_sa(*b, 0xa01).replay_top(), 0u);
  // The genuine packets with those sequence numbers are still accepted.
  Out o = b->inbound(f);
  EXPECT_EQ(o.local.size(), 3u);
  EXPECT_EQ(b->drop(DropReason::kReplay), 0u);
}

TEST_F(DpTest, FailedIcvAfterProgressDoesNotBlockTheSequence) {
  std::vector<Bytes> f = sealed_by_a(*a, n_packets(10));
  Out o = b->inbound(std::vector<Bytes>(f.begin(), f.begin() + 5));  // seq 1..5
  EXPECT_EQ(o.local.size(), 5u);
  Bytes forged = f[7];  // seq 8, ahead of the window top
  forged[forged.size() - 20] ^= 0xff;
  EXPECT_TRUE(b->inbound(forged).local.empty());
  EXPECT_EQ(inbound_sa(*b, 0xa00).replay_top(), 5u);
  o = b->inbound(std::vector<Bytes>(f.begin() + 5, f.end()));  // seq 6..10, 8 included
  EXPECT_EQ(o.local.size(), 5u);
  EXPECT_EQ(b->drops(), "bad_icv=1");
}

TEST_F(DpTest, UnknownSpiIsDropped) {
  auto sa = make_sa(kSaAB, 0xc00);
  Bytes inner =
      geneve_udp(0xC000, kEthIpv4, geneve_identity(identity_of(kSleep)), sleep_to_httpbin1(0));
  auto own = make_sa(kSaBA);  // node-b's own outbound SPI is not an inbound SA of node-b
  Out o = b->inbound({fabric_a_to_b(seal(*sa, inner)), fabric_a_to_b(seal(*own, inner))});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "unknown_spi=2");
}

TEST_F(DpTest, EachPacketOfABurstIsJudgedByItsOwnSpi) {
  // FabricIngress reuses the SA of the previous packet while the SPI repeats: a burst that
  // alternates known, unknown and other known SPIs must still pick each packet's own SA.
  auto w0 = make_sa(kSaAB, 0xa00);
  auto w5 = make_sa(kSaAB, 0xa05);
  auto unknown = make_sa(kSaAB, 0xc00);
  auto frame = [&](crypto::EspSa& sa, uint16_t port) {
    return fabric_a_to_b(seal(sa, geneve_udp(0xC001, kEthIpv4, geneve_identity(identity_of(kSleep)),
                                             sleep_to_httpbin1(port))));
  };
  std::vector<Bytes> burst = {frame(*w0, 1), frame(*w0, 2),      frame(*unknown, 3),
                              frame(*w0, 4), frame(*w5, 5),      frame(*unknown, 6),
                              frame(*w5, 7), frame(*unknown, 8), frame(*w0, 9)};
  const uint64_t rx_before = b->ctr.fabric_rx;
  Out o = b->inbound(burst);
  EXPECT_EQ(o.local.size(), 6u);
  EXPECT_EQ(b->drops(), "unknown_spi=3");
  EXPECT_EQ(b->ctr.fabric_rx - rx_before, burst.size());
  EXPECT_EQ(inbound_sa(*b, 0xa00).replay_top(), 4u);  // four packets sealed by w0
  EXPECT_EQ(inbound_sa(*b, 0xa05).replay_top(), 2u);
}

TEST_F(DpTest, EveryRawTruncationIsAParseError) {
  for (bool f6 : {false, true}) {
    DpNode* na = f6 ? keep(DpNode::load("node-a-v6fabric.textproto")) : a.get();
    DpNode* nb = f6 ? keep(DpNode::load("node-b-v6fabric.textproto")) : b.get();
    ASSERT_TRUE(na && nb);
    Bytes f = sealed_by_a(*na, {sleep_to_httpbin1(0)})[0];
    std::vector<Bytes> cut;
    for (size_t len = 0; len < f.size(); len++) cut.emplace_back(f.begin(), f.begin() + long(len));
    Out o = nb->inbound(cut);
    EXPECT_TRUE(o.local.empty());
    EXPECT_TRUE(o.fabric.empty());
    EXPECT_EQ(nb->drops(), "parse_error=" + std::to_string(f.size()));
    EXPECT_EQ(inbound_sa(*nb, 0xa00).replay_top(), 0u);
    EXPECT_EQ(nb->inbound(f).local.size(), 1u) << "the whole frame still opens";
  }
}

TEST_F(DpTest, EveryConsistentEspTruncationIsCounted) {
  // Shorten the ESP packet but keep the IP/UDP lengths consistent: the ESP layer judges it.
  Bytes f = sealed_by_a(*a, {sleep_to_httpbin1(0)})[0];
  const size_t off = esp_offset(f);
  const Bytes esp(f.begin() + long(off), f.end());
  std::vector<Bytes> in;
  for (size_t len = 0; len < esp.size(); len++)
    in.push_back(fabric_a_to_b(Bytes(esp.begin(), esp.begin() + long(len))));
  Out o = b->inbound(in);
  EXPECT_TRUE(o.local.empty());
  // < 8 bytes: no room for SPI + seq (1 byte = NAT keepalive); < 34: shorter than header + IV +
  // trailer + ICV; the rest authenticate the wrong bytes.
  std::string want = "not_esp=1 bad_icv=" + std::to_string(esp.size() - 34) + " esp_truncated=33";
  EXPECT_EQ(b->drops(), want);
  EXPECT_EQ(b->inbound(f).local.size(), 1u);
}

// ---- identity, Geneve, destination (sealed by a test SA with node-a's keys) ------------------

class Forged : public DpTest {
 protected:
  void SetUp() override {
    DpTest::SetUp();
    sa_ = make_sa(kSaAB);
  }
  // Seals payload (UDP 6081 | Geneve | ...) as node-a would and hands it to node-b.
  Out send(const Bytes& payload, uint8_t next_header = kProtoUdp) {
    return b->inbound(fabric_a_to_b(seal(*sa_, payload, next_header)));
  }
  Out send_inner(const Bytes& inner, uint32_t identity) {
    return send(geneve_udp(0xC001, ip_is_v6(inner) ? kEthIpv6 : kEthIpv4, geneve_identity(identity),
                           inner));
  }
  std::unique_ptr<crypto::EspSa> sa_;
};

TEST_F(Forged, ValidPacketIsDelivered) {
  // The builders agree with the data plane: a hand-sealed packet opens and is delivered as is.
  for (bool v6 : {false, true}) {
    Bytes inner = sleep_to_httpbin1(0, v6);
    Out o = send_inner(inner, identity_of(kSleep));
    ASSERT_EQ(o.local.size(), 1u);
    EXPECT_EQ(o.local[0], eth_ip(kHttpbin1.mac, kBLocalMac, inner));
  }
  EXPECT_EQ(b->drops(), "");
}

TEST_F(Forged, AnySpiOfTheBundleIsAccepted) {
  // node-a may run up to 16 workers: SPIs 0xa00..0xa0f all belong to node-a.
  auto w5 = make_sa(kSaAB, 0xa05);
  Bytes inner = sleep_to_httpbin1(0);
  Out o = b->inbound(fabric_a_to_b(
      seal(*w5, geneve_udp(0xC001, kEthIpv4, geneve_identity(identity_of(kSleep)), inner))));
  ASSERT_EQ(o.local.size(), 1u);
  auto w16 = make_sa(kSaAB, 0xa10);
  o = b->inbound(fabric_a_to_b(
      seal(*w16, geneve_udp(0xC001, kEthIpv4, geneve_identity(identity_of(kSleep)), inner))));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "unknown_spi=1");
}

TEST_F(Forged, SourceHostedByTheReceiverIsASpoof) {
  // scenario.md case 6: node-a claims httpbin-2 (a node-b workload), with httpbin's identity.
  for (bool v6 : {false, true}) {
    Out o =
        send_inner(udp(ip_hdr(kHttpbin2, kHttpbin1, v6), 1, 2, pattern(8)), identity_of(kHttpbin2));
    EXPECT_TRUE(o.local.empty());
  }
  EXPECT_EQ(b->drops(), "identity_spoof=2");
}

TEST_F(Forged, IdentityOfAnotherWorkloadIsASpoof) {
  Out o = send_inner(sleep_to_httpbin1(0), identity_of(kCurl));  // sleep's address, curl's identity
  EXPECT_TRUE(o.local.empty());
  o = send_inner(udp(ip_hdr(kCurl, kHttpbin1, false), 1, 2, {}), identity_of(kSleep));
  EXPECT_TRUE(o.local.empty());
  o = send_inner(sleep_to_httpbin1(0), identity_of(kHttpbin1));  // a node-b identity
  EXPECT_TRUE(o.local.empty());
  o = send_inner(sleep_to_httpbin1(0), 0x12345678);  // no such identity
  EXPECT_TRUE(o.local.empty());
  o = send_inner(udp(ip_hdr(ip("10.1.0.99"), kHttpbin1.v4), 1, 2, {}), identity_of(kSleep));
  EXPECT_TRUE(o.local.empty());  // source in node-a's prefix but not a workload
  EXPECT_EQ(b->drops(), "identity_spoof=5");
}

// The source check runs once per flow (InboundAuthorize): the flow entry remembers the peer node
// and identity its first packet was verified with. A packet with the same 5-tuple but another
// identity must not ride on that: it is checked in full, dropped as a spoof, and leaves the
// entry alone (no hit counted, nothing re-decided); the honest flow goes on.
TEST_F(Forged, AnEstablishedFlowDoesNotVouchForAnotherIdentity) {
  for (bool v6 : {false, true}) {
    Bytes inner = sleep_to_httpbin1(0, v6);
    ASSERT_EQ(send_inner(inner, identity_of(kSleep)).local.size(), 1u);
    EXPECT_TRUE(send_inner(inner, identity_of(kCurl)).local.empty());      // a node-a identity
    EXPECT_TRUE(send_inner(inner, identity_of(kHttpbin1)).local.empty());  // a node-b identity
    EXPECT_EQ(send_inner(inner, identity_of(kSleep)).local.size(), 1u);
  }
  EXPECT_EQ(b->drops(), "identity_spoof=4");
  EXPECT_EQ(b->ctr.flows_created, 2u);
  EXPECT_EQ(b->ctr.flow_hits, 2u);
  EXPECT_EQ(b->ctr.flows_reclassified, 0u);
  EXPECT_EQ(b->ctr.delivered, 4u);
}

// A new config that gives the source workload another identity re-checks established flows:
// the identity the flow was verified with is now a spoof, the new one is delivered.
TEST_F(Forged, ANewIdentityForTheSourceRechecksEstablishedFlows) {
  Bytes inner = sleep_to_httpbin1(0);
  const uint32_t old_id = identity_of(kSleep);
  ASSERT_EQ(send_inner(inner, old_id).local.size(), 1u);
  config::Config next = b->cfg;
  for (auto& w : *next.mutable_workloads())
    if (w.name() == "sleep") w.set_service_account("sleep-v2");
  ASSERT_TRUE(b->reload(next));
  const uint32_t new_id = ctl::identity_id_for("cluster.local/ns/default/sa/sleep-v2").value;
  ASSERT_NE(new_id, old_id);
  EXPECT_TRUE(send_inner(inner, old_id).local.empty());
  EXPECT_EQ(b->drops(), "identity_spoof=1");
  EXPECT_EQ(send_inner(inner, new_id).local.size(), 1u);
  EXPECT_EQ(b->ctr.flows_created, 1u);
  EXPECT_EQ(b->ctr.flows_reclassified, 1u);
}

TEST_F(Forged, MissingIdentityIsNoIdentity) {
  Bytes inner = sleep_to_httpbin1(0);
  Out o = send(geneve_udp(0xC001, kEthIpv4, {}, inner, 0));  // no options at all
  EXPECT_TRUE(o.local.empty());
  o = send(geneve_udp(0xC001, kEthIpv4, geneve_identity(0), inner));  // id 0 is "none"
  EXPECT_TRUE(o.local.empty());
  o = send(geneve_udp(0xC001, kEthIpv4, geneve_option(0x0102, 0x01, {1, 2, 3, 4}), inner, 0));
  EXPECT_TRUE(o.local.empty());  // only an unknown non-critical option
  EXPECT_EQ(b->drops(), "no_identity=3");
  // An identity option of the wrong size is a critical option not understood: malformed.
  o = send(
      geneve_udp(0xC001, kEthIpv4, geneve_option(0xFF56, 0x81, {0, 0, 0, 1, 0, 0, 0, 2}), inner));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "bad_geneve=1 no_identity=3");
}

TEST_F(Forged, DestinationNotLocalIsDropped) {
  Out o = send_inner(udp(ip_hdr(kSleep, kCurl, false), 1, 2, {}), identity_of(kSleep));
  EXPECT_TRUE(o.local.empty());
  o = send_inner(udp(ip_hdr(kSleep.v4, ip("8.8.8.8")), 1, 2, {}), identity_of(kSleep));
  EXPECT_TRUE(o.local.empty());
  o = send_inner(udp(ip_hdr(kSleep.v6, kBGw6), 1, 2, {}), identity_of(kSleep));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "not_local=3");
}

TEST_F(Forged, UnknownCriticalOptionIsBadGeneve) {
  Bytes inner = sleep_to_httpbin1(0);
  Bytes opts = geneve_identity(identity_of(kSleep));
  Bytes crit = geneve_option(0x0102, 0x80, {1, 2, 3, 4});
  opts.insert(opts.end(), crit.begin(), crit.end());
  Out o = send(geneve_udp(0xC001, kEthIpv4, opts, inner));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "bad_geneve=1");
  // The same option without the critical bit is skipped.
  opts = geneve_option(0x0102, 0x00, {1, 2, 3, 4});
  Bytes id = geneve_identity(identity_of(kSleep));
  opts.insert(opts.end(), id.begin(), id.end());
  o = send(geneve_udp(0xC001, kEthIpv4, opts, inner));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(o.local[0], eth_ip(kHttpbin1.mac, kBLocalMac, inner));
}

TEST_F(Forged, MalformedGeneveIsBadGeneve) {
  Bytes inner = sleep_to_httpbin1(0);
  Bytes opts = geneve_identity(identity_of(kSleep));
  Bytes ok = geneve_udp(0xC001, kEthIpv4, opts, inner);
  std::vector<Bytes> bad;
  bad.push_back(ok);
  bad.back()[8] |= 0x40;  // Geneve version 1
  bad.push_back(ok);
  wr16(&bad.back()[2], 6082);  // not the Geneve port
  bad.push_back(ok);
  wr16(&bad.back()[4], uint16_t(ok.size() - 1));           // UDP length disagrees with ESP payload
  bad.push_back(geneve_udp(0xC001, 0x0806, opts, inner));  // payload is not IP
  bad.push_back(ok);
  bad.back()[8] = 0x3f;                               // options run past the payload
  bad.push_back(Bytes(ok.begin(), ok.begin() + 12));  // shorter than UDP + Geneve
  wr16(&bad.back()[4], 12);
  for (const Bytes& p : bad) EXPECT_TRUE(send(p).local.empty());
  EXPECT_TRUE(send(ok, /*next_header=*/4).local.empty());  // ESP next header is not UDP
  EXPECT_EQ(b->drops(), "bad_geneve=" + std::to_string(bad.size() + 1));
}

TEST_F(Forged, GeneveControlMessageIsNotDelivered) {
  // RFC 8926 §3.4: with O set the payload is a control message; endpoints MUST NOT forward it.
  Bytes inner = sleep_to_httpbin1(0);
  Out o = send(geneve_udp(0xC001, kEthIpv4, geneve_identity(identity_of(kSleep)), inner, 0xC0));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "bad_geneve=1");
}

TEST_F(Forged, InnerPacketMustMatchGeneveProtocolAndLength) {
  Bytes v4 = sleep_to_httpbin1(0);
  Bytes opts = geneve_identity(identity_of(kSleep));
  EXPECT_TRUE(send(geneve_udp(0xC001, kEthIpv6, opts, v4)).local.empty());  // says IPv6
  Bytes longer = v4;
  longer.push_back(0);  // a byte after the IP packet
  EXPECT_TRUE(send(geneve_udp(0xC001, kEthIpv4, opts, longer)).local.empty());
  Bytes shorter(v4.begin(), v4.end() - 1);
  EXPECT_TRUE(send(geneve_udp(0xC001, kEthIpv4, opts, shorter)).local.empty());
  EXPECT_TRUE(send(geneve_udp(0xC001, kEthIpv4, opts, {})).local.empty());  // nothing inside
  EXPECT_EQ(b->drops(), "parse_error=4");
}

TEST_F(Forged, BadPaddingIsDropped) {
  Bytes payload =
      geneve_udp(0xC001, kEthIpv4, geneve_identity(identity_of(kSleep)), sleep_to_httpbin1(0));
  Bytes wrong_bytes = payload;  // pad bytes must be 1, 2, ...
  wrong_bytes.insert(wrong_bytes.end(), {9, 9, 2, kProtoUdp});
  Bytes too_long = payload;  // pad length longer than the text
  too_long.insert(too_long.end(), {250, kProtoUdp});
  Out o = b->inbound({fabric_a_to_b(esp_seal_ref_text(kSaAB, 1, wrong_bytes)),
                      fabric_a_to_b(esp_seal_ref_text(kSaAB, 2, too_long))});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "bad_padding=2");
}

TEST_F(Forged, ReferenceSealedPacketIsDelivered) {
  // OpenSSL-sealed (not crypto/): an independent implementation interoperates.
  Bytes inner = sleep_to_httpbin1(0, true);
  Bytes payload = geneve_udp(0xC001, kEthIpv6, geneve_identity(identity_of(kSleep)), inner);
  Out o = b->inbound(fabric_a_to_b(esp_seal_ref(kSaAB, 77, payload)));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(o.local[0], eth_ip(kHttpbin1.mac, kBLocalMac, inner));
  EXPECT_EQ(inbound_sa(*b, 0xa00).replay_top(), 77u);
}

// ---- outer headers ---------------------------------------------------------------------------

TEST_F(DpTest, OuterFragmentIsDropped) {
  Bytes f = sealed_by_a(*a, {sleep_to_httpbin1(0)})[0];
  Bytes mf = f, off = f;
  mf[kEth + 6] |= 0x20;  // more fragments
  off[kEth + 7] = 0x10;  // offset 16*8
  for (Bytes* x : {&mf, &off}) {
    Bytes l3 = l3_of(*x);
    fix_ipv4_checksum(l3);
    std::copy(l3.begin(), l3.end(), x->begin() + kEth);
  }
  // IPv6 outer with a fragment header in front of UDP.
  Bytes v6 =
      sealed_by_a(*keep(DpNode::load("node-a-v6fabric.textproto")), {sleep_to_httpbin1(1)})[0];
  Bytes l3 = l3_of(v6);
  Bytes frag = {kProtoUdp, 0, 0, 1, 0, 0, 0, 42};  // offset 0, M=1, id 42
  l3.insert(l3.begin() + 40, frag.begin(), frag.end());
  l3[6] = kProtoFrag6;
  wr16(&l3[4], uint16_t(l3.size() - 40));
  Bytes v6frag = eth_ip(kBFabricMac, kAFabricMac, l3);
  Out o = b->inbound({mf, off, v6frag});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "outer_fragment=3");
  EXPECT_EQ(b->inbound(f).local.size(), 1u);
}

TEST_F(DpTest, FabricPacketNotForThisNode) {
  Bytes f = sealed_by_a(*a, {sleep_to_httpbin1(0)})[0];
  Bytes mac_x = f, ip_x = f;
  std::copy(kAFabricMac.b.begin(), kAFabricMac.b.end(), mac_x.begin());  // to node-a's MAC
  ip_x[kEth + 19] = 3;                                                   // to 172.16.0.3
  Bytes l3 = l3_of(ip_x);
  fix_ipv4_checksum(l3);
  std::copy(l3.begin(), l3.end(), ip_x.begin() + kEth);
  Out o = b->inbound({mac_x, ip_x});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "not_for_us=2");
}

TEST_F(DpTest, FabricPacketThatIsNotEsp) {
  Bytes esp = seal(*make_sa(kSaAB), pattern(40));
  OuterHdr o{kAFabricMac, kBFabricMac, kAFabric4, kBFabric4, 49152, 53};
  Bytes dns = fabric_frame(o, esp);  // UDP, but not port 4500
  Bytes tcp_frame = eth_ip(kBFabricMac, kAFabricMac, tcp(ip_hdr(kAFabric4, kBFabric4), 4500, 4500));
  Bytes keepalive = fabric_a_to_b({0xff});  // RFC 3948 NAT keepalive
  Bytes ike = fabric_a_to_b(Bytes(40, 0));  // non-ESP marker: SPI 0
  Bytes arp_frame = arp(kArpRequest, kAFabricMac, kAFabric4, MacAddr{}, kBFabric4, &kBFabricMac);
  Out out = b->inbound({dns, tcp_frame, keepalive, ike, arp_frame});
  EXPECT_TRUE(out.local.empty());
  EXPECT_EQ(b->drops(), "not_esp=5");
}

TEST_F(DpTest, MalformedOuterHeadersAreParseErrors) {
  Bytes f = sealed_by_a(*a, {sleep_to_httpbin1(0)})[0];
  std::vector<Bytes> bad(4, f);
  bad[0][kEth] = 0x55;                                               // IPv4 ethertype, version 5
  bad[1][kEth] = 0x44;                                               // IHL 4
  wr16(&bad[2][kEth + 20 + 4], 7);                                   // UDP length < 8
  wr16(&bad[3][kEth + 20 + 4], uint16_t(f.size() - kEth - 20 + 1));  // UDP past the IP packet
  for (Bytes& x : bad) {
    Bytes l3 = l3_of(x);
    if ((l3[0] & 0xf) >= 5) fix_ipv4_checksum(l3);
    std::copy(l3.begin(), l3.end(), x.begin() + kEth);
  }
  Out o = b->inbound(bad);
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "parse_error=4");
}

// RFC 1122 3.2.1.2: the outer IPv4 header checksum is verified (the port's verdict when it gives
// one), before the destination and the SPI are looked at.
TEST_F(DpTest, BadOuterIpv4ChecksumIsDropped) {
  std::vector<Bytes> f = sealed_by_a(*a, {sleep_to_httpbin1(0), sleep_to_httpbin1(1)});
  Bytes bad_sum = f[0], bad_ttl = f[0], bad_dst = f[0];
  bad_sum[kEth + 11] ^= 0x01;  // the checksum itself
  bad_ttl[kEth + 8] ^= 0x10;   // TTL changed, checksum not updated
  bad_dst[kEth + 19] ^= 0x02;  // another destination, checksum not updated
  Out o = b->inbound({bad_sum, bad_ttl, bad_dst});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "bad_ip_checksum=3");
  EXPECT_EQ(b->ctr.decrypted, 0u) << "dropped before the SA";
  // The port's verdict: BAD drops a right header, GOOD is not summed again.
  rte_mbuf* m1 = to_mbuf(f[0], RTE_MBUF_F_RX_IP_CKSUM_BAD);
  ASSERT_TRUE(m1);
  o = b->run_mbufs({m1}, true);
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(b->drops(), "bad_ip_checksum=4");
  rte_mbuf* m2 = to_mbuf(bad_sum, RTE_MBUF_F_RX_IP_CKSUM_GOOD);
  ASSERT_TRUE(m2);
  o = b->run_mbufs({m2}, true);
  EXPECT_EQ(o.local.size(), 1u) << b->drops();
  EXPECT_EQ(b->inbound(f[1]).local.size(), 1u);
  EXPECT_EQ(b->drops(), "bad_ip_checksum=4");
}

TEST_F(DpTest, EthernetPaddingAfterTheFabricPacketIsIgnored) {
  // A short fabric packet padded by the link (and arbitrary bytes after the IP packet).
  Bytes inner = udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, {});
  Bytes f = sealed_by_a(*a, {inner})[0];
  f.insert(f.end(), {0xee, 0xee, 0xee, 0xee});
  Out o = b->inbound(f);
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(o.local[0], eth_ip(kHttpbin1.mac, kBLocalMac, dec_ttl(inner)));
}

}  // namespace
// The worker runs a full fabric burst and the next one as a pair, the first's flow lookups spread
// over the second's decryption (Pipeline::inbound_pair). What is delivered, in what order, and
// every counter must be what the same frames give one burst at a time: allowed and denied flows
// (new and cached), IPv4 and IPv6, a forged ICV, a replayed packet, and a new config generation
// that re-decides cached flows.
TEST_F(DpTest, PairedInboundBurstsDeliverExactlyAsSingleBursts) {
  DpNode* single = keep(DpNode::load("node-b.textproto"));
  DpNode* paired = keep(DpNode::load("node-b.textproto"));
  ASSERT_TRUE(single && paired);
  for (unsigned r = 0; r < 6; r++) {
    SCOPED_TRACE("round " + std::to_string(r));
    if (r == 3) {
      ASSERT_TRUE(single->reload(single->cfg));
      ASSERT_TRUE(paired->reload(paired->cfg));
    }
    std::vector<Bytes> plain;
    for (unsigned i = 0; i < 2 * dp::kBurstSize; i++) {
      const uint16_t u = uint16_t(r * 7 + i);
      switch (i % 6) {
        case 0:
        case 1:
          plain.push_back(local_frame(
              *a, kSleep.mac,
              udp(ip_hdr(kSleep, kHttpbin1, false), uint16_t(1000 + u % 20), 7777, pattern(16))));
          break;
        case 2:
          plain.push_back(local_frame(
              *a, kSleep.mac,
              udp(ip_hdr(kSleep, kHttpbin1, true), uint16_t(2000 + i % 5), 7777, pattern(8))));
          break;
        case 3:  // denied at node-b (default/deny-untrusted)
          plain.push_back(local_frame(
              *a, kCurl.mac, tcp(ip_hdr(kCurl, kHttpbin1, false), uint16_t(3000 + i % 4), 80)));
          break;
        case 4:
          plain.push_back(local_frame(
              *a, kSleep.mac,
              tcp(ip_hdr(kSleep, kPostgres, false), uint16_t(33000 + u % 7), 5432, kTcpAck)));
          break;
        default:  // denied: port 22
          plain.push_back(local_frame(
              *a, kSleep.mac, tcp(ip_hdr(kSleep, kPostgres, false), uint16_t(33100 + i % 3), 22)));
      }
    }
    std::vector<Bytes> fabric = a->outbound(plain).fabric;
    ASSERT_EQ(fabric.size(), plain.size()) << a->drops();
    fabric[5].back() ^= 1;   // a forged ICV
    fabric[40] = fabric[9];  // a replay
    Out want = single->inbound(fabric);
    Out got = paired->inbound_pairs(fabric);
    EXPECT_EQ(got.local, want.local);
    EXPECT_EQ(got.fabric, want.fabric);
    EXPECT_FALSE(want.local.empty());
  }
  EXPECT_EQ(paired->drops(), single->drops());
  EXPECT_NE(single->drops().find("authz_denied"), std::string::npos) << single->drops();
  EXPECT_NE(single->drops().find("replay"), std::string::npos) << single->drops();
  EXPECT_EQ(paired->ctr.flow_hits, single->ctr.flow_hits);
  EXPECT_EQ(paired->ctr.flow_misses, single->ctr.flow_misses);
  EXPECT_EQ(paired->ctr.flows_created, single->ctr.flows_created);
  EXPECT_EQ(paired->ctr.authz_checks, single->ctr.authz_checks);
  EXPECT_EQ(paired->ctr.delivered, single->ctr.delivered);
  EXPECT_GT(single->ctr.flow_hits, 100u);
  EXPECT_EQ(paired->flows->size(), single->flows->size());
}

}  // namespace vanish::test
