// compile_snapshot: the examples compile to the expected tables; SAs and learned neighbour MACs
// carry forward across generations.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "ctl/authz.hpp"
#include "ctl/compile.hpp"
#include "tests/unit/ctl/test_util.hpp"

namespace vanish::ctl {
namespace {

using test::raw_ip;

constexpr uint32_t kSpiAB = 0xa00, kSpiBA = 0xb00;

IpAddr ip(const std::string& s) {
  IpAddr a;
  EXPECT_TRUE(IpAddr::parse(s, &a)) << s;
  return a;
}

MacAddr mac(const std::string& s) {
  MacAddr m;
  EXPECT_TRUE(MacAddr::parse(s, &m)) << s;
  return m;
}

std::string dump(const std::vector<ConfigError>& errors) {
  std::string s;
  for (const auto& e : errors) s += "  " + e.str() + "\n";
  return s;
}

std::unique_ptr<dp::Snapshot> compile(const config::Config& c, unsigned workers,
                                      const dp::Snapshot* prev = nullptr, uint64_t gen = 1) {
  std::vector<ConfigError> errors;
  auto s = compile_snapshot(c, CompileOptions{workers, gen}, prev, &errors);
  EXPECT_TRUE(s) << dump(errors);
  return s;
}

MacAddr neighbour_of(const dp::Snapshot& s, const std::string& addr) {
  const dp::WorkloadInfo* w = s.workload(ip(addr));
  MacAddr m;
  if (!w || !s.neighbours->get(w->neighbour_slot, &m)) return MacAddr{};
  return m;
}

TEST(Compile, NodeAExample) {
  auto s = compile(test::load_example("node-a.textproto"), 2, nullptr, 7);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->generation, 7u);
  EXPECT_EQ(s->n_workers, 2u);
  EXPECT_EQ(s->fabric_mtu, 1500u);
  EXPECT_FALSE(s->outer_ipv6);

  // Nodes in config order; self is node-a.
  ASSERT_EQ(s->nodes.size(), 2u);
  EXPECT_EQ(s->self, NodeIdx(0));
  const dp::NodeInfo& a = s->self_node();
  EXPECT_EQ(a.name, "node-a");
  EXPECT_EQ(a.spiffe_id, "spiffe://cluster.local/ns/vanish-system/sa/node-a");
  EXPECT_EQ(a.fabric_v4, ip("172.16.0.1"));
  EXPECT_EQ(a.fabric_v6, ip("fd00:16::1"));
  EXPECT_EQ(a.fabric_mac, mac("02:00:00:00:16:01"));
  EXPECT_EQ(a.gateway_v4, ip("10.1.0.1"));
  EXPECT_EQ(a.gateway_v6, ip("fd00:10:1::1"));
  EXPECT_EQ(a.local_mac, mac("02:00:00:00:10:01"));
  ASSERT_EQ(a.workload_prefixes.size(), 2u);
  EXPECT_EQ(a.workload_prefixes[0].str(), "10.1.0.0/24");
  EXPECT_EQ(a.workload_prefixes[1].str(), "fd00:10:1::/64");
  EXPECT_EQ(s->nodes[1].name, "node-b");
  EXPECT_EQ(s->nodes[1].fabric_v4, ip("172.16.0.2"));
  EXPECT_EQ(s->nodes[1].fabric_mac, mac("02:00:00:00:16:02"));

  // Workloads: config order, every address indexed, local ones get dense neighbour slots.
  ASSERT_EQ(s->workloads.size(), 5u);
  ASSERT_EQ(s->workload_meta.size(), 5u);
  EXPECT_EQ(s->workload_by_ip.size(), 10u);
  EXPECT_EQ(s->workload_meta[0].name, "sleep");
  EXPECT_EQ(s->workload_meta[0].uid, "Kubernetes//Pod/default/sleep");
  EXPECT_EQ(s->workload_meta[0].ns, "default");
  EXPECT_EQ(s->workload_meta[0].service_account, "sleep");
  ASSERT_EQ(s->workload_meta[0].addresses.size(), 2u);
  EXPECT_EQ(s->workload_meta[0].addresses[1], ip("fd00:10:1::10"));
  EXPECT_EQ(*s->workload_by_ip.find(ip("fd00:10:2::21")), 3u);  // httpbin-2
  EXPECT_EQ(*s->workload_by_ip.find(ip("10.2.0.30")), 4u);      // postgres
  EXPECT_EQ(s->workload(ip("10.9.9.9")), nullptr);
  EXPECT_EQ(s->workloads[0].node, NodeIdx(0));
  EXPECT_EQ(s->workloads[2].node, NodeIdx(1));
  EXPECT_EQ(s->workloads[0].neighbour_slot, 0u);
  EXPECT_EQ(s->workloads[1].neighbour_slot, 1u);
  for (int i = 2; i < 5; i++) EXPECT_EQ(s->workloads[i].neighbour_slot, kInvalidIdx);

