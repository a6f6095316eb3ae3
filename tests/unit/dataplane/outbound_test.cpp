// Outbound fixtures (node-a, packets from the local port): encapsulation bytes, classification
// verdicts, flow cache, TTL, MTU/fragmentation, hairpin.
#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include <set>
#include <tuple>

#include "ctl/model.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace vanish::test {
namespace {

using namespace mesh;
using dp::DropReason;

uint32_t identity_of(const Workload& w) {
  return ctl::identity_id_for(w.principal).value;
}

// ---- encapsulation: every byte of the fabric frame ------------------------------------------

struct EncapCase {
  L4 proto;
  bool v6;         // overlay (inner) family
  bool fabric_v6;  // outer family
};
std::string encap_name(const ::testing::TestParamInfo<EncapCase>& i) {
  return std::string(l4_name(i.param.proto)) + (i.param.v6 ? "_v6" : "_v4") +
         (i.param.fabric_v6 ? "_fabric6" : "_fabric4");
}

class OutboundEncap : public DpTest, public ::testing::WithParamInterface<EncapCase> {};

TEST_P(OutboundEncap, SleepToHttpbin1) {
  const EncapCase c = GetParam();
  DpNode* n = c.fabric_v6 ? keep(DpNode::load("node-a-v6fabric.textproto")) : a.get();
  ASSERT_TRUE(n);
  std::vector<Bytes> in, frames;
  for (unsigned i = 0; i < 3; i++) {
    in.push_back(flow_packet(c.proto, ip_hdr(kSleep, kHttpbin1, c.v6), i, 60 + i));
    frames.push_back(local_frame(*n, kSleep.mac, in.back()));
  }
  Out o = n->outbound(frames);
  EXPECT_EQ(n->drops(), "");
  EXPECT_TRUE(o.local.empty());
  ASSERT_EQ(o.fabric.size(), 3u);
  EXPECT_EQ(n->ctr.encrypted, 3u);
  EXPECT_EQ(n->ctr.local_rx, 3u);
  EXPECT_EQ(n->ctr.flow_misses, 1u);
  EXPECT_EQ(n->ctr.flow_hits, 2u);

  const uint32_t id = identity_of(kSleep);
  for (unsigned i = 0; i < 3; i++) {
    SCOPED_TRACE("packet " + std::to_string(i));
    const Bytes& f = o.fabric[i];
    FabricPacket fp;
    ASSERT_TRUE(decode_fabric(f, kSaAB, &fp)) << hex(f);
    // Outer Ethernet + IP + UDP.
    EXPECT_EQ(fp.eth_src, kAFabricMac);
    EXPECT_EQ(fp.eth_dst, kBFabricMac);
    EXPECT_EQ(fp.outer_v6, c.fabric_v6);
    EXPECT_EQ(f.size(), kEth + dp::encap_outer_ip_len(c.fabric_v6, in[i].size()));
    if (!c.fabric_v6) {
      EXPECT_EQ(fp.outer_src, kAFabric4);
      EXPECT_EQ(fp.outer_dst, kBFabric4);
      EXPECT_EQ(rd16(fp.outer_ip, 6), 0x4000) << "DF, not a fragment";
      EXPECT_EQ(fp.outer_ip[8], 64) << "TTL";
      EXPECT_EQ(rd16(f, kEth + 20 + 6), 0) << "UDP checksum over IPv4 is zero (RFC 3948)";
    } else {
      EXPECT_EQ(fp.outer_src, kAFabric6);
      EXPECT_EQ(fp.outer_dst, kBFabric6);
      EXPECT_EQ(fp.outer_ip[7], 64) << "hop limit";
      EXPECT_NE(rd16(f, kEth + 40 + 6), 0) << "UDP checksum is mandatory over IPv6";
    }
    EXPECT_EQ(fp.sport, derived_sport(kSaAB.spi));
    EXPECT_EQ(fp.sport, 49152 + 0xa00);
    EXPECT_EQ(fp.dport, 4500);
    // ESP.
    EXPECT_EQ(fp.esp.spi, 0x00000a00u);
    EXPECT_EQ(fp.esp.seq, i + 1);
    EXPECT_EQ(fp.esp.iv, i + 1) << "deterministic fixture IV = the 64-bit sequence number";
    EXPECT_EQ(fp.esp.next_header, kProtoUdp);
    Bytes want_pad;
    for (unsigned k = 1; k <= fp.esp.pad_len; k++) want_pad.push_back(uint8_t(k));
    EXPECT_EQ(fp.esp.padding, want_pad);
    EXPECT_LE(fp.esp.pad_len, 3);
    EXPECT_EQ((fp.esp.payload.size() + fp.esp.pad_len + 2) % 4, 0u);
    // UDP | Geneve | identity option.
    EXPECT_EQ(fp.inner_dport, 6081);
    EXPECT_EQ(fp.inner_sport & 0xC000, 0xC000) << "entropy port in 49152..65535";
    EXPECT_EQ(rd16(fp.esp.payload, 6), 0) << "inner UDP checksum 0 (ESP protects it)";
    EXPECT_EQ(fp.geneve_ver, 0);
    EXPECT_EQ(fp.geneve_optlen, 2);
    EXPECT_EQ(fp.geneve_flags, 0x40) << "C: a critical option is present; O clear";
    EXPECT_EQ(fp.geneve_protocol, c.v6 ? 0x86DD : 0x0800);
    EXPECT_EQ(fp.geneve_options, geneve_identity(id));
    EXPECT_EQ(rd16(fp.geneve_options, 0), 0xFF56);
    EXPECT_EQ(fp.geneve_options[2], 0x81);
    EXPECT_EQ(fp.geneve_options[3], 1);
    EXPECT_EQ(rd32(fp.geneve_options, 4), id);
    // The inner packet: the workload's packet, one router hop later.
    EXPECT_EQ(fp.inner, dec_ttl(in[i]));
    EXPECT_TRUE(ipv4_header_ok(fp.inner));
    EXPECT_TRUE(l4_checksum_ok(fp.inner));
    // Golden bytes: the whole frame rebuilt independently (OpenSSL seal) is identical.
    Bytes payload =
        geneve_udp(fp.inner_sport, c.v6 ? kEthIpv6 : kEthIpv4, geneve_identity(id), dec_ttl(in[i]));
    Bytes want = c.fabric_v6 ? fabric_a_to_b(esp_seal_ref(kSaAB, i + 1, payload), true)
                             : fabric_a_to_b(esp_seal_ref(kSaAB, i + 1, payload), false);
    EXPECT_EQ(f, want) << "got\n" << hex(f) << "\nwant\n" << hex(want);
  }
  // One flow: the entropy port is the same for every packet of it.
  FabricPacket p0, p2;
  ASSERT_TRUE(decode_fabric(o.fabric[0], kSaAB, &p0));
  ASSERT_TRUE(decode_fabric(o.fabric[2], kSaAB, &p2));
  EXPECT_EQ(p0.inner_sport, p2.inner_sport);
}

std::vector<EncapCase> all_encap_cases() {
  std::vector<EncapCase> v;
  for (L4 p : {L4::kUdp, L4::kTcp, L4::kIcmp})
    for (bool v6 : {false, true})
      for (bool f6 : {false, true}) v.push_back({p, v6, f6});
  return v;
}
INSTANTIATE_TEST_SUITE_P(All, OutboundEncap, ::testing::ValuesIn(all_encap_cases()), encap_name);

TEST_F(DpTest, ProductionIvsAreMaskedUniqueAndInteroperable) {
  // As vanishd compiles it: IV = seq ^ a random per-SA mask (never the bare counter), one per
  // packet; the reference opens it and node-b delivers it.
  DpNode* n = keep(DpNode::make(load_example("node-a.textproto"), /*deterministic_iv=*/false));
  ASSERT_TRUE(n);
  std::vector<Bytes> in, frames;
  for (unsigned i = 0; i < 4; i++) {
    in.push_back(udp(ip_hdr(kSleep, kHttpbin1, i % 2), 1, 2, pattern(30, uint8_t(i))));
    frames.push_back(local_frame(*n, kSleep.mac, in.back()));
  }
  Out o = n->outbound(frames);
  ASSERT_EQ(o.fabric.size(), 4u);
  std::set<uint64_t> ivs, masks;
  for (unsigned i = 0; i < 4; i++) {
    FabricPacket fp;
    ASSERT_TRUE(decode_fabric(o.fabric[i], kSaAB, &fp));
    EXPECT_EQ(fp.esp.seq, i + 1);
    EXPECT_EQ(fp.inner, dec_ttl(in[i]));
    ivs.insert(fp.esp.iv);
    masks.insert(fp.esp.iv ^ fp.esp.seq);
  }
  EXPECT_EQ(ivs.size(), 4u) << "an IV is never reused";
  ASSERT_EQ(masks.size(), 1u) << "IV = seq ^ one mask per SA";
  EXPECT_NE(*masks.begin(), 0u);
  Out d = b->inbound(o.fabric);
  ASSERT_EQ(d.local.size(), 4u);
  for (unsigned i = 0; i < 4; i++)
    EXPECT_EQ(d.local[i], eth_ip(kHttpbin1.mac, kBLocalMac, dec_ttl(in[i])));
}

TEST_F(DpTest, EncapIdentityFollowsTheSource) {
  // curl-untrusted's packets carry its own identity (and the policy is not node-a's business).
  Bytes in = udp(ip_hdr(kCurl, kHttpbin2, false), 1234, 80, pattern(10));
  Out o = a->outbound(local_frame(*a, kCurl.mac, in));
  ASSERT_EQ(o.fabric.size(), 1u);
  FabricPacket fp;
  ASSERT_TRUE(decode_fabric(o.fabric[0], kSaAB, &fp));
  EXPECT_EQ(fp.geneve_options, geneve_identity(identity_of(kCurl)));
  EXPECT_NE(identity_of(kCurl), identity_of(kSleep));
  EXPECT_EQ(fp.inner, dec_ttl(in));
}

TEST_F(DpTest, EncapSequenceIsPerSaAcrossFlows) {
  std::vector<Bytes> frames;
  for (unsigned i = 0; i < 40; i++)  // more than one burst, several flows
    frames.push_back(local_frame(*a, kSleep.mac,
                                 udp(ip_hdr(kSleep, i % 2 ? kHttpbin1 : kPostgres, i % 3 == 0),
                                     uint16_t(1000 + i % 5), 53, pattern(i))));
  Out o = a->outbound(frames);
  ASSERT_EQ(o.fabric.size(), 40u);
  for (unsigned i = 0; i < 40; i++) {
    FabricPacket fp;
    ASSERT_TRUE(decode_fabric(o.fabric[i], kSaAB, &fp));
    EXPECT_EQ(fp.esp.seq, i + 1);
    EXPECT_EQ(fp.inner, dec_ttl(l3_of(frames[i])));
  }
  EXPECT_EQ(a->ctr.encrypted, 40u);
  std::set<std::tuple<bool, bool, unsigned>> flows;
  for (unsigned i = 0; i < 40; i++) flows.insert({i % 2 == 1, i % 3 == 0, i % 5});
  EXPECT_EQ(a->ctr.flows_created, flows.size());
}

TEST_F(DpTest, EthernetPaddingIsNotEncrypted) {
  // A 28-byte IPv4 packet arrives padded to the 60-byte Ethernet minimum.
  Bytes in = udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, {});
  Bytes f = local_frame(*a, kSleep.mac, in);
  f.resize(60, 0xee);
  Out o = a->outbound(f);
  ASSERT_EQ(o.fabric.size(), 1u);
  FabricPacket fp;
  ASSERT_TRUE(decode_fabric(o.fabric[0], kSaAB, &fp));
  EXPECT_EQ(fp.inner, dec_ttl(in));
}

