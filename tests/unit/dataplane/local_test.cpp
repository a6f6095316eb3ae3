// Local-port fixtures (node-a): the appliance as the workloads' gateway (ARP, Neighbor
// Discovery, echo), neighbour learning, and malformed or foreign frames.
#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include <cstring>
#include <random>

#include "dataplane/pkt.hpp"
#include "dataplane/stage_local_ingress.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace vanish::test {
namespace {

using namespace mesh;
using dp::DropReason;

const MacAddr kNewMac = mac("02:00:00:aa:00:99");

// ---- ARP -------------------------------------------------------------------------------------

TEST_F(DpTest, ArpRequestForGatewayIsAnswered) {
  Bytes req = arp(kArpRequest, kSleep.mac, kSleep.v4, MacAddr{}, kAGw4);
  Out o = a->outbound(req);
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  Bytes want = arp(kArpReply, kALocalMac, kAGw4, kSleep.mac, kSleep.v4, &kSleep.mac);
  EXPECT_EQ(o.local[0], want) << hex(o.local[0]);
  EXPECT_EQ(a->ctr.arp_replies, 1u);
  EXPECT_EQ(a->drops(), "");
}

TEST_F(DpTest, ArpRequestFromAnyoneForGatewayIsAnswered) {
  // The gateway answers any asker on the link (it learns only local workloads, see below).
  Bytes req = arp(kArpRequest, kNewMac, ip("10.1.0.99"), MacAddr{}, kAGw4);
  Out o = a->outbound(req);
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(o.local[0], arp(kArpReply, kALocalMac, kAGw4, kNewMac, ip("10.1.0.99"), &kNewMac));
  EXPECT_EQ(a->ctr.neighbours_learned, 0u);
}

TEST_F(DpTest, ArpForAnotherAddressIsConsumed) {
  Out o = a->outbound({
      arp(kArpRequest, kSleep.mac, kSleep.v4, MacAddr{}, ip("10.1.0.5")),
      arp(kArpRequest, kSleep.mac, kSleep.v4, MacAddr{}, kCurl.v4),
      arp(kArpRequest, kSleep.mac, kSleep.v4, MacAddr{}, kBGw4),  // node-b's gateway
      arp(kArpReply, kSleep.mac, kSleep.v4, kALocalMac, kAGw4, &kALocalMac),
  });
  EXPECT_TRUE(o.local.empty());
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "arp_ignored=4");
  EXPECT_EQ(a->ctr.arp_replies, 0u);
}

TEST_F(DpTest, MalformedArpIsAParseError) {
  Bytes bad_hlen = arp(kArpRequest, kSleep.mac, kSleep.v4, MacAddr{}, kAGw4);
  bad_hlen[kEth + 4] = 8;
  Bytes bad_proto = arp(kArpRequest, kSleep.mac, kSleep.v4, MacAddr{}, kAGw4);
  wr16(&bad_proto[kEth + 2], kEthIpv6);
  Bytes short_arp = arp(kArpRequest, kSleep.mac, kSleep.v4, MacAddr{}, kAGw4);
  short_arp.resize(kEth + 27);
  Out o = a->outbound({bad_hlen, bad_proto, short_arp});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "parse_error=3");
}

TEST_F(DpTest, ArpFromLocalWorkloadWithNewMacChangesDeliveryMac) {
  ASSERT_EQ(a->neighbour(kSleep.v4), kSleep.mac);  // static in node-a.textproto
  Out o = a->outbound(arp(kArpRequest, kNewMac, kSleep.v4, MacAddr{}, kAGw4));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(eth_dst(o.local[0]), kNewMac);
  EXPECT_EQ(a->ctr.neighbours_learned, 1u);
  EXPECT_EQ(a->neighbour(kSleep.v4), kNewMac);
  EXPECT_EQ(a->neighbour(kSleep.v6), kNewMac) << "one neighbour slot per workload";
  // Hairpin to sleep now goes to the new MAC (sleep -> sleep: no policy denies it).
  Bytes in = udp(ip_hdr(kSleep, kSleep, false), 1, 2, pattern(8));
  o = a->outbound(local_frame(*a, kNewMac, in));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(o.local[0], eth_ip(kNewMac, kALocalMac, dec_ttl(in)));
  // And so does traffic from the fabric.
  Bytes back = udp(ip_hdr(kHttpbin1, kSleep, false), 1, 2, pattern(8));
  Out ob = b->outbound(local_frame(*b, kHttpbin1.mac, back));
  ASSERT_EQ(ob.fabric.size(), 1u);
  o = a->inbound(ob.fabric[0]);
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(eth_dst(o.local[0]), kNewMac);
}

