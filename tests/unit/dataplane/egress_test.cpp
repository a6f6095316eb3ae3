// Egress and hostname classification (Config.egress; stages HostnameInspect, EgressForward) on
// node-a's pipeline: outside destinations leave through the fabric port to the next hop,
// unencrypted; governed TCP flows are held (handshake only) until their first payload names the
// host, then decided once and cached; DNS queries are decided one by one; replies from outside
// are delivered only for flows a local workload opened. ClientHellos, requests and queries are
// real ones (openssl s_client, curl, dig) captured on loopback; hand-built when a tool is missing.
#include <gtest/gtest.h>
#include <rte_byteorder.h>

#include "dataplane/host_policy.hpp"
#include "dataplane/stage_hostname.hpp"
#include "tests/fuzz/hostname_seeds.hpp"
#include "tests/unit/dataplane/capture.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace vanish::test {
namespace {

using namespace mesh;
using dp::DropReason;

const MacAddr kNextHop = mac("02:00:00:00:ee:01");
const IpAddr kOut4 = ip("203.0.113.10"), kOut6 = ip("2001:db8::10");

void add_egress(config::Config& c, bool registry_only = false) {
  auto* e = c.mutable_egress();
  e->set_mode(registry_only ? config::Egress::REGISTRY_ONLY : config::Egress::ALLOW_ANY);
  e->set_next_hop_mac("02:00:00:00:ee:01");
  auto* r = e->add_rules();
  r->set_name("default-web");
  r->set_namespace_("default");
  r->add_hosts("allowed.test");
  r->add_hosts("*.example.com");
  r->add_ports(443);
  r->add_ports(80);
  auto* d = e->add_rules();
  d->set_name("default-dns");
  d->set_namespace_("default");
  d->add_hosts("allowed.test");
  d->add_ports(53);
}

Bytes hello(const std::string& sni) {
  auto c = capture_client_hello(sni);
  return c ? *c : fuzz::client_hello(sni);
}
Bytes http_req(const std::string& host) {
  auto c = capture_http_request(host);
  if (c) return *c;
  return fuzz::text("GET / HTTP/1.1\r\nHost: " + host + "\r\nAccept: */*\r\n\r\n");
}
Bytes dns_q(const std::string& name) {
  auto c = capture_dns_query(name);
  if (c) return *c;
  Bytes b = {0xbe, 0xef, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t s = 0;
  while (s <= name.size()) {
    size_t e = name.find('.', s);
    if (e == std::string::npos) e = name.size();
    b.push_back(uint8_t(e - s));
    b.insert(b.end(), name.begin() + long(s), name.begin() + long(e));
    s = e + 1;
  }
  b.insert(b.end(), {0, 0, 1, 0, 1});
  return b;
}

class EgressTest : public DpTest {
 protected:
  void SetUp() override {
    DpTest::SetUp();
    n = keep(DpNode::load("node-a.textproto", [](config::Config& c) { add_egress(c); }));
    ASSERT_TRUE(n);
  }
  // One packet from a local workload; returns what left the fabric port (0 or 1 frames).
  Out send(const Workload& w, const Bytes& ip_pkt) {
    return n->outbound(local_frame(*n, w.mac, ip_pkt));
  }
  const dp::FlowEntry* flow(const Workload& w, const IpAddr& dst, uint16_t sport, uint16_t dport,
                            uint8_t proto = 6) {
    dp::FlowKey k{};
    std::memcpy(k.src, w.addr(!dst.is_v4()).b.data(), 16);
    std::memcpy(k.dst, dst.b.data(), 16);
    k.sport = rte_cpu_to_be_16(sport);
    k.dport = rte_cpu_to_be_16(dport);
    k.proto = proto;
    k.zone = dp::kZoneOutbound;
    int32_t p = n->flows->lookup(k);
    return p < 0 ? nullptr : &n->flows->entry(p);
  }
  std::string pattern_of(const dp::FlowEntry* e) {
    if (!e || e->host_pattern >= n->snap->egress->patterns.size()) return "-";
    return n->snap->egress->patterns[e->host_pattern].host;
  }
  DpNode* n = nullptr;
};

TEST_F(EgressTest, AllowedSniPassesAfterTheHandshakeUnencryptedToTheNextHop) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "v6" : "v4");
    const IpAddr dst = v6 ? kOut6 : kOut4;
    IpHdr h = ip_hdr(kSleep.addr(v6), dst);
    Bytes syn = tcp(h, 41000, 443);
    Out o = send(kSleep, syn);
    ASSERT_EQ(o.fabric.size(), 1u) << n->drops();
    EXPECT_EQ(eth_dst(o.fabric[0]), kNextHop);
    EXPECT_EQ(eth_src(o.fabric[0]), kAFabricMac);
    EXPECT_EQ(l3_of(o.fabric[0]), dec_ttl(syn)) << "the packet itself, TTL - 1, no ESP";
    EXPECT_EQ(flow(kSleep, dst, 41000, 443)->host_state, dp::kHostPending);
    // The bare ACK of the handshake passes too.
    EXPECT_EQ(send(kSleep, tcp(h, 41000, 443, kTcpAck, 1001, 1)).fabric.size(), 1u);
    // The ClientHello, in its own segment after the handshake: allowed.
    Bytes ch = tcp(h, 41000, 443, uint8_t(kTcpAck | 0x08), 1001, 1, hello("allowed.test"));
    o = send(kSleep, ch);
    ASSERT_EQ(o.fabric.size(), 1u) << n->drops();
    EXPECT_EQ(l3_of(o.fabric[0]), dec_ttl(ch));
    const dp::FlowEntry* e = flow(kSleep, dst, 41000, 443);
    EXPECT_EQ(e->host_state, dp::kHostDecided);
    EXPECT_EQ(e->action, dp::FlowAction::kEgress);
    EXPECT_EQ(pattern_of(e), "allowed.test");
    // Later packets: no more inspection.
    uint64_t inspected = n->ctr.host_inspected;
    EXPECT_EQ(send(kSleep, tcp(h, 41000, 443, kTcpAck, 2000, 1, pattern(300))).fabric.size(), 1u);
    EXPECT_EQ(n->ctr.host_inspected, inspected);
  }
  EXPECT_EQ(n->ctr.host_inspected, 2u);
  EXPECT_EQ(n->ctr.host_allowed, 2u);
  EXPECT_EQ(n->ctr.egress_flows, 2u);
  EXPECT_EQ(n->ctr.encrypted, 0u);
  EXPECT_EQ(n->drops(), "");
}