// ---- classification verdicts ----------------------------------------------------------------

TEST_F(DpTest, UnknownSourceIsDropped) {
  Out o = a->outbound({
      local_frame(*a, mac("02:00:00:aa:00:99"),
                  udp(ip_hdr(ip("10.1.0.99"), kHttpbin1.v4), 1, 2, pattern(8))),
      local_frame(*a, mac("02:00:00:aa:00:99"),
                  udp(ip_hdr(ip("fd00:10:1::99"), kHttpbin1.v6), 1, 2, pattern(8))),
  });
  EXPECT_TRUE(o.local.empty());
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "unknown_source=2");
  EXPECT_EQ(a->ctr.encrypted, 0u);
}

TEST_F(DpTest, SourceHostedByAnotherNodeIsUnknown) {
  // scenario.md case 6 at the sender: node-a does not speak for httpbin-2.
  Out o = a->outbound(
      local_frame(*a, kSleep.mac, udp(ip_hdr(kHttpbin2, kHttpbin1, false), 1, 2, pattern(8))));
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "unknown_source=1");
}

TEST_F(DpTest, DestinationNotAWorkloadIsNoRoute) {
  Out o = a->outbound({
      local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep.v4, ip("10.2.0.99")), 1, 2, pattern(8))),
      local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep.v4, ip("8.8.8.8")), 1, 2, pattern(8))),
      local_frame(*a, kSleep.mac, tcp(ip_hdr(kSleep.v6, ip("fd00:10:2::99")), 1, 2)),
  });
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "no_route=3");
}