  // Identities: distinct principals in order of first use (httpbin-1 and -2 share one).
  ASSERT_EQ(s->identities.size(), 4u);
  EXPECT_EQ(s->identities[0].principal, "cluster.local/ns/default/sa/sleep");
  EXPECT_EQ(s->identities[0].id, IdentityId(0x1871fdbe));
  EXPECT_EQ(s->identities[0].ns, "default");
  EXPECT_EQ(s->identities[0].service_account, "sleep");
  EXPECT_EQ(s->identities[1].principal, "cluster.local/ns/untrusted/sa/default");
  EXPECT_EQ(s->identities[2].principal, "cluster.local/ns/default/sa/httpbin");
  EXPECT_EQ(s->identities[3].principal, "cluster.local/ns/data/sa/postgres");
  EXPECT_EQ(s->workloads[0].identity, IdentityId(0x1871fdbe));
  EXPECT_EQ(s->workloads[2].identity, s->workloads[3].identity);
  EXPECT_EQ(s->workloads[4].identity, IdentityId(0xe74a56ef));
  EXPECT_EQ(s->identity_by_id.size(), 4u);
  for (uint32_t i = 0; i < s->identities.size(); i++)
    EXPECT_EQ(*s->identity_by_id.find(s->identities[i].id.value), i);

  // Outbound: one SA per worker towards node-b, SPI base + w.
  ASSERT_EQ(s->peer_tx.size(), 2u);
  EXPECT_FALSE(s->peer_tx[0].reachable);
  const dp::PeerTx& tx = s->peer_tx[1];
  EXPECT_TRUE(tx.reachable);
  EXPECT_FALSE(tx.outer_ipv6);
  ASSERT_NE(tx.sa[0], nullptr);
  ASSERT_NE(tx.sa[1], nullptr);
  EXPECT_EQ(tx.sa[2], nullptr);
  EXPECT_EQ(tx.sa[0]->spi(), kSpiAB);
  EXPECT_EQ(tx.sa[1]->spi(), kSpiAB + 1);
  EXPECT_TRUE(tx.sa[0]->esn());
  EXPECT_EQ(tx.sa[0]->alg(), crypto::AeadAlg::kAes128Gcm);
  EXPECT_EQ(tx.udp_sport[0], 49152 + kSpiAB % 16384);
  EXPECT_EQ(tx.udp_sport[1], 49152 + (kSpiAB + 1) % 16384);

  // Inbound: 16 SPIs from node-b, owners spread over our 2 workers.
  EXPECT_EQ(s->sa_in.size(), dp::kMaxWorkers);
  for (uint32_t k = 0; k < dp::kMaxWorkers; k++) {
    const dp::InboundSa* in = s->sa_in.find(kSpiBA + k);
    ASSERT_NE(in, nullptr) << k;
    EXPECT_EQ(in->sa->spi(), kSpiBA + k);
    EXPECT_EQ(in->peer, NodeIdx(1));
    EXPECT_EQ(in->owner_worker, k % 2);
  }
  EXPECT_EQ(s->sa_in.find(kSpiBA + 16), nullptr);
  EXPECT_EQ(s->sa_in.find(kSpiAB), nullptr);  // node-a -> node-b is not received here
  EXPECT_EQ(s->sa_owner.size(), 2u + dp::kMaxWorkers);