TEST_F(EgressTest, DeniedSniIsDroppedAndTheFlowStaysDropped) {
  IpHdr h = ip_hdr(kSleep.v4, kOut4);
  EXPECT_EQ(send(kSleep, tcp(h, 41001, 443)).fabric.size(), 1u);
  Bytes ch = tcp(h, 41001, 443, uint8_t(kTcpAck | 0x08), 1001, 1, hello("denied.test"));
  EXPECT_TRUE(send(kSleep, ch).fabric.empty());
  EXPECT_EQ(n->drop(DropReason::kHostDenied), 1u);
  const dp::FlowEntry* e = flow(kSleep, kOut4, 41001, 443);
  EXPECT_EQ(e->action, dp::FlowAction::kDrop);
  // Retransmission and data: dropped from the flow entry, not parsed again.
  EXPECT_TRUE(send(kSleep, ch).fabric.empty());
  EXPECT_TRUE(send(kSleep, tcp(h, 41001, 443, kTcpAck, 1001, 1)).fabric.empty());
  EXPECT_EQ(n->drop(DropReason::kHostDenied), 3u);
  EXPECT_EQ(n->ctr.host_inspected, 1u);
  EXPECT_EQ(n->ctr.host_denied_flows, 1u);
  // A wildcard: any subdomain, not the bare domain.
  Bytes ok = tcp(h, 41002, 443, uint8_t(kTcpAck | 0x08), 1001, 1, hello("api.eu.example.com"));
  EXPECT_EQ(send(kSleep, ok).fabric.size(), 1u) << "ClientHello in the very first packet";
  EXPECT_EQ(pattern_of(flow(kSleep, kOut4, 41002, 443)), "*.example.com");
  Bytes bare = tcp(h, 41003, 443, uint8_t(kTcpAck | 0x08), 1001, 1, hello("example.com"));
  EXPECT_TRUE(send(kSleep, bare).fabric.empty());
}