TEST_F(DpTest, GratuitousArpTeachesWithoutReply) {
  Out o = a->outbound(arp(kArpRequest, kNewMac, kCurl.v4, MacAddr{}, kCurl.v4));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "arp_ignored=1");
  EXPECT_EQ(a->neighbour(kCurl.v4), kNewMac);
}

TEST_F(DpTest, ArpDoesNotLearnForeignOrMulticastSenders) {
  a->outbound({
      arp(kArpRequest, kNewMac, ip("10.1.0.99"), MacAddr{}, kAGw4),             // not a workload
      arp(kArpRequest, kNewMac, kHttpbin1.v4, MacAddr{}, kAGw4),                // node-b's workload
      arp(kArpRequest, mac("03:00:00:00:00:01"), kSleep.v4, MacAddr{}, kAGw4),  // multicast
  });
  EXPECT_EQ(a->ctr.neighbours_learned, 0u);
  EXPECT_EQ(a->neighbour(kSleep.v4), kSleep.mac);
}

// ---- Neighbor Discovery ----------------------------------------------------------------------

// The NA the gateway sends to `dst` (unicast) in answer to a solicitation.
Bytes expected_na(const IpAddr& dst, const MacAddr& dst_mac, uint8_t flags) {
  Bytes icmp(32, 0);
  icmp[0] = 136;
  icmp[4] = flags;
  std::memcpy(&icmp[8], kAGw6.b.data(), 16);
  icmp[24] = 2;  // target link-layer address
  icmp[25] = 1;
  std::memcpy(&icmp[26], kALocalMac.b.data(), 6);
  Bytes p = ip_packet(ip_hdr(kAGw6, dst, 255), kProtoIcmp6, icmp);
  fix_l4_checksum(p);
  return eth_ip(dst_mac, kALocalMac, p);
}

TEST_F(DpTest, NeighborSolicitationForGatewayIsAdvertised) {
  Out o = a->outbound(nd_solicit(kSleep.mac, kSleep.v6, kAGw6));
  EXPECT_TRUE(o.fabric.empty());
  ASSERT_EQ(o.local.size(), 1u);
  const Bytes& na = o.local[0];
  EXPECT_EQ(na, expected_na(kSleep.v6, kSleep.mac, 0xe0)) << hex(na);
  Bytes r = l3_of(na);
  EXPECT_EQ(r[7], 255) << "hop limit";
  EXPECT_EQ(r[40], 136);
  EXPECT_EQ(r[44], 0xe0) << "Router | Solicited | Override";
  EXPECT_EQ(IpAddr::v6(&r[48]), kAGw6);
  EXPECT_EQ(r[64], 2) << "target link-layer address option";
  EXPECT_EQ((MacAddr{{r[66], r[67], r[68], r[69], r[70], r[71]}}), kALocalMac);
  EXPECT_TRUE(l4_checksum_ok(r));
  EXPECT_EQ(a->ctr.nd_adverts, 1u);
  EXPECT_EQ(a->drops(), "");
}

TEST_F(DpTest, NeighborSolicitationWithoutSllAnswersTheEthernetSource) {
  Out o = a->outbound(nd_solicit(kSleep.mac, kSleep.v6, kAGw6, /*with_sll=*/false));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(o.local[0], expected_na(kSleep.v6, kSleep.mac, 0xe0));
}

TEST_F(DpTest, DadSolicitationIsAnsweredToAllNodes) {
  Out o = a->outbound(nd_solicit(kNewMac, IpAddr::v6(IpAddr{}.b.data()), kAGw6, false));
  ASSERT_EQ(o.local.size(), 1u);
  Bytes want = expected_na(ip("ff02::1"), mac("33:33:00:00:00:01"), 0xa0);
  EXPECT_EQ(o.local[0], want) << hex(o.local[0]);
}