  // Static neighbours of the local workloads.
  ASSERT_TRUE(s->neighbours);
  EXPECT_EQ(s->neighbours->size(), 2u);
  EXPECT_EQ(neighbour_of(*s, "10.1.0.10"), mac("02:00:00:aa:00:10"));
  EXPECT_EQ(neighbour_of(*s, "fd00:10:1::11"), mac("02:00:00:aa:00:11"));
}

TEST(Compile, NodeBExampleIsTheMirror) {
  auto s = compile(test::load_example("node-b.textproto"), 4);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->self, NodeIdx(1));
  EXPECT_TRUE(s->peer_tx[0].reachable);
  EXPECT_FALSE(s->peer_tx[1].reachable);
  for (unsigned w = 0; w < 4; w++) EXPECT_EQ(s->peer_tx[0].sa[w]->spi(), kSpiBA + w);
  EXPECT_EQ(s->peer_tx[0].sa[4], nullptr);
  for (uint32_t k = 0; k < dp::kMaxWorkers; k++) {
    const dp::InboundSa* in = s->sa_in.find(kSpiAB + k);
    ASSERT_NE(in, nullptr);
    EXPECT_EQ(in->peer, NodeIdx(0));
    EXPECT_EQ(in->owner_worker, k % 4);
  }
  EXPECT_EQ(s->workloads[2].neighbour_slot, 0u);  // httpbin-1
  EXPECT_EQ(s->workloads[3].neighbour_slot, 1u);
  EXPECT_EQ(s->workloads[4].neighbour_slot, 2u);
  EXPECT_EQ(s->workloads[0].neighbour_slot, kInvalidIdx);
  EXPECT_EQ(neighbour_of(*s, "10.2.0.20"), mac("02:00:00:aa:00:20"));
  EXPECT_EQ(neighbour_of(*s, "fd00:10:2::21"), mac("02:00:00:aa:00:21"));
  EXPECT_EQ(neighbour_of(*s, "10.2.0.30"), mac("02:00:00:aa:00:30"));
}

TEST(Compile, V6FabricUsesIpv6Outer) {
  auto s = compile(test::load_example("node-a-v6fabric.textproto"), 1);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->outer_ipv6);
  EXPECT_TRUE(s->peer_tx[1].outer_ipv6);
  EXPECT_TRUE(s->peer_tx[1].reachable);
}

TEST(Compile, UdpSportBaseAndEsnOverrides) {
  config::Config c = test::load_example("node-a.textproto");
  c.mutable_static_sas(0)->set_udp_sport_base(40000);
  c.mutable_static_sas(0)->set_esn(false);
  auto s = compile(c, 3);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->peer_tx[1].udp_sport[0], 40000);
  EXPECT_EQ(s->peer_tx[1].udp_sport[2], 40002);
  EXPECT_FALSE(s->peer_tx[1].sa[0]->esn());
}

// replay_window 0 (with esn: false) reaches the receiving SAs as anti-replay off; the sending
// side and the default keep their window.
TEST(Compile, ReplayWindowZeroTurnsAntiReplayOffOnTheReceiver) {
  config::Config c = test::load_example("node-a.textproto");
  ASSERT_EQ(c.static_sas(1).to_node(), "node-a");
  c.mutable_static_sas(1)->set_esn(false);
  c.mutable_static_sas(1)->set_replay_window(0);
  auto s = compile(c, 2);
  ASSERT_TRUE(s);
  const dp::InboundSa* in = s->sa_in.find(kSpiBA);
  ASSERT_NE(in, nullptr);
  EXPECT_FALSE(in->sa->anti_replay());
  EXPECT_FALSE(in->sa->esn());
  EXPECT_TRUE(s->peer_tx[1].sa[0]->anti_replay());
  auto d = compile(test::load_example("node-a.textproto"), 2);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->sa_in.find(kSpiBA)->sa->anti_replay());
  EXPECT_EQ(d->sa_in.find(kSpiBA)->sa->replay_window().size_bits(), 4096u);
}

TEST(Compile, StaticSasSealAndOpenAcrossNodes) {
  auto a = compile(test::load_example("node-a.textproto"), 2);
  auto b = compile(test::load_example("node-b.textproto"), 3);
  ASSERT_TRUE(a && b);
  IMB_MGR* mgr = crypto::thread_imb_mgr();
  ASSERT_NE(mgr, nullptr);
  for (unsigned w = 0; w < 2; w++) {
    uint8_t pkt[128] = {};
    const char msg[] = "hello node-b";
    std::memcpy(pkt + crypto::kEspPayloadOffset, msg, sizeof msg);
    crypto::EspStatus st;
    size_t len = a->peer_tx[1].sa[w]->seal(mgr, pkt, sizeof msg, 17, &st);
    ASSERT_EQ(st, crypto::EspStatus::kOk);
    const dp::InboundSa* in = b->sa_in.find(kSpiAB + w);
    ASSERT_NE(in, nullptr);
    EXPECT_EQ(in->owner_worker, w % 3);
    size_t plen = 0;
    uint8_t nh = 0;
    ASSERT_EQ(in->sa->open(mgr, pkt, len, &plen, &nh), crypto::EspStatus::kOk) << w;
    EXPECT_EQ(plen, sizeof msg);
    EXPECT_EQ(nh, 17);
    EXPECT_EQ(std::memcmp(pkt + crypto::kEspPayloadOffset, msg, sizeof msg), 0);
  }
}