TEST_F(DpTest, FlowCacheSecondPacketIsAHit) {
  Bytes f = local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 5, 6, pattern(8)));
  a->outbound(f);
  EXPECT_EQ(a->ctr.flow_misses, 1u);
  EXPECT_EQ(a->ctr.flows_created, 1u);
  EXPECT_EQ(a->ctr.flow_hits, 0u);
  Out o = a->outbound(f);
  EXPECT_EQ(o.fabric.size(), 1u);
  EXPECT_EQ(a->ctr.flow_misses, 1u);
  EXPECT_EQ(a->ctr.flow_hits, 1u);
  EXPECT_EQ(a->flows->size(), 1u);
  // Within one burst: the first packet creates the entry, the second finds it.
  Bytes g = local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, true), 5, 6, pattern(8)));
  o = a->outbound({g, g});
  EXPECT_EQ(o.fabric.size(), 2u);
  EXPECT_EQ(a->ctr.flow_misses, 2u);
  EXPECT_EQ(a->ctr.flow_hits, 2u);
  EXPECT_EQ(a->ctr.flows_created, 2u);
  EXPECT_EQ(a->drops(), "");
}

TEST_F(DpTest, FlowCacheKeepsDropVerdicts) {
  Bytes f =
      local_frame(*a, kSleep.mac, udp(ip_hdr(ip("10.1.0.99"), kHttpbin1.v4), 5, 6, pattern(8)));
  a->outbound({f, f});
  a->outbound(f);
  EXPECT_EQ(a->drops(), "unknown_source=3");
  EXPECT_EQ(a->ctr.flow_misses, 1u);
  EXPECT_EQ(a->ctr.flow_hits, 2u);
}

TEST_F(DpTest, PeerWithoutSaFailsClosed) {
  DpNode* n = keep(DpNode::load("node-a.textproto", [](config::Config& c) {
    auto* sas = c.mutable_static_sas();
    for (int i = sas->size() - 1; i >= 0; i--)
      if (sas->Get(i).from_node() == "node-a") sas->DeleteSubrange(i, 1);
  }));
  ASSERT_TRUE(n);
  Out o = n->outbound({
      local_frame(*n, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(8))),
      local_frame(*n, kSleep.mac, icmp_echo(ip_hdr(kSleep, kHttpbin1, true), true, 1, 1)),
      local_frame(*n, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(8))),
  });
  EXPECT_TRUE(o.fabric.empty()) << "never in the clear";
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(n->drops(), "no_sa=3");
  EXPECT_EQ(n->ctr.encrypted, 0u);
  // Hairpin traffic does not need an SA.
  o = n->outbound(local_frame(*n, kSleep.mac, udp(ip_hdr(kSleep, kCurl, false), 1, 2, pattern(8))));
  EXPECT_EQ(o.local.size(), 1u);
}

TEST_F(DpTest, EncapWithoutSaObjectFailsClosed) {
  // Defence in depth: a snapshot that marks the peer reachable but has no SA object for this
  // worker still never sends in the clear (EspEncap drops no_sa).
  a->snap->peer_tx[1].sa[0] = nullptr;
  Out o = a->outbound(
      local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(8))));
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "no_sa=1");
}

TEST_F(DpTest, ExhaustedSequenceSpaceDrops) {
  crypto::EspSa* sa = a->snap->peer_tx[1].sa[0];
  ASSERT_TRUE(sa);
  sa->set_next_seq(UINT64_MAX);  // the last usable sequence number (ESN)
  Bytes f = local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(8)));
  Out o = a->outbound({f, f});
  ASSERT_EQ(o.fabric.size(), 1u);
  const Bytes& g = o.fabric[0];
  size_t off = esp_offset(g);
  auto esp = esp_open_ref(kSaAB, g.data() + off, g.size() - off, true, /*seq_hi=*/0xffffffff);
  ASSERT_TRUE(esp) << "ESN: the high 32 bits are in the AAD, not on the wire";
  EXPECT_EQ(esp->seq, 0xffffffffu);
  EXPECT_EQ(esp->iv, UINT64_MAX);
  EXPECT_EQ(a->drops(), "seq_exhausted=1") << "never wraps";
}

// ---- TTL -------------------------------------------------------------------------------------

TEST_F(DpTest, Ttl1GetsTimeExceeded) {
  Bytes in = udp(ip_hdr(kSleep, kHttpbin1, false, 1), 33434, 33434, pattern(20));
  Out o = a->outbound(local_frame(*a, kSleep.mac, in));
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(a->drops(), "ttl_expired=1");
  EXPECT_EQ(a->ctr.icmp_errors_sent, 1u);
  // Exact reply: Eth to the sender, IPv4 10.1.0.1 -> 10.1.0.10 TTL 64, ICMP 11/0 quoting the
  // packet as received.
  Bytes icmp = {11, 0, 0, 0, 0, 0, 0, 0};
  icmp.insert(icmp.end(), in.begin(), in.end());
  wr16(&icmp[2], inet_checksum(icmp.data(), icmp.size()));
  IpHdr h = ip_hdr(kAGw4, kSleep.v4, 64);
  h.id = 0;
  h.df = false;
  Bytes want = eth_ip(kSleep.mac, kALocalMac, ip_packet(h, kProtoIcmp, icmp));
  EXPECT_EQ(o.local[0], want) << hex(o.local[0]);
  Bytes r = l3_of(o.local[0]);
  EXPECT_TRUE(ipv4_header_ok(r));
  EXPECT_TRUE(l4_checksum_ok(r));
}