TEST_F(DpTest, NeighborSolicitationForAnotherTargetIsConsumed) {
  Out o = a->outbound({nd_solicit(kSleep.mac, kSleep.v6, kCurl.v6),
                       nd_solicit(kSleep.mac, kSleep.v6, ip("fd00:10:1::99"))});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "arp_ignored=2");
}

TEST_F(DpTest, InvalidNeighborSolicitationIsAParseError) {
  Bytes hop64 = nd_solicit(kSleep.mac, kSleep.v6, kAGw6, true, 64);  // RFC 4861 §7.1.1
  Bytes code1 = nd_solicit(kSleep.mac, kSleep.v6, kAGw6);
  code1[kEth + 41] = 1;
  Bytes shortns = nd_solicit(kSleep.mac, kSleep.v6, kAGw6, false);
  shortns.resize(kEth + 40 + 20);
  wr16(&shortns[kEth + 4], 20);
  Out o = a->outbound({hop64, code1, shortns});
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "parse_error=3");
}

TEST_F(DpTest, NeighborDiscoveryLearnsLocalWorkloads) {
  Out o = a->outbound(nd_solicit(kNewMac, kSleep.v6, kAGw6));
  ASSERT_EQ(o.local.size(), 1u);
  EXPECT_EQ(eth_dst(o.local[0]), kNewMac) << "the answer goes to the SLL address";
  EXPECT_EQ(a->neighbour(kSleep.v6), kNewMac);
  EXPECT_EQ(a->ctr.neighbours_learned, 1u);
  // An unsolicited NA with a target link-layer address teaches too.
  Bytes icmp(32, 0);
  icmp[0] = 136;
  icmp[4] = 0x20;
  std::memcpy(&icmp[8], kCurl.v6.b.data(), 16);
  icmp[24] = 2;
  icmp[25] = 1;
  std::memcpy(&icmp[26], kNewMac.b.data(), 6);
  Bytes p = ip_packet(ip_hdr(kCurl.v6, ip("ff02::1"), 255), kProtoIcmp6, icmp);
  fix_l4_checksum(p);
  o = a->outbound(eth_ip(mac("33:33:00:00:00:01"), kNewMac, p));
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "arp_ignored=1");
  EXPECT_EQ(a->neighbour(kCurl.v6), kNewMac);
}

// ---- echo to the gateway ---------------------------------------------------------------------

TEST_F(DpTest, EchoToGatewayIsAnswered) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "v6" : "v4");
    const IpAddr& gw = v6 ? kAGw6 : kAGw4;
    IpHdr h = ip_hdr(kSleep.addr(v6), gw, 1);  // TTL 1: addressed to the router itself
    Bytes req = icmp_echo(h, true, 0x77, 9, pattern(56));
    Out o = a->outbound(local_frame(*a, kSleep.mac, req));
    EXPECT_TRUE(o.fabric.empty());
    ASSERT_EQ(o.local.size(), 1u);
    IpHdr rh = ip_hdr(gw, kSleep.addr(v6), 64);
    Bytes want = eth_ip(kSleep.mac, kALocalMac, icmp_echo(rh, false, 0x77, 9, pattern(56)));
    EXPECT_EQ(o.local[0], want) << hex(o.local[0]);
    Bytes r = l3_of(o.local[0]);
    EXPECT_TRUE(ipv4_header_ok(r));
    EXPECT_TRUE(l4_checksum_ok(r));
  }
  EXPECT_EQ(a->drops(), "echo_replied=2");
  EXPECT_EQ(a->ctr.flows_created, 0u) << "answered before classification";
}