TEST(Compile, RejectsBadOptionsAndInvalidConfigs) {
  config::Config c = test::load_example("node-a.textproto");
  std::vector<ConfigError> errors;
  EXPECT_EQ(compile_snapshot(c, CompileOptions{0, 1}, nullptr, &errors), nullptr);
  EXPECT_EQ(compile_snapshot(c, CompileOptions{dp::kMaxWorkers + 1, 1}, nullptr, &errors), nullptr);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].resource, "options");
  EXPECT_EQ(errors[0].field, "n_workers");
  EXPECT_NE(compile_snapshot(c, CompileOptions{dp::kMaxWorkers, 1}, nullptr, &errors), nullptr);

  errors.clear();
  c.mutable_workloads(0)->set_node("node-z");
  EXPECT_EQ(compile_snapshot(c, CompileOptions{1, 1}, nullptr, &errors), nullptr);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].resource, "workload default/sleep");
}

TEST(Compile, HundredThousandWorkloadsCompileQuickly) {
  // Design budget: 100k workloads compile in < 1 s. Addresses differ only in their last two
  // octets, the case a weak address hash degrades to quadratic time on.
  config::Config c = test::load_example("node-a.textproto");
  c.mutable_nodes(0)->add_workload_prefixes("10.128.0.0/9");
  constexpr int kN = 100000;
  for (int i = 0; i < kN; i++) {
    auto* w = c.add_workloads();
    w->set_name("w" + std::to_string(i));
    w->set_namespace_("ns" + std::to_string(i % 1000));
    w->set_service_account("sa" + std::to_string(i % 10));
    w->set_node("node-a");
    const char raw[4] = {10, char(128 + (i >> 16)), char(i >> 8), char(i)};
    w->add_addresses(std::string(raw, 4));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto s = compile(c, 2);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->workloads.size(), size_t(kN) + 5);
  EXPECT_EQ(s->identities.size(), 4u + 1000u);  // (i % 1000, i % 10) pairs
  // Workload i has 10.(128 + i / 65536).(i / 256 % 256).(i % 256); i = 99999 = 0x1869f.
  const uint32_t* idx = s->workload_by_ip.find(IpAddr::v4_host(0x0a81869fu));
  ASSERT_NE(idx, nullptr);
  EXPECT_EQ(*idx, 5u + 99999u);
  EXPECT_LT(secs, 5.0) << "generous bound for slow CI machines; typically ~0.3 s";
}

// ---- carry-forward ----

TEST(Compile, SasCarryForwardWithTheirState) {
  config::Config c = test::load_example("node-a.textproto");
  auto g1 = compile(c, 2, nullptr, 1);
  ASSERT_TRUE(g1);
  IMB_MGR* mgr = crypto::thread_imb_mgr();
  uint8_t pkt[64] = {};
  crypto::EspStatus st;
  g1->peer_tx[1].sa[1]->seal(mgr, pkt, 4, 17, &st);
  ASSERT_EQ(g1->peer_tx[1].sa[1]->next_seq(), 2u);

  // Same config (plus an unrelated change): every SA is the very same object.
  c.mutable_fabric()->set_mtu(1400);
  auto g2 = compile(c, 2, g1.get(), 2);
  ASSERT_TRUE(g2);
  EXPECT_EQ(g2->fabric_mtu, 1400u);
  for (unsigned w = 0; w < 2; w++) EXPECT_EQ(g2->peer_tx[1].sa[w], g1->peer_tx[1].sa[w]);
  for (uint32_t k = 0; k < dp::kMaxWorkers; k++)
    EXPECT_EQ(g2->sa_in.find(kSpiBA + k)->sa, g1->sa_in.find(kSpiBA + k)->sa);
  EXPECT_EQ(g2->sa_owner.size(), g1->sa_owner.size());

  // The old generation goes away; the carried SA lives on with its sequence number.
  crypto::EspSa* carried = g2->peer_tx[1].sa[1];
  g1.reset();
  EXPECT_EQ(carried->next_seq(), 2u);

  // A new inbound key gives new inbound SAs; the outbound ones still carry.
  c.mutable_static_sas(1)->set_key_hex("0f0e0d0c0b0a09080706050403020100");
  auto g3 = compile(c, 2, g2.get(), 3);
  ASSERT_TRUE(g3);
  EXPECT_EQ(g3->peer_tx[1].sa[1], carried);
  for (uint32_t k = 0; k < dp::kMaxWorkers; k++)
    EXPECT_NE(g3->sa_in.find(kSpiBA + k)->sa, g2->sa_in.find(kSpiBA + k)->sa);

  // A new salt or SPI base is a new SA too.
  c.mutable_static_sas(0)->set_salt_hex("00000001");
  auto g4 = compile(c, 2, g3.get(), 4);
  ASSERT_TRUE(g4);
  EXPECT_NE(g4->peer_tx[1].sa[1], carried);
  EXPECT_EQ(g4->peer_tx[1].sa[1]->next_seq(), 1u);
  c.mutable_static_sas(0)->set_spi_base(0x2000);
  auto g5 = compile(c, 2, g4.get(), 5);
  ASSERT_TRUE(g5);
  EXPECT_NE(g5->peer_tx[1].sa[0], g4->peer_tx[1].sa[0]);
  EXPECT_EQ(g5->peer_tx[1].sa[0]->spi(), 0x2000u);

  // A different worker count re-assigns inbound owners: new SAs rather than shared windows.
  auto g6 = compile(c, 4, g5.get(), 6);
  ASSERT_TRUE(g6);
  EXPECT_NE(g6->sa_in.find(kSpiBA)->sa, g5->sa_in.find(kSpiBA)->sa);
}