TEST_F(DpTest, Ttl0AlsoExpires) {
  Out o = a->outbound(local_frame(*a, kSleep.mac, tcp(ip_hdr(kSleep, kHttpbin1, false, 0), 1, 2)));
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(a->drops(), "ttl_expired=1");
}

TEST_F(DpTest, HopLimit1GetsIcmpv6TimeExceeded) {
  Bytes in = udp(ip_hdr(kSleep, kHttpbin1, true, 1), 33434, 33434, pattern(20));
  Out o = a->outbound(local_frame(*a, kSleep.mac, in));
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(a->drops(), "ttl_expired=1");
  Bytes icmp = {3, 0, 0, 0, 0, 0, 0, 0};
  icmp.insert(icmp.end(), in.begin(), in.end());
  IpHdr h = ip_hdr(kAGw6, kSleep.v6, 64);
  Bytes want_ip = ip_packet(h, kProtoIcmp6, icmp);
  wr16(&want_ip[40 + 2],
       inet_checksum(icmp.data(), icmp.size(),
                     pseudo_header_sum(kAGw6, kSleep.v6, kProtoIcmp6, icmp.size())));
  EXPECT_EQ(o.local[0], eth_ip(kSleep.mac, kALocalMac, want_ip)) << hex(o.local[0]);
  EXPECT_TRUE(l4_checksum_ok(l3_of(o.local[0])));
}

TEST_F(DpTest, TtlDecrementChecksumMatchesRecomputation) {
  // Every IPv4 header checksum value (by sweeping the id): the incrementally updated checksum
  // equals the one computed from scratch. RFC 1624 eqn. 3 does; the RFC 1141 shortcut
  // (HC + 0x0100) yields 0xFFFF where recomputation gives 0x0000.
  std::vector<Bytes> in, frames;
  for (uint32_t id = 0; id < 65536; id++) {
    IpHdr h = ip_hdr(kSleep, kCurl, false);  // hairpin: no crypto needed to see the header
    h.id = uint16_t(id);
    in.push_back(udp(h, 1, 2, {}));
    frames.push_back(local_frame(*a, kSleep.mac, in.back()));
  }
  Out o = a->outbound(frames);
  ASSERT_EQ(o.local.size(), in.size());
  size_t bad = 0;
  for (size_t i = 0; i < in.size(); i++) {
    Bytes got = l3_of(o.local[i]);
    if (got == dec_ttl(in[i])) continue;
    if (bad++ < 3)
      ADD_FAILURE() << "id " << i << ": checksum " << std::hex << rd16(got, 10) << " want "
                    << rd16(dec_ttl(in[i]), 10) << " (input " << rd16(in[i], 10) << ")";
  }
  EXPECT_EQ(bad, 0u);
}

TEST_F(DpTest, Ttl2IsForwardedWithTtl1) {
  Bytes in = udp(ip_hdr(kSleep, kHttpbin1, false, 2), 1, 2, pattern(20));
  Out o = a->outbound(local_frame(*a, kSleep.mac, in));
  ASSERT_EQ(o.fabric.size(), 1u);
  FabricPacket fp;
  ASSERT_TRUE(decode_fabric(o.fabric[0], kSaAB, &fp));
  EXPECT_EQ(ip_ttl(fp.inner), 1);
  EXPECT_EQ(fp.inner, dec_ttl(in));
}

TEST_F(DpTest, NoIcmpErrorAboutAnIcmpError) {
  // An expiring ICMP destination-unreachable is dropped silently (RFC 1812 4.3.2.7).
  Bytes err = {3, 3, 0, 0, 0, 0, 0, 0};
  Bytes quoted = udp(ip_hdr(kHttpbin1, kSleep, false), 1, 2, {});
  err.insert(err.end(), quoted.begin(), quoted.end());
  wr16(&err[2], inet_checksum(err.data(), err.size()));
  Out o = a->outbound(
      local_frame(*a, kSleep.mac, ip_packet(ip_hdr(kSleep, kHttpbin1, false, 1), 1, err)));
  EXPECT_TRUE(o.local.empty());
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "ttl_expired=1");
  EXPECT_EQ(a->ctr.icmp_errors_sent, 0u);
}

TEST_F(DpTest, IcmpErrorsAreRateLimited) {
  std::vector<Bytes> frames;
  for (unsigned i = 0; i < 150; i++)
    frames.push_back(local_frame(
        *a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false, 1), uint16_t(i), 2, pattern(8))));
  Out o = a->outbound(frames);  // bursts of 32 within microseconds: the bucket holds 100
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drop(DropReason::kTtlExpired), 150u);
  EXPECT_GE(a->drop(DropReason::kIcmpRateLimited), 40u);
  EXPECT_EQ(o.local.size() + a->drop(DropReason::kIcmpRateLimited), 150u);
  EXPECT_EQ(a->ctr.icmp_errors_sent, o.local.size());
}

// ---- MTU -------------------------------------------------------------------------------------

// An IP packet of exactly `len` bytes (UDP) from sleep to httpbin-1.
Bytes sized_udp(size_t len, bool v6, bool df = true) {
  IpHdr h = ip_hdr(kSleep, kHttpbin1, v6);
  h.df = df;
  size_t hdr = (v6 ? 40 : 20) + 8;
  return udp(h, 4000, 5000, pattern(len - hdr, 3));
}