TEST_F(DpTest, EchoToGatewayAfterAnExtensionHeaderHasAValidChecksum) {
  // ICMPv6 echo request behind a hop-by-hop header: the reply's checksum covers the ICMPv6
  // message with next header 58 in the pseudo-header (RFC 8200 §8.1), not the extension header.
  Bytes e = icmp_echo(ip_hdr(kSleep.v6, kAGw6), true, 5, 6, pattern(24));
  const uint8_t hbh[8] = {kProtoIcmp6, 0, 1, 4, 0, 0, 0, 0};
  Bytes ext(e.begin() + 40, e.end());
  ext.insert(ext.begin(), hbh, hbh + sizeof hbh);
  Out o = a->outbound(local_frame(*a, kSleep.mac, ip_packet(ip_hdr(kSleep.v6, kAGw6), 0, ext)));
  ASSERT_EQ(o.local.size(), 1u);
  Bytes r = l3_of(o.local[0]);
  ASSERT_EQ(r.size(), 40u + ext.size());
  EXPECT_EQ(ip_src(r), kAGw6);
  EXPECT_EQ(ip_dst(r), kSleep.v6);
  EXPECT_EQ(r[48], 129);
  size_t len = r.size() - 48;
  EXPECT_EQ(inet_checksum(&r[48], len, pseudo_header_sum(kAGw6, kSleep.v6, kProtoIcmp6, len)), 0)
      << hex(r);
  EXPECT_EQ(a->drops(), "echo_replied=1");
}

TEST_F(DpTest, OtherTrafficToGatewayIsNoRoute) {
  Out o = a->outbound({
      local_frame(*a, kSleep.mac, udp(ip_hdr(kSleep.v4, kAGw4), 1, 53, pattern(8))),
      local_frame(*a, kSleep.mac, icmp_echo(ip_hdr(kSleep.v4, kAGw4), false, 1, 1)),
      local_frame(*a, kSleep.mac, tcp(ip_hdr(kSleep.v6, kAGw6), 1, 22)),
  });
  EXPECT_TRUE(o.local.empty());
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "no_route=3");
}

// ---- garbage ---------------------------------------------------------------------------------

Bytes sleep_udp(bool v6) {
  return udp(ip_hdr(kSleep, kHttpbin1, v6), 1, 2, pattern(16));
}

TEST_F(DpTest, TruncatedFramesAreParseErrors) {
  Bytes v4 = local_frame(*a, kSleep.mac, sleep_udp(false));
  Bytes v6 = local_frame(*a, kSleep.mac, sleep_udp(true));
  std::vector<Bytes> in = {
      Bytes(v4.begin(), v4.begin() + 10),             // truncated Ethernet
      Bytes(v4.begin(), v4.begin() + kEth),           // Ethernet only
      Bytes(v4.begin(), v4.begin() + kEth + 19),      // truncated IPv4 header
      Bytes(v6.begin(), v6.begin() + kEth + 39),      // truncated IPv6 header
      Bytes(v4.begin(), v4.end() - 1),                // IPv4 total length > frame
      Bytes(v6.begin(), v6.end() - 1),                // IPv6 payload length > frame
      Bytes(v4.begin(), v4.begin() + kEth + 20 + 4),  // truncated UDP (lengths fixed below)
  };
  wr16(&in.back()[kEth + 2], 24);
  Bytes last = l3_of(in.back());
  fix_ipv4_checksum(last);
  in.back() = local_frame(*a, kSleep.mac, last);
  Out o = a->outbound(in);
  EXPECT_TRUE(o.local.empty());
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "parse_error=" + std::to_string(in.size()));
}

TEST_F(DpTest, MalformedIpHeadersAreParseErrors) {
  auto edit = [&](bool v6, const std::function<void(Bytes&)>& f) {
    Bytes ip = sleep_udp(v6);
    f(ip);
    return local_frame(*a, kSleep.mac, ip);
  };
  std::vector<Bytes> in = {
      edit(false, [](Bytes& p) { p[0] = 0x55; }),  // version 5
      edit(false, [](Bytes& p) { p[0] = 0x44; }),  // IHL 4 < 5
      edit(false, [](Bytes& p) { p[0] = 0x4f; }),  // IHL 15 > total length
      edit(false, [](Bytes& p) { wr16(&p[2], 19); }),
      edit(true, [](Bytes& p) { p[0] = 0x75; }),  // version 7
  };
  // Short TCP and ICMP headers.
  Bytes t = tcp(ip_hdr(kSleep, kHttpbin1, false), 1, 2);
  t.resize(20 + 12);
  wr16(&t[2], 32);
  fix_ipv4_checksum(t);
  in.push_back(local_frame(*a, kSleep.mac, t));
  Bytes ic = icmp_echo(ip_hdr(kSleep, kHttpbin1, true), true, 1, 1, {});
  ic.resize(40 + 4);
  wr16(&ic[4], 4);
  in.push_back(local_frame(*a, kSleep.mac, ic));
  Out o = a->outbound(in);
  EXPECT_TRUE(o.local.empty());
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "parse_error=" + std::to_string(in.size()));
}