TEST(Compile, LearnedNeighboursCarryForwardByAddress) {
  config::Config c = test::load_example("node-a.textproto");
  c.clear_neighbours();
  auto g1 = compile(c, 1, nullptr, 1);
  ASSERT_TRUE(g1);
  EXPECT_EQ(neighbour_of(*g1, "10.1.0.11"), MacAddr{});
  // A worker learns curl-untrusted's MAC.
  g1->neighbours->learn(g1->workload(ip("10.1.0.11"))->neighbour_slot, mac("02:00:00:bb:00:11"));

  // Next generation: a new local workload comes first, so every slot moves.
  auto* w = c.mutable_workloads()->Add();
  w->set_name("new");
  w->set_namespace_("default");
  w->set_node("node-a");
  w->add_addresses(raw_ip("10.1.0.99"));
  for (int i = c.workloads_size() - 1; i > 0; i--) c.mutable_workloads()->SwapElements(i, i - 1);
  auto g2 = compile(c, 1, g1.get(), 2);
  ASSERT_TRUE(g2);
  EXPECT_EQ(g2->workload(ip("10.1.0.99"))->neighbour_slot, 0u);
  EXPECT_NE(g2->workload(ip("10.1.0.11"))->neighbour_slot,
            g1->workload(ip("10.1.0.11"))->neighbour_slot);
  EXPECT_EQ(neighbour_of(*g2, "10.1.0.11"), mac("02:00:00:bb:00:11"));
  EXPECT_EQ(neighbour_of(*g2, "fd00:10:1::11"), mac("02:00:00:bb:00:11"));  // same workload
  EXPECT_EQ(neighbour_of(*g2, "10.1.0.99"), MacAddr{});
  EXPECT_NE(g2->neighbours, g1->neighbours);

  // Static entries win over learned ones.
  auto* n = c.add_neighbours();
  n->set_address("10.1.0.11");
  n->set_mac("02:00:00:aa:00:11");
  auto g3 = compile(c, 1, g2.get(), 3);
  ASSERT_TRUE(g3);
  EXPECT_EQ(neighbour_of(*g3, "10.1.0.11"), mac("02:00:00:aa:00:11"));

  // A workload that moved to another node leaves no slot behind.
  c.clear_neighbours();
  for (auto& wl : *c.mutable_workloads())
    if (wl.name() == "curl-untrusted") wl.set_node("node-b");
  for (auto& wl : *c.mutable_workloads())
    if (wl.name() == "curl-untrusted") {
      wl.set_addresses(0, raw_ip("10.2.0.11"));
      wl.set_addresses(1, raw_ip("fd00:10:2::11"));
    }
  auto g4 = compile(c, 1, g3.get(), 4);
  ASSERT_TRUE(g4);
  EXPECT_EQ(g4->neighbours->size(), 2u);  // new + sleep
}

}  // namespace
}  // namespace vanish::ctl