TEST_F(DpTest, MtuLimitsFollowTheEncapsulation) {
  EXPECT_EQ(dp::max_inner_len(false, 1500), 1414u);
  EXPECT_EQ(dp::max_inner_len(true, 1500), 1394u);
  EXPECT_EQ(dp::encap_outer_ip_len(false, 1414), 1500u);
  EXPECT_GT(dp::encap_outer_ip_len(false, 1415), 1500u);
  EXPECT_EQ(dp::encap_outer_ip_len(true, 1394), 1500u);
  EXPECT_GT(dp::encap_outer_ip_len(true, 1395), 1500u);
  for (size_t mtu = 576; mtu <= 9000; mtu++)
    for (bool v6 : {false, true}) {
      size_t m = dp::max_inner_len(v6, mtu);
      ASSERT_LE(dp::encap_outer_ip_len(v6, m), mtu) << mtu;
      ASSERT_GT(dp::encap_outer_ip_len(v6, m + 1), mtu) << mtu;
    }
}

TEST_F(DpTest, PacketExactlyAtTheLimitPasses) {
  const size_t lim = dp::max_inner_len(false, 1500);
  for (bool v6 : {false, true}) {
    Bytes in = sized_udp(lim, v6);
    ASSERT_EQ(in.size(), lim);
    Out o = a->outbound(local_frame(*a, kSleep.mac, in));
    ASSERT_EQ(o.fabric.size(), 1u);
    EXPECT_EQ(o.fabric[0].size(), kEth + 1500u) << "outer IP packet fills the fabric MTU";
    FabricPacket fp;
    ASSERT_TRUE(decode_fabric(o.fabric[0], kSaAB, &fp));
    EXPECT_EQ(fp.inner, dec_ttl(in));
  }
  EXPECT_EQ(a->drops(), "");
}

TEST_F(DpTest, PacketExactlyAtTheLimitPassesOverIpv6Fabric) {
  DpNode* n = keep(DpNode::load("node-a-v6fabric.textproto"));
  ASSERT_TRUE(n);
  const size_t lim = dp::max_inner_len(true, 1500);
  Out o = n->outbound(local_frame(*n, kSleep.mac, sized_udp(lim, false)));
  ASSERT_EQ(o.fabric.size(), 1u);
  EXPECT_EQ(o.fabric[0].size(), kEth + 1500u);
  o = n->outbound(local_frame(*n, kSleep.mac, sized_udp(lim + 1, true)));
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  Bytes r = l3_of(o.local[0]);
  EXPECT_EQ(r[40], 2) << "Packet Too Big";
  EXPECT_EQ(rd32(r, 44), lim);
  EXPECT_EQ(n->drops(), "mtu_exceeded=1");
}

TEST_F(DpTest, Ipv4DfTooBigGetsFragNeeded) {
  const size_t lim = dp::max_inner_len(false, 1500);
  Bytes in = sized_udp(lim + 1, false);
  Out o = a->outbound(local_frame(*a, kSleep.mac, in));
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(a->drops(), "mtu_exceeded=1");
  EXPECT_EQ(a->ctr.icmp_errors_sent, 1u);
  const Bytes& f = o.local[0];
  EXPECT_EQ(eth_dst(f), kSleep.mac);
  EXPECT_EQ(eth_src(f), kALocalMac);
  Bytes r = l3_of(f);
  EXPECT_TRUE(ipv4_header_ok(r));
  EXPECT_TRUE(l4_checksum_ok(r));
  EXPECT_EQ(ip_src(r), kAGw4);
  EXPECT_EQ(ip_dst(r), kSleep.v4);
  EXPECT_EQ(r[20], 3) << "destination unreachable";
  EXPECT_EQ(r[21], 4) << "fragmentation needed and DF set";
  EXPECT_EQ(rd16(r, 24), 0) << "unused";
  EXPECT_EQ(rd16(r, 26), lim) << "next-hop MTU (RFC 1191)";
  // Quote: as much as fits a 576-byte datagram, of the packet as it was forwarded (TTL - 1).
  EXPECT_EQ(r.size(), 576u);
  Bytes fwd = dec_ttl(in);
  EXPECT_EQ(Bytes(r.begin() + 28, r.end()), Bytes(fwd.begin(), fwd.begin() + 548));
}

TEST_F(DpTest, Ipv6TooBigGetsPacketTooBig) {
  const size_t lim = dp::max_inner_len(false, 1500);
  Bytes in = sized_udp(lim + 1, true);
  Out o = a->outbound(local_frame(*a, kSleep.mac, in));
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(a->drops(), "mtu_exceeded=1");
  Bytes r = l3_of(o.local[0]);
  EXPECT_EQ(eth_dst(o.local[0]), kSleep.mac);
  EXPECT_EQ(ip_src(r), kAGw6);
  EXPECT_EQ(ip_dst(r), kSleep.v6);
  EXPECT_EQ(r[7], 64);
  EXPECT_EQ(r[40], 2);
  EXPECT_EQ(r[41], 0);
  EXPECT_EQ(rd32(r, 44), lim);
  EXPECT_TRUE(l4_checksum_ok(r));
  EXPECT_EQ(r.size(), 1280u) << "quote fills the IPv6 minimum MTU";
  Bytes fwd = dec_ttl(in);
  EXPECT_EQ(Bytes(r.begin() + 48, r.end()), Bytes(fwd.begin(), fwd.begin() + 1232));
}