// parse_ip's IPv4 fast path writes the key as whole words: every byte of it, the same key as
// the general path (taken here by an IPv4 header with a 4-byte NOP option) and as FlowKey's
// definition, whatever the key held before.
TEST(ParseIp, FastPathKeyIsTheGeneralPathKey) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; i++) {
    const bool is_tcp = i & 1;
    const size_t l4_len = is_tcp ? 20 : 8;
    Bytes ip(20 + l4_len + (rng() % 64), 0);
    ip[0] = 0x45;
    wr16(&ip[2], uint16_t(ip.size()));
    ip[8] = 64;
    ip[9] = is_tcp ? 6 : 17;
    for (size_t k = 12; k < 24; k++) ip[k] = uint8_t(rng());  // addresses, ports
    if (is_tcp) ip[32] = 0x50;
    // The same packet with a 4-byte option (NOPs): general path.
    Bytes opt(ip.begin(), ip.begin() + 20);
    opt.insert(opt.end(), {1, 1, 1, 1});
    opt.insert(opt.end(), ip.begin() + 20, ip.end());
    opt[0] = 0x46;
    wr16(&opt[2], uint16_t(opt.size()));
    dp::FlowKey expect;
    std::memset(&expect, 0, sizeof expect);
    expect.src[10] = expect.src[11] = expect.dst[10] = expect.dst[11] = 0xff;
    std::memcpy(&expect.src[12], &ip[12], 4);
    std::memcpy(&expect.dst[12], &ip[16], 4);
    std::memcpy(&expect.sport, &ip[20], 2);
    std::memcpy(&expect.dport, &ip[22], 2);
    expect.proto = ip[9];
    for (const Bytes* b : {&ip, &opt}) {
      rte_mbuf* m = to_mbuf(*b);
      ASSERT_NE(m, nullptr);
      dp::PacketInfo info;
      std::memset(&info, 0xa5, sizeof info);
      ASSERT_TRUE(dp::parse_ip(m, 0, info)) << i;
      EXPECT_EQ(std::memcmp(&info.key, &expect, sizeof expect), 0)
          << i << (b == &ip ? " fast" : " general");
      EXPECT_EQ(info.ip_len, b->size());
      EXPECT_EQ(info.l4_off, b->size() - (ip.size() - 20));
      EXPECT_EQ(info.l4_proto, ip[9]);
      EXPECT_EQ(info.is_v6, 0);
      EXPECT_EQ(info.is_fragment, 0);
      rte_pktmbuf_free(m);
    }
  }
}

TEST_F(DpTest, EthertypeAndIpVersionMustAgree) {
  // An IPv6 packet labelled IPv4 (and the reverse) is malformed, not silently re-typed.
  Bytes v6_as_v4 = eth(kALocalMac, kSleep.mac, kEthIpv4, sleep_udp(true));
  Bytes v4_as_v6 = eth(kALocalMac, kSleep.mac, kEthIpv6, sleep_udp(false));
  Out o = a->outbound({v6_as_v4, v4_as_v6});
  EXPECT_TRUE(o.local.empty());
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "parse_error=2");
}

TEST_F(DpTest, NonIpEthertypeIsUnsupported) {
  Out o = a->outbound({
      eth(kALocalMac, kSleep.mac, 0x88cc, pattern(46)),  // LLDP
      eth(kALocalMac, kSleep.mac, 0x8100, pattern(46)),  // VLAN tag
      eth(kALocalMac, kSleep.mac, 0x8847, pattern(46)),  // MPLS
  });
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "unsupported_l2=3");
}