TEST_F(EgressTest, HttpHostIsInspectedOnPort80) {
  IpHdr h = ip_hdr(kSleep.v4, kOut4);
  Bytes ok = tcp(h, 41010, 80, uint8_t(kTcpAck | 0x08), 1, 1, http_req("www.example.com"));
  EXPECT_EQ(send(kSleep, ok).fabric.size(), 1u) << n->drops();
  Bytes bad = tcp(h, 41011, 80, uint8_t(kTcpAck | 0x08), 1, 1, http_req("denied.test"));
  EXPECT_TRUE(send(kSleep, bad).fabric.empty());
  // Not TLS, not HTTP: no name; an allow list applies, so it is denied (host_unknown).
  Bytes ssh = tcp(h, 41012, 80, uint8_t(kTcpAck | 0x08), 1, 1, fuzz::text("SSH-2.0-x\r\n"));
  EXPECT_TRUE(send(kSleep, ssh).fabric.empty());
  EXPECT_EQ(n->drops(), "host_denied=1 host_unknown=1");
}

TEST_F(EgressTest, MalformedTruncatedAndFragmentedFirstPayloadsAreCountedAndDenied) {
  IpHdr h = ip_hdr(kSleep.v4, kOut4);
  Bytes ch = hello("allowed.test");
  Bytes cut(ch.begin(), ch.begin() + 30);
  EXPECT_TRUE(send(kSleep, tcp(h, 41020, 443, uint8_t(kTcpAck | 0x08), 1, 1, cut)).fabric.empty());
  Bytes bad = ch;
  bad[3] = 0xff;  // record length beyond 2^14 + 2048
  bad[4] = 0xff;
  EXPECT_TRUE(send(kSleep, tcp(h, 41021, 443, uint8_t(kTcpAck | 0x08), 1, 1, bad)).fabric.empty());
  EXPECT_EQ(n->drop(DropReason::kHostMalformed), 2u);
  // Random garbage after every prefix length of a real ClientHello: never a crash, never a leak.
  for (size_t k = 0; k < ch.size(); k += 7) {
    Bytes p(ch.begin(), ch.begin() + long(k));
    p.push_back(uint8_t(k));
    send(kSleep, tcp(h, uint16_t(42000 + k), 443, uint8_t(kTcpAck | 0x08), 1, 1, p));
  }
  // Prefixes that still hold the whole SNI are allowed (the name is there); the others denied.
  EXPECT_EQ(n->ctr.host_allowed + n->ctr.host_denied_flows, n->ctr.host_inspected);
  EXPECT_GT(n->ctr.host_denied_flows, 2u);
}

TEST_F(EgressTest, UngovernedFlowsAreDecidedWithoutInspection) {
  // curl-untrusted is in namespace "untrusted": no rule applies -> ALLOW_ANY.
  IpHdr h = ip_hdr(kCurl.v4, kOut4);
  EXPECT_EQ(send(kCurl, tcp(h, 41030, 443, uint8_t(kTcpAck | 0x08), 1, 1, hello("denied.test")))
                .fabric.size(),
            1u);
  // UDP to a port no rule governs, ICMP: ALLOW_ANY.
  EXPECT_EQ(send(kSleep, udp(ip_hdr(kSleep.v4, kOut4), 41031, 4789, pattern(20))).fabric.size(),
            1u);
  EXPECT_EQ(send(kSleep, icmp_echo(ip_hdr(kSleep.v4, kOut4), true, 7, 1)).fabric.size(), 1u);
  EXPECT_EQ(n->ctr.host_inspected, 0u);
  // An address inside a node's workload_prefixes that is no workload: still no_route.
  EXPECT_TRUE(send(kSleep, tcp(ip_hdr(kSleep.v4, ip("10.2.0.99")), 41032, 443)).fabric.empty());
  EXPECT_EQ(n->drops(), "no_route=1");
}