void check_fragments(DpNode& n, bool fabric_v6, size_t len) {
  Bytes in = sized_udp(len, false, /*df=*/false);
  Out o = n.outbound(local_frame(n, kSleep.mac, in));
  EXPECT_EQ(n.drops(), "");
  EXPECT_TRUE(o.local.empty());
  const size_t lim = dp::max_inner_len(fabric_v6, 1500);
  size_t chunk = (lim - 20) / 8 * 8;
  size_t want_n = (len - 20 + chunk - 1) / chunk;
  ASSERT_EQ(o.fabric.size(), want_n);
  EXPECT_EQ(n.ctr.fragments_made, want_n);
  EXPECT_EQ(n.ctr.encrypted, want_n);
  std::vector<Bytes> frags;
  for (size_t i = 0; i < o.fabric.size(); i++) {
    FabricPacket fp;
    ASSERT_TRUE(decode_fabric(o.fabric[i], kSaAB, &fp));
    EXPECT_LE(o.fabric[i].size(), kEth + 1500);
    EXPECT_EQ(fp.esp.seq, i + 1) << "each fragment is its own ESP packet";
    EXPECT_EQ(fp.geneve_options, geneve_identity(identity_of(kSleep)));
    EXPECT_TRUE(ipv4_header_ok(fp.inner));
    EXPECT_LE(fp.inner.size(), lim);
    EXPECT_EQ(rd16(fp.inner, 4), rd16(in, 4)) << "fragments keep the datagram id";
    frags.push_back(fp.inner);
  }
  auto whole = ipv4_reassemble(frags);
  ASSERT_TRUE(whole) << "fragments do not reassemble";
  EXPECT_EQ(*whole, dec_ttl(in));
}

TEST_F(DpTest, Ipv4WithoutDfIsFragmentedThenEncrypted) {
  check_fragments(*a, false, 2000);
}
TEST_F(DpTest, Ipv4WithoutDfOneOverTheLimit) {
  check_fragments(*a, false, 1415);
}
TEST_F(DpTest, Ipv4WithoutDfOverIpv6Fabric) {
  DpNode* n = keep(DpNode::load("node-a-v6fabric.textproto"));
  ASSERT_TRUE(n);
  check_fragments(*n, true, 2000);
}

TEST_F(DpTest, FragmentsAreRefragmentedKeepingTheirOffsets) {
  // A workload's own fragments that are too big for the tunnel: the pieces keep the original
  // offset base and MF, so the destination reassembles the workload's datagram.
  IpHdr h = ip_hdr(kSleep, kHttpbin1, false);
  h.df = false;
  const Bytes data = pattern(1600, 9);
  Bytes last = ip_packet(h, kProtoUdp, data);
  wr16(&last[6], 185);  // offset 185 * 8 = 1480, MF = 0
  fix_ipv4_checksum(last);
  Bytes first = ip_packet(h, kProtoUdp, data);
  wr16(&first[6], 0x2000);  // offset 0, MF = 1
  fix_ipv4_checksum(first);
  Out o = a->outbound({local_frame(*a, kSleep.mac, last), local_frame(*a, kSleep.mac, first)});
  EXPECT_EQ(a->drops(), "");
  ASSERT_EQ(o.fabric.size(), 4u);
  std::vector<Bytes> inner;
  for (const Bytes& f : o.fabric) {
    FabricPacket fp;
    ASSERT_TRUE(decode_fabric(f, kSaAB, &fp));
    EXPECT_TRUE(ipv4_header_ok(fp.inner));
    EXPECT_EQ(fp.inner[8], 63);
    inner.push_back(fp.inner);
  }
  // Pieces of `last`: offsets 185 and 185 + 1392/8, MF only on the first.
  EXPECT_EQ(rd16(inner[0], 6), 0x2000 | 185);
  EXPECT_EQ(rd16(inner[1], 6), 185 + 174);
  // Pieces of `first`: MF on both.
  EXPECT_EQ(rd16(inner[2], 6), 0x2000);
  EXPECT_EQ(rd16(inner[3], 6), 0x2000 | 174);
  Bytes payload;
  for (size_t i : {2, 3, 0, 1})
    payload.insert(payload.end(), inner[i].begin() + 20, inner[i].end());
  Bytes want = data;
  want.insert(want.end(), data.begin(), data.end());
  EXPECT_EQ(payload, want);
}

TEST_F(DpTest, Ipv4WithoutDfThatFitsIsNotFragmented) {
  Bytes in = sized_udp(1414, false, false);
  Out o = a->outbound(local_frame(*a, kSleep.mac, in));
  ASSERT_EQ(o.fabric.size(), 1u);
  EXPECT_EQ(a->ctr.fragments_made, 0u);
}

// ---- resource exhaustion ---------------------------------------------------------------------

// A second mbuf pool for ctx.pool (replies, ICMP errors, fragments) with `free_n` mbufs left.
class TinyPool {
 public:
  explicit TinyPool(unsigned free_n) {
    static unsigned seq = 0;
    pool_ = rte_pktmbuf_pool_create(("fix_tiny_" + std::to_string(seq++)).c_str(), 8, 0, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    while (pool_ && rte_mempool_avail_count(pool_) > free_n)
      held_.push_back(rte_pktmbuf_alloc(pool_));
  }
  ~TinyPool() {
    for (rte_mbuf* m : held_) rte_pktmbuf_free(m);
    EXPECT_EQ(rte_mempool_in_use_count(pool_), 0u) << "tiny pool: mbufs leaked";
    rte_mempool_free(pool_);
  }
  rte_mempool* get() const { return pool_; }

 private:
  rte_mempool* pool_ = nullptr;
  std::vector<rte_mbuf*> held_;
};

TEST_F(DpTest, NoMbufForIcmpErrorStillDropsTheExpiredPacket) {
  TinyPool tiny(0);
  ASSERT_TRUE(tiny.get());
  a->ctx.pool = tiny.get();
  Out o = a->outbound(
      local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false, 1), 1, 2, pattern(8))));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "ttl_expired=1 no_mbuf=1");
  a->ctx.pool = pool();
}

TEST_F(DpTest, NoMbufForTheSecondFragmentFreesTheFirst) {
  TinyPool tiny(1);  // room for one fragment of two
  ASSERT_TRUE(tiny.get());
  a->ctx.pool = tiny.get();
  Out o = a->outbound(local_frame(*a, kSleep.mac, sized_udp(2000, false, /*df=*/false)));
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "frag_failed=1 no_mbuf=1");
  EXPECT_EQ(a->ctr.fragments_made, 0u);
  EXPECT_EQ(rte_mempool_avail_count(tiny.get()), 1u) << "the first fragment went back";
  a->ctx.pool = pool();
}