TEST_F(DpTest, WrongDestinationMacIsNotForUs) {
  Out o = a->outbound({
      eth_ip(mac("02:00:00:00:10:02"), kSleep.mac, sleep_udp(false)),
      eth_ip(mac("ff:ff:ff:ff:ff:ff"), kSleep.mac, sleep_udp(false)),
      eth_ip(mac("33:33:00:00:00:01"), kSleep.mac, sleep_udp(true)),
  });
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "not_for_us=3");
}

TEST_F(DpTest, EveryTruncationIsCountedOnce) {
  // Cut valid frames at every length: never a crash, never an output, one drop per frame.
  const std::vector<Bytes> whole = {
      local_frame(*a, kSleep.mac, sleep_udp(false)),
      local_frame(*a, kSleep.mac, sleep_udp(true)),
      local_frame(*a, kSleep.mac, tcp(ip_hdr(kSleep, kHttpbin1, false), 1, 2)),
      local_frame(*a, kSleep.mac, icmp_echo(ip_hdr(kSleep, kHttpbin1, true), true, 1, 1)),
      local_frame(*a, kSleep.mac, icmp_echo(ip_hdr(kSleep.v4, kAGw4), true, 1, 1)),
      nd_solicit(kSleep.mac, kSleep.v6, kAGw6),
  };
  size_t n = 0;
  for (const Bytes& w : whole) {
    std::vector<Bytes> cut;
    for (size_t len = 0; len < w.size(); len++) cut.emplace_back(w.begin(), w.begin() + long(len));
    n += cut.size();
    Out o = a->outbound(cut);
    EXPECT_TRUE(o.local.empty());
    EXPECT_TRUE(o.fabric.empty());
  }
  EXPECT_EQ(a->drops(), "parse_error=" + std::to_string(n));
}

TEST_F(DpTest, IpOptionsAndExtensionHeadersAreForwarded) {
  // IPv4 with 4 bytes of options (NOPs).
  Bytes v4 = sleep_udp(false);
  v4.insert(v4.begin() + 20, {1, 1, 1, 1});
  v4[0] = 0x46;
  wr16(&v4[2], uint16_t(v4.size()));
  fix_ipv4_checksum(v4);
  ASSERT_TRUE(ipv4_header_ok(v4));
  ASSERT_TRUE(l4_checksum_ok(v4));
  // IPv6 with a hop-by-hop header (PadN) before UDP.
  Bytes u = sleep_udp(true);
  Bytes l4(u.begin() + 40, u.end());
  const uint8_t hbh[8] = {kProtoUdp, 0, 1, 4, 0, 0, 0, 0};
  Bytes ext = l4;
  ext.insert(ext.begin(), hbh, hbh + sizeof hbh);
  Bytes v6 = ip_packet(ip_hdr(kSleep, kHttpbin1, true), 0, ext);
  Out o = a->outbound({local_frame(*a, kSleep.mac, v4), local_frame(*a, kSleep.mac, v6)});
  EXPECT_EQ(a->drops(), "");
  ASSERT_EQ(o.fabric.size(), 2u);
  FabricPacket f4, f6;
  ASSERT_TRUE(decode_fabric(o.fabric[0], kSaAB, &f4));
  ASSERT_TRUE(decode_fabric(o.fabric[1], kSaAB, &f6));
  EXPECT_EQ(f4.inner, dec_ttl(v4));
  EXPECT_EQ(f6.inner, dec_ttl(v6));
  // Both belong to the UDP flow of their 5-tuple.
  EXPECT_EQ(a->ctr.flows_created, 2u);
  o = a->outbound({local_frame(*a, kSleep.mac, sleep_udp(false)),
                   local_frame(*a, kSleep.mac, sleep_udp(true))});
  EXPECT_EQ(a->ctr.flow_hits, 2u);
}