namespace vanish::ctl {
namespace {

TEST(CompileServices, VipsEndpointsTargetPortsWeightsAndAuthz) {
  config::Config c = test::load_example("node-a.textproto");
  for (auto& w : *c.mutable_workloads()) {
    if (w.name() == "httpbin-1") w.mutable_capacity()->set_value(3);
    if (w.name() == "httpbin-2") {
      // Its own target port for service port 80.
      auto& pl = (*w.mutable_services())["default/httpbin.default.svc.cluster.local"];
      pl.mutable_ports(0)->set_target_port(9090);
    }
  }
  auto s = compile(c, 1);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->authz) << "the engine is part of every snapshot";
  EXPECT_EQ(s->authz->n_policies(), 2u);
  EXPECT_EQ(s->service_meta.size(), 1u);
  for (const char* v : {"10.96.0.20", "fd00:96::20"}) {
    SCOPED_TRACE(v);
    const dp::VipEntry* e = s->vips.find(dp::VipKey{ip(v), 80, 0});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->service, 0u);
    ASSERT_EQ(e->n_endpoints, 2u);
    EXPECT_EQ(e->total_weight, 4u);
    const dp::ServiceEndpoint& e1 = s->endpoints[e->first_endpoint];
    const dp::ServiceEndpoint& e2 = s->endpoints[e->first_endpoint + 1];
    bool v6 = std::string(v).find(':') != std::string::npos;
    EXPECT_EQ(e1.addr, ip(v6 ? "fd00:10:2::20" : "10.2.0.20")) << "endpoint of the VIP's family";
    EXPECT_EQ(e1.target_port, 8080);
    EXPECT_EQ(e1.cum_weight, 3u);
    EXPECT_EQ(e2.addr, ip(v6 ? "fd00:10:2::21" : "10.2.0.21"));
    EXPECT_EQ(e2.target_port, 9090) << "the workload's own target port wins";
    EXPECT_EQ(e2.cum_weight, 4u);
    EXPECT_EQ(e->waypoint, kInvalidIdx);
  }
  EXPECT_FALSE(s->vips.find(dp::VipKey{ip("10.96.0.20"), 81, 0}));
  EXPECT_FALSE(s->has_waypoints);
  // Identity indices agree with the authz engine's.
  for (size_t w = 0; w < s->workloads.size(); w++)
    EXPECT_EQ(s->workloads[w].identity_index, s->authz->identity_of_workload(uint32_t(w)));
}

TEST(CompileServices, UnhealthyOrZeroCapacityEndpointsAreLeftOut) {
  config::Config c = test::load_example("node-a.textproto");
  for (auto& w : *c.mutable_workloads()) {
    if (w.name() == "httpbin-1") w.set_status(istio::workload::UNHEALTHY);
    if (w.name() == "httpbin-2") w.mutable_capacity()->set_value(0);
  }
  auto s = compile(c, 1);
  ASSERT_TRUE(s);
  const dp::VipEntry* e = s->vips.find(dp::VipKey{ip("10.96.0.20"), 80, 0});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->n_endpoints, 0u);
}

TEST(CompileServices, WaypointsResolveByAddressOrService) {
  config::Config c = test::load_example("node-a.textproto");
  for (auto& w : *c.mutable_workloads())
    if (w.name() == "postgres")
      w.mutable_waypoint()->mutable_address()->set_address(raw_ip("10.2.0.21"));
  auto* wp = c.mutable_services(0)->mutable_waypoint()->mutable_hostname();
  wp->set_namespace_("default");
  wp->set_hostname("httpbin.default.svc.cluster.local");  // its own endpoints: first = httpbin-1
  auto s = compile(c, 1);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->has_waypoints);
  EXPECT_EQ(s->workloads[4].waypoint, 3u);  // postgres -> httpbin-2
  const dp::VipEntry* e = s->vips.find(dp::VipKey{ip("10.96.0.20"), 80, 0});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->waypoint, 2u);  // httpbin-1
  EXPECT_EQ(s->waypoint_of(ip("10.2.0.30"), 0, 6), 3u);
  EXPECT_EQ(s->waypoint_of(ip("10.96.0.20"), uint16_t(80 << 8), 6), 2u);
}

// An SA as the peering manager would hand over (the key's first byte varies, so two differ).
std::shared_ptr<crypto::EspSa> peering_sa(uint32_t spi, uint8_t k0 = 1) {
  auto sa = std::make_shared<crypto::EspSa>();
  crypto::EspSaParams p;
  const uint8_t key[16] = {k0, 2, 3};
  p.key = key;
  p.spi = spi;
  EXPECT_TRUE(sa->init(p));
  return sa;
}