TEST_F(DpTest, NoMbufForASolicitation) {
  DpNode* n = keep(
      DpNode::load("node-a.textproto", [](config::Config& c) { c.mutable_neighbours()->Clear(); }));
  ASSERT_TRUE(n);
  TinyPool tiny(0);
  ASSERT_TRUE(tiny.get());
  n->ctx.pool = tiny.get();
  Out o =
      n->outbound(local_frame(*n, kSleep.mac, udp(ip_hdr(kSleep, kCurl, false), 1, 2, pattern(4))));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(n->drops(), "neighbour_miss=1 no_mbuf=1");
  n->ctx.pool = pool();
}

TEST_F(DpTest, FullFlowTableDropsNewFlowsOnly) {
  dp::FlowTable small("fix_flows_small", 64, SOCKET_ID_ANY);
  ASSERT_TRUE(small.ok());
  a->ctx.flows = &small;
  std::vector<Bytes> frames;
  for (unsigned i = 0; i < 200; i++)
    frames.push_back(local_frame(
        *a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), uint16_t(1000 + i), 2, pattern(4))));
  Out o = a->outbound(frames);
  const uint64_t full = a->drop(DropReason::kFlowTableFull);
  EXPECT_GE(full, 200u - small.capacity());
  EXPECT_EQ(o.fabric.size() + full, 200u);
  EXPECT_EQ(a->ctr.flows_created, o.fabric.size());
  EXPECT_EQ(a->drops(), "flow_table_full=" + std::to_string(full));
  // Established flows keep working.
  o = a->outbound(frames[0]);
  EXPECT_EQ(o.fabric.size(), 1u);
  a->ctx.flows = a->flows.get();
}

TEST_F(DpTest, FullTxBufferDropsAndCounts) {
  // The worker flushes after every burst; if the ring stays full, the excess is counted.
  for (uint16_t i = 0; i < dp::TxBuffer::kCap - 1; i++) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool());
    ASSERT_TRUE(m);
    a->ctx.to_fabric.pkts[a->ctx.to_fabric.n++] = m;
  }
  Bytes f = local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kHttpbin1, false), 1, 2, pattern(4)));
  Out o = a->outbound({f, f, f});
  EXPECT_EQ(o.fabric.size(), size_t(dp::TxBuffer::kCap));
  EXPECT_EQ(a->drops(), "tx_full=2");
  EXPECT_EQ(a->ctr.encrypted, 3u) << "encrypted, then refused by the full TX buffer";
}

// ---- hairpin ---------------------------------------------------------------------------------

TEST_F(DpTest, HairpinStaysOnTheLocalPort) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "v6" : "v4");
    // sleep opens a connection to curl-untrusted (no policy protects namespace untrusted); the
    // reply is recognised as one, although default/deny-untrusted denies untrusted -> default.
    Bytes in = tcp(ip_hdr(kSleep, kCurl, v6), 40000, 80);
    Bytes back = tcp(ip_hdr(kCurl, kSleep, v6), 80, 40000);
    Out o = a->outbound({local_frame(*a, kSleep.mac, in), local_frame(*a, kCurl.mac, back)});
    EXPECT_TRUE(o.fabric.empty()) << "never on the fabric";
    ASSERT_EQ(o.local.size(), 2u);
    EXPECT_EQ(o.local[0], eth_ip(kCurl.mac, kALocalMac, dec_ttl(in)));
    EXPECT_EQ(o.local[1], eth_ip(kSleep.mac, kALocalMac, dec_ttl(back)));
  }
  EXPECT_EQ(a->ctr.hairpinned, 4u);
  EXPECT_EQ(a->ctr.reply_flows, 2u);
  EXPECT_EQ(a->ctr.encrypted, 0u);
  EXPECT_EQ(a->drops(), "");
}

TEST_F(DpTest, HairpinIsAuthorizedAtThisNode) {
  // curl-untrusted -> sleep opens a new connection: default/deny-untrusted applies here.
  for (bool v6 : {false, true}) {
    Bytes in = tcp(ip_hdr(kCurl, kSleep, v6), 41000, 8080);
    Out o = a->outbound({local_frame(*a, kCurl.mac, in), local_frame(*a, kCurl.mac, in)});
    EXPECT_TRUE(o.local.empty());
    EXPECT_TRUE(o.fabric.empty());
  }
  EXPECT_EQ(a->drops(), "authz_denied=4");
  EXPECT_EQ(a->ctr.authz_checks, 2u) << "once per flow, not per packet";
  EXPECT_EQ(a->ctr.authz_denied_flows, 2u);
}

TEST_F(DpTest, HairpinTtl1IsTimeExceeded) {
  Out o = a->outbound(
      local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep, kCurl, false, 1), 1, 2, pattern(4))));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(l3_of(o.local[0])[20], 11);
  EXPECT_EQ(a->drops(), "ttl_expired=1");
  EXPECT_EQ(a->ctr.hairpinned, 0u);
}

TEST_F(DpTest, HairpinToWorkloadWithoutMacSolicits) {
  DpNode* n = keep(DpNode::load("node-a.textproto", [](config::Config& c) {
    c.mutable_neighbours()->Clear();  // no static MACs
  }));
  ASSERT_TRUE(n);
  // Learning from IP traffic: sleep's MAC becomes known by its first packet.
  Out o =
      n->outbound(local_frame(*n, kSleep.mac, udp(ip_hdr(kSleep, kCurl, false), 1, 2, pattern(4))));
  EXPECT_EQ(n->neighbour(kSleep.v4), kSleep.mac);
  EXPECT_EQ(n->drops(), "neighbour_miss=1");
  ASSERT_EQ(o.local.size(), 1u);  // the ARP request for curl-untrusted
  Bytes want_arp = arp(kArpRequest, kALocalMac, kAGw4, MacAddr{}, kCurl.v4);
  want_arp.resize(kEth + 28);  // not padded by the appliance
  EXPECT_EQ(o.local[0], want_arp) << hex(o.local[0]);
  EXPECT_EQ(n->ctr.solicitations_sent, 1u);
  // Rate limited per neighbour: a second miss right after does not solicit again.
  o = n->outbound(local_frame(*n, kSleep.mac, udp(ip_hdr(kSleep, kCurl, false), 1, 2, pattern(4))));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(n->drops(), "neighbour_miss=2");
}