// RFC 1812 5.2.2: a wrong IPv4 header checksum is a counted drop, nothing is classified or sent.
// The port's verdict is taken when it gives one (RX checksum offload), else the sum is checked.
TEST_F(DpTest, BadIpv4HeaderChecksumIsDropped) {
  Bytes good = local_frame(*a, kSleep.mac, sleep_udp(false));
  Bytes bad = good;
  bad[kEth + 10] ^= 0x40;  // header checksum
  Bytes bad_opt = local_frame(*a, kSleep.mac, sleep_udp(false));
  bad_opt[kEth + 8] = 63;  // TTL changed, checksum not updated
  Out o = a->outbound({bad, bad_opt});
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_TRUE(o.local.empty());
  EXPECT_EQ(a->drops(), "bad_ip_checksum=2");
  EXPECT_EQ(a->ctr.flows_created, 0u) << "not classified";
  // The NIC's verdict: BAD drops even a correct header, GOOD is trusted.
  rte_mbuf* m1 = to_mbuf(good, RTE_MBUF_F_RX_IP_CKSUM_BAD);
  ASSERT_TRUE(m1);
  o = a->run_mbufs({m1}, false);
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "bad_ip_checksum=3");
  rte_mbuf* m2 = to_mbuf(bad, RTE_MBUF_F_RX_IP_CKSUM_GOOD);
  ASSERT_TRUE(m2);
  o = a->run_mbufs({m2}, false);
  EXPECT_EQ(o.fabric.size(), 1u) << "checked by the port: not summed again";
  o = a->outbound(good);
  EXPECT_EQ(o.fabric.size(), 1u);
  EXPECT_EQ(a->drops(), "bad_ip_checksum=3");
  // A header with options (4 NOPs, IHL 6) is summed over its whole length.
  Bytes opt = good;
  opt.insert(opt.begin() + kEth + 20, {1, 1, 1, 1});
  opt[kEth] = 0x46;
  wr16(&opt[kEth + 2], uint16_t(rd16(opt, kEth + 2) + 4));
  wr16(&opt[kEth + 10], 0);
  wr16(&opt[kEth + 10], inet_checksum(opt.data() + kEth, 24));
  Bytes opt_bad = opt;
  opt_bad[kEth + 21] = 0;  // an option byte changed, checksum not updated
  o = a->outbound({opt, opt_bad});
  EXPECT_EQ(o.fabric.size(), 1u);
  EXPECT_EQ(a->drops(), "bad_ip_checksum=4");
}

// dp::ipv4_header_sum_ok (32-bit words, folded) against DPDK's 16-bit rte_raw_cksum on random
// headers of every legal length, half of them with a right checksum, plus the fold's corners.
TEST(Ipv4HeaderSum, MatchesRteRawCksum) {
  std::mt19937 rng(1812);
  int right = 0;
  for (int i = 0; i < 20000; i++) {
    const unsigned len = 20 + 4 * (rng() % 11);
    uint8_t h[60];
    for (unsigned j = 0; j < len; j++) h[j] = uint8_t(rng() >> (j % 3 * 8));
    if (i % 4 == 0) std::memset(h, 0xff, len);  // many carries
    if (i % 2 == 1) {
      h[10] = h[11] = 0;
      const uint16_t ck = uint16_t(~rte_raw_cksum(h, len));
      std::memcpy(&h[10], &ck, 2);
    }
    const bool want = rte_raw_cksum(h, len) == 0xffff;
    right += want;
    ASSERT_EQ(dp::ipv4_header_sum_ok(h, len), want) << "len " << len << " i " << i;
  }
  EXPECT_GT(right, 10000);
  uint8_t z[20] = {};
  EXPECT_FALSE(dp::ipv4_header_sum_ok(z, 20));
}

TEST_F(DpTest, MultiSegmentMbufIsRefused) {
  Bytes f = local_frame(*a, kSleep.mac, sleep_udp(false));
  rte_mbuf* head = rte_pktmbuf_alloc(pool());
  rte_mbuf* tail = rte_pktmbuf_alloc(pool());
  ASSERT_TRUE(head && tail);
  std::memcpy(rte_pktmbuf_append(head, 30), f.data(), 30);
  std::memcpy(rte_pktmbuf_append(tail, uint16_t(f.size() - 30)), f.data() + 30, f.size() - 30);
  ASSERT_EQ(rte_pktmbuf_chain(head, tail), 0);
  Out o = a->run_mbufs({head}, false);
  EXPECT_TRUE(o.fabric.empty());
  EXPECT_EQ(a->drops(), "encap_no_room=1");
}

}  // namespace
}  // namespace vanish::test