// Peering SAs (CompileOptions::dynamic_sas): the same objects land in PeerTx and sa_in; a peer
// without them is unreachable; an SPI collision rejects the snapshot.
TEST(Compile, DynamicSasFromPeering) {
  config::Config c = test::load_example("node-a.textproto");
  c.clear_static_sas();
  auto make = [](uint32_t spi) { return peering_sa(spi); };
  auto dyn = std::make_shared<DynamicSas>();
  DynamicPeerSas peer;
  peer.node = "node-b";
  peer.outbound[0] = make(0x1000);
  peer.outbound[1] = make(0x1001);
  peer.udp_sport[0] = 50001;
  peer.udp_sport[1] = 50002;
  peer.inbound.push_back({make(0x2000), 0});
  peer.inbound.push_back({make(0x2001), 5});
  dyn->peers.push_back(peer);
  CompileOptions o{2, 1};
  o.dynamic_sas = [&dyn] { return dyn; };
  std::vector<ConfigError> errors;
  auto s = compile_snapshot(c, o, nullptr, &errors);
  ASSERT_TRUE(s) << dump(errors);
  const dp::PeerTx& pt = s->peer_tx[1];
  EXPECT_TRUE(pt.reachable);
  EXPECT_EQ(pt.sa[0], peer.outbound[0].get());
  EXPECT_EQ(pt.sa[1], peer.outbound[1].get());
  EXPECT_EQ(pt.udp_sport[1], 50002);
  ASSERT_TRUE(s->sa_in.find(0x2001));
  EXPECT_EQ(s->sa_in.find(0x2001)->sa, peer.inbound[1].sa.get());
  EXPECT_EQ(s->sa_in.find(0x2001)->owner_worker, 1);  // 5 % 2 workers
  EXPECT_EQ(s->sa_in.find(0x2000)->peer.value, 1u);
  // Without an SA for every worker: unreachable (fail closed).
  dyn->peers[0].outbound[1].reset();
  s = compile_snapshot(c, o, nullptr, &errors);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->peer_tx[1].reachable);
  // An inbound SPI twice.
  dyn->peers[0].inbound.push_back({make(0x2000), 0});
  errors.clear();
  EXPECT_FALSE(compile_snapshot(c, o, nullptr, &errors));
  EXPECT_NE(dump(errors).find("already in use"), std::string::npos) << dump(errors);
}

// Snapshot::decision_generation: a republish of the same config whose SAs changed (a rekey)
// keeps the cached flow decisions valid; a peer becoming reachable or unreachable, or any
// applied config, does not.
TEST(Compile, DecisionGenerationSurvivesAnSaOnlyRepublish) {
  config::Config c = test::load_example("node-a.textproto");
  c.clear_static_sas();
  auto make = [](uint32_t spi, uint8_t k0) { return peering_sa(spi, k0); };
  auto dyn = std::make_shared<DynamicSas>();
  DynamicPeerSas peer;
  peer.node = "node-b";
  peer.outbound[0] = make(0x1000, 1);
  peer.udp_sport[0] = 50001;
  dyn->peers.push_back(peer);
  std::vector<ConfigError> errors;
  CompileOptions o{1, 1};
  o.dynamic_sas = [&dyn] { return dyn; };
  auto s1 = compile_snapshot(c, o, nullptr, &errors);
  ASSERT_TRUE(s1) << dump(errors);
  EXPECT_EQ(s1->decision_generation, 1u);
  ASSERT_TRUE(s1->peer_tx[1].reachable);

  // Rekey: new SA objects, same config, node-b still reachable.
  dyn->peers[0].outbound[0] = make(0x1001, 9);
  o.generation = 2;
  o.same_config = true;
  auto s2 = compile_snapshot(c, o, s1.get(), &errors);
  ASSERT_TRUE(s2) << dump(errors);
  EXPECT_EQ(s2->generation, 2u);
  EXPECT_EQ(s2->decision_generation, 1u) << "flows decided under generation 1 stay valid";
  EXPECT_NE(s2->peer_tx[1].sa[0], s1->peer_tx[1].sa[0]) << "the new SA is served";

  // node-b loses its SAs: unreachable, so flows to it must be re-decided (fail closed).
  dyn->peers[0].outbound[0].reset();
  o.generation = 3;
  auto s3 = compile_snapshot(c, o, s2.get(), &errors);
  ASSERT_TRUE(s3) << dump(errors);
  EXPECT_FALSE(s3->peer_tx[1].reachable);
  EXPECT_EQ(s3->decision_generation, 3u);

  // An applied config (same_config false) always re-decides, even when nothing differs.
  dyn->peers[0].outbound[0] = make(0x1002, 5);
  o.generation = 4;
  o.same_config = false;
  auto s4 = compile_snapshot(c, o, s3.get(), &errors);
  ASSERT_TRUE(s4) << dump(errors);
  EXPECT_EQ(s4->decision_generation, 4u);
  o.generation = 5;
  o.same_config = true;
  auto s5 = compile_snapshot(c, o, s4.get(), &errors);
  ASSERT_TRUE(s5) << dump(errors);
  EXPECT_EQ(s5->decision_generation, 4u);
  // No previous snapshot: nothing to keep.
  o.generation = 6;
  auto s6 = compile_snapshot(c, o, nullptr, &errors);
  ASSERT_TRUE(s6) << dump(errors);
  EXPECT_EQ(s6->decision_generation, 6u);
}