TEST_F(DpTest, HairpinToWorkloadWithoutMacSolicitsIpv6) {
  DpNode* n = keep(
      DpNode::load("node-a.textproto", [](config::Config& c) { c.mutable_neighbours()->Clear(); }));
  ASSERT_TRUE(n);
  // One neighbour slot per workload: an NS for curl-untrusted's IPv6 address.
  Out o =
      n->outbound(local_frame(*n, kSleep.mac, udp(ip_hdr(kSleep, kCurl, true), 1, 2, pattern(4))));
  EXPECT_EQ(n->drops(), "neighbour_miss=1");
  ASSERT_EQ(o.local.size(), 1u);
  const Bytes& ns = o.local[0];
  EXPECT_EQ(eth_dst(ns), ipv6_multicast_mac(solicited_node(kCurl.v6)));
  Bytes r = l3_of(ns);
  EXPECT_EQ(ip_dst(r), solicited_node(kCurl.v6));
  EXPECT_EQ(ip_src(r), kAGw6);
  EXPECT_EQ(r[7], 255);
  EXPECT_EQ(r[40], 135);
  EXPECT_EQ(IpAddr::v6(&r[48]), kCurl.v6);
  EXPECT_EQ(r[64], 1) << "source link-layer address option";
  EXPECT_EQ((MacAddr{{r[66], r[67], r[68], r[69], r[70], r[71]}}), kALocalMac);
  EXPECT_TRUE(l4_checksum_ok(r));
}

}  // namespace
// ---- runs of bursts (Pipeline::outbound_run) -------------------------------------------------

// The worker runs a full local-port burst and the next one as a pair, the second's flow lookups
// spread over the first's encryption (runs of three here too). What leaves, in what order, and
// every counter must be what the same frames give one burst at a time: across flows the first burst
// creates and the second hits, new flows in both, DNAT flows and their reply index, hairpin, drops,
// ICMP errors, an all-dropped first burst, a lone last burst, and a new config generation that
// re-decides flows (and erases the reply index of flows whose endpoint went away) inside the first
// burst.
TEST_F(DpTest, RunsOfBurstsLeaveExactlyAsSingleBursts) {
  for (unsigned run : {2u, 3u}) {
    SCOPED_TRACE("run of " + std::to_string(run));
    DpNode* single = keep(DpNode::load("node-a.textproto"));
    DpNode* paired = keep(DpNode::load("node-a.textproto"));
    ASSERT_TRUE(single && paired);
    IpAddr vip;  // the httpbin service (examples/node-a.textproto)
    ASSERT_TRUE(IpAddr::parse("10.96.0.20", &vip));
    auto round = [&](unsigned r) {
      std::vector<Bytes> f;
      for (unsigned i = 0; i < 2 * dp::kBurstSize; i++) {
        const uint16_t u = uint16_t(r * 7 + i);
        switch (r == 6 && i < dp::kBurstSize ? 6 : i % 8) {
          case 0:
          case 1:
          case 2:
            f.push_back(local_frame(
                *a, kSleep.mac,
                udp(ip_hdr(kSleep, kHttpbin1, false), uint16_t(1000 + u % 20), 7777, pattern(16))));
            break;
          case 3:
            f.push_back(local_frame(
                *a, kSleep.mac,
                udp(ip_hdr(kSleep, kHttpbin1, true), uint16_t(2000 + i % 5), 7777, pattern(8))));
            break;
          case 4:
            f.push_back(local_frame(
                *a, kSleep.mac,
                tcp(ip_hdr(kSleep.v4, vip), uint16_t(30000 + (i / 8 + r) % 6), 80, kTcpAck)));
            break;
          case 5:
            f.push_back(local_frame(
                *a, kSleep.mac, tcp(ip_hdr(kSleep, kCurl, false), uint16_t(40000 + i % 3), 80)));
            break;
          case 6:  // hosted by node-b: unknown source here
            f.push_back(local_frame(*a, kHttpbin1.mac,
                                    udp(ip_hdr(kHttpbin1, kSleep, false), 5, 6, pattern(4))));
            break;
          default:  // TTL 1: ICMP time exceeded back to sleep
            f.push_back(local_frame(*a, kSleep.mac,
                                    udp(ip_hdr(kSleep, kHttpbin1, false, 1), 9, 9, pattern(4))));
        }
      }
      return f;
    };
    config::Config one = single->cfg;
    for (auto& w : *one.mutable_workloads())
      if (w.name() == "httpbin-2") w.mutable_services()->clear();
    for (unsigned r = 0; r < 8; r++) {
      SCOPED_TRACE("round " + std::to_string(r));
      if (r == 3) {
        ASSERT_TRUE(single->reload(one));
        ASSERT_TRUE(paired->reload(one));
      }
      std::vector<Bytes> f = round(r);
      if (r == 7) f.resize(dp::kBurstSize + 5);  // a short second burst
      Out want = single->outbound(f);
      Out got = paired->outbound_runs(f, run);
      EXPECT_EQ(got.fabric, want.fabric);
      EXPECT_EQ(got.local, want.local);
      EXPECT_FALSE(want.fabric.empty());
    }
    EXPECT_EQ(paired->drops(), single->drops());
    EXPECT_NE(single->drops(), "");
    EXPECT_EQ(paired->ctr.flow_hits, single->ctr.flow_hits);
    EXPECT_EQ(paired->ctr.flow_misses, single->ctr.flow_misses);
    EXPECT_EQ(paired->ctr.flows_created, single->ctr.flows_created);
    EXPECT_EQ(paired->ctr.flows_reclassified, single->ctr.flows_reclassified);
    EXPECT_GT(single->ctr.flows_reclassified, 0u);
    EXPECT_GT(single->ctr.flow_hits, 200u);
    EXPECT_EQ(paired->ctr.encrypted, single->ctr.encrypted);
    EXPECT_EQ(paired->ctr.hairpinned, single->ctr.hairpinned);
    EXPECT_GT(single->ctr.hairpinned, 0u);
    EXPECT_EQ(paired->flows->size(), single->flows->size());
  }
}

}  // namespace vanish::test