TEST_F(EgressTest, RegistryOnlyDeniesWhatNoRuleAllows) {
  DpNode* r =
      keep(DpNode::load("node-a.textproto", [](config::Config& c) { add_egress(c, true); }));
  ASSERT_TRUE(r);
  IpHdr h = ip_hdr(kCurl.v4, kOut4);
  EXPECT_TRUE(r->outbound(local_frame(*r, kCurl.mac, tcp(h, 41040, 443))).fabric.empty());
  EXPECT_EQ(r->drops(), "egress_denied=1");
  IpHdr s = ip_hdr(kSleep.v4, kOut4);
  Bytes ch = tcp(s, 41041, 443, uint8_t(kTcpAck | 0x08), 1, 1, hello("allowed.test"));
  EXPECT_EQ(r->outbound(local_frame(*r, kSleep.mac, ch)).fabric.size(), 1u);
  EXPECT_TRUE(r->outbound(local_frame(*r, kSleep.mac, tcp(s, 41042, 22))).fabric.empty());
}

TEST_F(EgressTest, DnsQueriesAreDecidedOneByOne) {
  IpHdr h = ip_hdr(kSleep.v4, kOut4);
  EXPECT_EQ(send(kSleep, udp(h, 41050, 53, dns_q("allowed.test"))).fabric.size(), 1u);
  EXPECT_TRUE(send(kSleep, udp(h, 41050, 53, dns_q("denied.test"))).fabric.empty());
  EXPECT_EQ(send(kSleep, udp(h, 41050, 53, dns_q("Allowed.Test"))).fabric.size(), 1u)
      << "the same socket may go on asking allowed names";
  EXPECT_EQ(n->ctr.host_inspected, 3u);
  EXPECT_EQ(n->drops(), "host_denied=1");
  EXPECT_EQ(flow(kSleep, kOut4, 41050, 53, 17)->host_state, dp::kHostDns);
}

TEST_F(EgressTest, RepliesFromOutsideAreDeliveredOnlyForOpenFlows) {
  IpHdr h = ip_hdr(kSleep.v4, kOut4);
  ASSERT_EQ(send(kSleep, tcp(h, 41060, 443)).fabric.size(), 1u);
  IpHdr back = ip_hdr(kOut4, kSleep.v4);
  Bytes synack = tcp(back, 443, 41060, uint8_t(kTcpSyn | kTcpAck), 5000, 1001);
  Out o = n->inbound(eth_ip(kAFabricMac, kNextHop, synack));
  ASSERT_EQ(o.local.size(), 1u) << n->drops();
  EXPECT_EQ(eth_dst(o.local[0]), kSleep.mac);
  EXPECT_EQ(l3_of(o.local[0]), dec_ttl(synack));
  EXPECT_EQ(n->ctr.egress_rx, 1u);
  // No flow opened from inside: dropped.
  Bytes stray = tcp(back, 443, 41061, uint8_t(kTcpSyn | kTcpAck), 5000, 1001);
  EXPECT_TRUE(n->inbound(eth_ip(kAFabricMac, kNextHop, stray)).local.empty());
  EXPECT_EQ(n->drops(), "no_route=1");
  // Without an egress block, plain IP on the fabric is not for us (as before).
  EXPECT_TRUE(a->inbound(eth_ip(kAFabricMac, kNextHop, synack)).local.empty());
  EXPECT_EQ(a->drops(), "not_for_us=1");
}

TEST_F(EgressTest, ReloadKeepsDecidedFlowsAndRemovingEgressCutsThem) {
  IpHdr h = ip_hdr(kSleep.v4, kOut4);
  Bytes ch = tcp(h, 41070, 443, uint8_t(kTcpAck | 0x08), 1, 1, hello("allowed.test"));
  ASSERT_EQ(send(kSleep, ch).fabric.size(), 1u);
  config::Config next = n->cfg;
  next.mutable_egress()->mutable_rules(0)->add_hosts("more.test");
  ASSERT_TRUE(n->reload(next));
  Bytes data = tcp(h, 41070, 443, kTcpAck, 2000, 1, pattern(100));
  EXPECT_EQ(send(kSleep, data).fabric.size(), 1u) << "decided by name: stays allowed";
  EXPECT_EQ(n->ctr.host_inspected, 1u);
  config::Config none = n->cfg;
  none.clear_egress();
  ASSERT_TRUE(n->reload(none));
  EXPECT_TRUE(send(kSleep, data).fabric.empty());
  EXPECT_EQ(n->drops(), "no_route=1");
}

}  // namespace
}  // namespace vanish::test