// An SA-only republish (same_config with the previous snapshot) rebuilds the SA tables only:
// the compiled config is taken from the previous snapshot (the authz engine, egress policy and
// neighbour table are the same objects, so a MAC learned before is still known), the static SAs
// carry forward, and the peering SAs of the moment are served. Without a previous snapshot, or
// with another worker count, it is a full compile.
TEST(Compile, SaOnlyRepublishReusesTheCompiledConfig) {
  config::Config c = test::load_example("node-a.textproto");
  auto dyn = std::make_shared<DynamicSas>();
  CompileOptions o{1, 1};
  o.dynamic_sas = [&dyn] { return dyn; };
  std::vector<ConfigError> errors;
  auto s1 = compile_snapshot(c, o, nullptr, &errors);
  ASSERT_TRUE(s1) << dump(errors);
  ASSERT_TRUE(s1->neighbours && s1->neighbours->size() > 0);
  MacAddr learned;
  ASSERT_TRUE(MacAddr::parse("02:00:00:00:00:42", &learned));
  s1->neighbours->learn(0, learned);

  // An inbound peering SA from node-b appears: only the SA tables change.
  DynamicPeerSas peer;
  peer.node = "node-b";
  peer.inbound.push_back({peering_sa(0x3000), 0});
  dyn->peers.push_back(peer);
  o.generation = 2;
  o.same_config = true;
  auto s2 = compile_snapshot(c, o, s1.get(), &errors);
  ASSERT_TRUE(s2) << dump(errors);
  EXPECT_EQ(s2->generation, 2u);
  EXPECT_EQ(s2->authz.get(), s1->authz.get());
  EXPECT_EQ(s2->egress.get(), s1->egress.get());
  EXPECT_EQ(s2->neighbours.get(), s1->neighbours.get());
  MacAddr got;
  EXPECT_TRUE(s2->neighbours->get(0, &got));
  EXPECT_EQ(got, learned);
  EXPECT_EQ(s2->workloads.size(), s1->workloads.size());
  EXPECT_EQ(s2->workload_by_ip.size(), s1->workload_by_ip.size());
  EXPECT_EQ(s2->vips.size(), s1->vips.size());
  EXPECT_EQ(s2->self.value, s1->self.value);
  ASSERT_EQ(s2->nodes.size(), s1->nodes.size());
  EXPECT_EQ(s2->nodes[1].name, s1->nodes[1].name);
  // The static SAs are the same objects (sequence numbers carry on); the new inbound one is in.
  EXPECT_EQ(s2->peer_tx[1].sa[0], s1->peer_tx[1].sa[0]);
  EXPECT_TRUE(s2->peer_tx[1].reachable);
  ASSERT_TRUE(s2->sa_in.find(0x3000));
  EXPECT_EQ(s2->sa_in.find(0x3000)->sa, peer.inbound[0].sa.get());
  EXPECT_FALSE(s1->sa_in.find(0x3000));
  // Looked up through the reused tables, a workload still resolves.
  IpAddr a;
  ASSERT_TRUE(IpAddr::parse("10.1.0.10", &a));
  ASSERT_TRUE(s1->workload(a));
  ASSERT_TRUE(s2->workload(a));
  EXPECT_EQ(s2->workload(a)->identity_index, s1->workload(a)->identity_index);

  // A clashing SPI is still refused on this path (nothing validated it before).
  dyn->peers[0].inbound.push_back({peering_sa(0x3000), 0});
  errors.clear();
  o.generation = 3;
  EXPECT_FALSE(compile_snapshot(c, o, s2.get(), &errors));
  EXPECT_NE(dump(errors).find("already in use"), std::string::npos) << dump(errors);
  dyn->peers[0].inbound.pop_back();

  // Another worker count, or an applied config: a full compile (a new authz engine).
  CompileOptions o2 = o;
  o2.n_workers = 2;
  auto s3 = compile_snapshot(c, o2, s2.get(), &errors);
  ASSERT_TRUE(s3) << dump(errors);
  EXPECT_NE(s3->authz.get(), s2->authz.get());
  o.same_config = false;
  auto s4 = compile_snapshot(c, o, s2.get(), &errors);
  ASSERT_TRUE(s4) << dump(errors);
  EXPECT_NE(s4->authz.get(), s2->authz.get());
}

}  // namespace
}  // namespace vanish::ctl
