// PeeringManager: two managers in one process over loopback, each with a simulated data plane
// (the SA set of its last "publish"). Packets sealed with A's live outbound SA are opened with
// B's live inbound SAs some polls later, so the install order is checked packet by packet:
// establishment, 50 forced rekeys with no packet lost, the packet-count trigger, a peer
// restart, a lost connection (SAs kept, then expired), certificate reload and expiry warnings,
// and a wrong identity (no SA installed).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <thread>

// OpenSSL's headers before IPsec-MB's (crypto/aead.hpp).
#include "ctl/dev_ca.hpp"
#include "ctl/peering/manager.hpp"
//
#include "crypto/aead.hpp"
#include "crypto/esp.hpp"

namespace vanish::ctl::peering {
namespace {

namespace fs = std::filesystem;
constexpr char kTd[] = "spiffe://cluster.local/ns/vanish-system/sa/";

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/vanish-peering-mgr-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// One appliance: a manager and the SA set its data plane would run.
struct Node {
  std::string name;
  std::unique_ptr<PeeringManager> m;
  std::shared_ptr<const DynamicSas> live;
  std::vector<std::string> log;
  unsigned publishes = 0;

  Node(std::string n, unsigned workers) : name(std::move(n)) {
    m = std::make_unique<PeeringManager>(name, workers,
                                         [this](bool, const std::string& l) { log.push_back(l); });
  }
  void pump(int timeout_ms = 1) {
    m->poll_once(timeout_ms);
    if (m->dirty()) {
      live = m->sas();
      ++publishes;
      m->published();
    }
  }
  const DynamicPeerSas* peer(const std::string& node) const {
    if (!live) return nullptr;
    for (auto& p : live->peers)
      if (p.node == node) return &p;
    return nullptr;
  }
  crypto::EspSa* outbound(const std::string& node, unsigned w) const {
    const DynamicPeerSas* p = peer(node);
    return p ? p->outbound[w].get() : nullptr;
  }
  crypto::EspSa* inbound(const std::string& node, uint32_t spi) const {
    const DynamicPeerSas* p = peer(node);
    if (!p) return nullptr;
    for (auto& in : p->inbound)
      if (in.sa->spi() == spi) return in.sa.get();
    return nullptr;
  }
  size_t n_inbound(const std::string& node) const {
    const DynamicPeerSas* p = peer(node);
    return p ? p->inbound.size() : 0;
  }
  PeerView view(const std::string& node) const {
    for (auto& v : m->view())
      if (v.node == node) return v;
    return {};
  }
};

struct Pki {
  TempDir dir;
  Pki() {
    std::string err;
    CaOptions o;
    EXPECT_TRUE(write_ca_dir((dir.path / "ca").string(), o, &err)) << err;
  }
  std::string issue(const std::string& node, const std::string& id,
                    std::optional<int64_t> not_after = std::nullopt) {
    IssueOptions o;
    o.spiffe_id = id;
    o.not_after = not_after;
    std::vector<std::string> written;
    std::string err;
    std::string out = (dir.path / node).string() + "/";
    EXPECT_TRUE(write_node_files((dir.path / "ca").string(), o, out, &written, &err)) << err;
    return out;
  }
  PeeringSettings settings(const std::string& node, const std::string& id = "") {
    std::string d = issue(node, id.empty() ? kTd + node : id);
    PeeringSettings s;
    s.cert_file = d + "cert.pem";
    s.key_file = d + "key.pem";
    s.bundle_file = d + "bundle.pem";
    s.listen_address = "127.0.0.1:0";
    s.trust_domain = "cluster.local";
    s.grace_ms = 300;
    s.handshake_timeout_ms = 1000;
    return s;
  }
};

// A (node-a, dials) and B (node-b, listens).
struct Pair {
  Pki pki;
  Node a{"node-a", 2}, b{"node-b", 3};
  PeeringSettings sa, sb;
  uint16_t b_port = 0;

  explicit Pair(PeeringSettings* tweak_a = nullptr) {
    sa = pki.settings("node-a");
    sb = pki.settings("node-b");
    if (tweak_a) {
      PeeringSettings t = *tweak_a;
      t.cert_file = sa.cert_file, t.key_file = sa.key_file, t.bundle_file = sa.bundle_file;
      sa = t;
    }
    start_b();
    std::string err;
    EXPECT_TRUE(a.m->configure(
        sa, {{"node-b", kTd + std::string("node-b"), "127.0.0.1:" + std::to_string(b_port)}}, {},
        &err))
        << err;
  }
  void start_b(uint16_t port = 0) {
    std::string err;
    sb.listen_address = "127.0.0.1:" + std::to_string(port);
    EXPECT_TRUE(
        b.m->configure(sb, {{"node-a", kTd + std::string("node-a"), "127.0.0.1:1"}}, {}, &err))
        << err;
    b_port = b.m->port();
  }
  void pump(int n = 1) {
    for (int i = 0; i < n; i++) {
      a.pump();
      b.pump();
    }
  }
  // Pumps until both see each other reachable (or the deadline).
  bool converge(int ms = 3000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      pump();
      if (a.view("node-b").reachable && b.view("node-a").reachable && a.outbound("node-b", 0) &&
          b.outbound("node-a", 0) && !a.m->dirty() && !b.m->dirty())
        return true;
    }
    return false;
  }
};

// Seals one packet on `tx`, returns its bytes.
std::vector<uint8_t> seal(crypto::EspSa* tx, uint32_t tag) {
  std::vector<uint8_t> pkt(crypto::kEspPayloadOffset + 64 + crypto::kEspTrailerMax +
                           crypto::kEspIcvLen);
  std::memcpy(&pkt[crypto::kEspPayloadOffset], &tag, 4);
  crypto::EspStatus st;
  size_t len = tx->seal(crypto::thread_imb_mgr(), pkt.data(), 64, 17, &st);
  EXPECT_EQ(st, crypto::EspStatus::kOk);
  pkt.resize(len);
  return pkt;
}

uint32_t spi_of(const std::vector<uint8_t>& p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// Opens with the receiver's live inbound SA for the packet's SPI.
bool deliver(const Node& rx, const std::string& from, std::vector<uint8_t> p, uint32_t tag) {
  crypto::EspSa* sa = rx.inbound(from, spi_of(p));
  if (!sa) return false;
  size_t plen = 0;
  uint8_t nh = 0;
  if (sa->open(crypto::thread_imb_mgr(), p.data(), p.size(), &plen, &nh) != crypto::EspStatus::kOk)
    return false;
  uint32_t got;
  std::memcpy(&got, &p[crypto::kEspPayloadOffset], 4);
  return got == tag && nh == 17;
}

TEST(PeeringManager, EstablishesAndKeysEveryWorkerBothWays) {
  Pair p;
  ASSERT_TRUE(p.converge()) << (p.a.log.empty() ? "" : p.a.log.back());
  // A runs 2 workers, B 3: each side has an outbound SA per own worker and an inbound SA per
  // peer worker it may hear from (16 announced SPIs, the peer's workers key theirs).
  for (unsigned w = 0; w < 2; w++) {
    crypto::EspSa* tx = p.a.outbound("node-b", w);
    ASSERT_NE(tx, nullptr);
    EXPECT_TRUE(deliver(p.b, "node-a", seal(tx, 100 + w), 100 + w)) << "a worker " << w;
  }
  for (unsigned w = 0; w < 3; w++) {
    crypto::EspSa* tx = p.b.outbound("node-a", w);
    ASSERT_NE(tx, nullptr);
    EXPECT_TRUE(deliver(p.a, "node-b", seal(tx, 200 + w), 200 + w)) << "b worker " << w;
  }
  EXPECT_EQ(p.a.m->stats().handshakes, 1u);
  EXPECT_EQ(p.b.m->stats().handshakes, 1u);
  PeerView va = p.a.view("node-b");
  EXPECT_TRUE(va.dialer);
  EXPECT_EQ(va.connection, "established");
  EXPECT_GT(va.handshake_ms, 0);
  EXPECT_FALSE(p.b.view("node-a").dialer);
  // The outer UDP source ports spread a peer's SAs (receive-side RSS).
  EXPECT_NE(p.a.peer("node-b")->udp_sport[0], p.a.peer("node-b")->udp_sport[1]);
}

// 50 rekeys (alternately asked for by either side) while both directions send a packet every
// poll; packets are delivered three polls after they were sealed. Every one must open.
TEST(PeeringManager, FiftyRekeysUnderTrafficLoseNothing) {
  Pair p;
  ASSERT_TRUE(p.converge());
  struct InFlight {
    std::vector<uint8_t> bytes;
    uint32_t tag;
    int due;
  };
  std::deque<InFlight> ab, ba;
  uint64_t sent = 0, delivered = 0, lost = 0;
  uint64_t rekeys_before = p.a.m->stats().rekeys;
  int step = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  uint64_t asked = 0;
  while (p.a.m->stats().rekeys - rekeys_before < 50 &&
         std::chrono::steady_clock::now() < deadline) {
    ++step;
    if (p.a.m->stats().rekeys - rekeys_before >= asked && !p.a.m->dirty()) {
      auto& who = asked % 2 ? p.b : p.a;
      EXPECT_EQ(who.m->rekey("").size(), 1u);
      ++asked;
    }
    for (unsigned w = 0; w < 2; w++) {
      crypto::EspSa* tx = p.a.outbound("node-b", w);
      ASSERT_NE(tx, nullptr) << "A lost its outbound SA at step " << step;
      ab.push_back({seal(tx, uint32_t(sent)), uint32_t(sent), step + 3});
      ++sent;
    }
    crypto::EspSa* tx = p.b.outbound("node-a", step % 3);
    ASSERT_NE(tx, nullptr);
    ba.push_back({seal(tx, uint32_t(sent)), uint32_t(sent), step + 3});
    ++sent;
    p.pump();
    while (!ab.empty() && ab.front().due <= step) {
      (deliver(p.b, "node-a", ab.front().bytes, ab.front().tag) ? delivered : lost)++;
      ab.pop_front();
    }
    while (!ba.empty() && ba.front().due <= step) {
      (deliver(p.a, "node-b", ba.front().bytes, ba.front().tag) ? delivered : lost)++;
      ba.pop_front();
    }
  }
  for (auto& f : ab) (deliver(p.b, "node-a", f.bytes, f.tag) ? delivered : lost)++;
  for (auto& f : ba) (deliver(p.a, "node-b", f.bytes, f.tag) ? delivered : lost)++;
  EXPECT_GE(p.a.m->stats().rekeys - rekeys_before, 50u);
  EXPECT_GE(p.b.m->stats().rekeys, 50u);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(delivered, sent);
  EXPECT_GT(sent, 150u);
  // Retired generations leave after the grace period: back to one generation each.
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end &&
         (p.a.n_inbound("node-b") > 3 || p.b.n_inbound("node-a") > 2))
    p.pump();
  EXPECT_EQ(p.a.n_inbound("node-b"), 3u);  // one inbound SA per worker of the sender
  EXPECT_EQ(p.b.n_inbound("node-a"), 2u);
  EXPECT_EQ(p.a.view("node-b").generations, 1u);
}

TEST(PeeringManager, PacketCountTriggersARekey) {
  PeeringSettings t;
  t.rekey_packets = 16;
  t.grace_ms = 300;
  t.listen_address = "127.0.0.1:0";
  t.trust_domain = "cluster.local";
  Pair p(&t);
  ASSERT_TRUE(p.converge());
  crypto::EspSa* tx = p.a.outbound("node-b", 0);
  for (int i = 0; i < 15; i++) ASSERT_TRUE(deliver(p.b, "node-a", seal(tx, i), i));
  p.pump(20);
  EXPECT_EQ(p.a.m->stats().rekeys, 0u);
  ASSERT_TRUE(deliver(p.b, "node-a", seal(tx, 15), 15));
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end && p.a.m->stats().rekeys == 0) p.pump();
  EXPECT_EQ(p.a.m->stats().rekeys, 1u);
  p.pump(3);  // the switch is published
  EXPECT_NE(p.a.outbound("node-b", 0), tx);
  EXPECT_TRUE(deliver(p.b, "node-a", seal(p.a.outbound("node-b", 0), 99), 99));
}

TEST(PeeringManager, SequenceSpaceTriggersARekeyLongBeforeItWraps) {
  Pair p;
  ASSERT_TRUE(p.converge());
  crypto::EspSa* tx = p.a.outbound("node-b", 1);
  tx->set_next_seq(uint64_t(1) << 62);  // half the ESN space used
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end && p.a.m->stats().rekeys == 0) p.pump();
  EXPECT_EQ(p.a.m->stats().rekeys, 1u);
  p.pump(3);
  EXPECT_NE(p.a.outbound("node-b", 1), tx);
  EXPECT_EQ(p.a.outbound("node-b", 1)->next_seq(), 1u);
}

// B goes away and comes back as a new process (new boot id) on the same port: A keeps its SAs
// meanwhile, reconnects by itself, sees the restart and drops B's old SAs.
TEST(PeeringManager, PeerRestartConvergesWithoutHelp) {
  Pair p;
  ASSERT_TRUE(p.converge());
  crypto::EspSa* old_tx = p.a.outbound("node-b", 0);
  uint16_t port = p.b_port;
  p.b.m.reset();
  p.b.live.reset();
  for (int i = 0; i < 50; i++) p.a.pump();
  EXPECT_EQ(p.a.m->stats().connections_lost, 1u);
  EXPECT_EQ(p.a.outbound("node-b", 0), old_tx) << "a lost connection keeps the SAs";
  // The restarted B.
  p.b.m = std::make_unique<PeeringManager>(
      "node-b", 3, [&](bool, const std::string& l) { p.b.log.push_back(l); });
  p.start_b(port);
  ASSERT_TRUE(p.converge(5000)) << (p.a.log.empty() ? "" : p.a.log.back());
  EXPECT_EQ(p.a.m->stats().peer_restarts, 1u);
  EXPECT_EQ(p.a.view("node-b").peer_restarts, 1u);
  EXPECT_NE(p.a.outbound("node-b", 0), old_tx);
  EXPECT_TRUE(deliver(p.b, "node-a", seal(p.a.outbound("node-b", 1), 7), 7));
  EXPECT_TRUE(deliver(p.a, "node-b", seal(p.b.outbound("node-a", 2), 8), 8));
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < end && p.a.n_inbound("node-b") > 3) p.pump();
  EXPECT_EQ(p.a.n_inbound("node-b"), 3u);
}

TEST(PeeringManager, SasExpireWithoutAConnection) {
  PeeringSettings t;
  t.sa_lifetime_s = 1;
  t.grace_ms = 300;
  t.reconnect_max_ms = 200;
  t.listen_address = "127.0.0.1:0";
  t.trust_domain = "cluster.local";
  Pair p(&t);
  ASSERT_TRUE(p.converge());
  p.b.m.reset();
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(400)) p.a.pump(5);
  EXPECT_NE(p.a.outbound("node-b", 0), nullptr);
  EXPECT_EQ(p.a.view("node-b").connection, "backoff");
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1600)) p.a.pump(5);
  EXPECT_EQ(p.a.outbound("node-b", 0), nullptr) << "expired SAs fail closed";
  EXPECT_EQ(p.a.n_inbound("node-b"), 0u);
  EXPECT_EQ(p.a.m->stats().sas_expired, 1u);
  EXPECT_FALSE(p.a.view("node-b").reachable);
}

TEST(PeeringManager, ReloadsChangedCredentialsAndKeepsOldOnesOnError) {
  Pair p;
  ASSERT_TRUE(p.converge());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  p.pki.issue("node-a", kTd + std::string("node-a"));  // same files, a new certificate
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end && p.a.m->stats().cert_reloads == 0) p.pump(5);
  EXPECT_EQ(p.a.m->stats().cert_reloads, 1u);
  std::string err;
  ASSERT_TRUE(write_file(p.sa.cert_file, "not a certificate\n", false, &err));
  end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end && p.a.m->stats().cert_reload_errors == 0)
    p.pump(5);
  EXPECT_EQ(p.a.m->stats().cert_reload_errors, 1u);
  // The previous (valid) credentials still make handshakes.
  p.a.m->rekey("node-b");
  end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end && p.a.m->stats().rekeys == 0) p.pump();
  EXPECT_EQ(p.a.m->stats().rekeys, 1u);
}

TEST(PeeringManager, WarnsWhenTheCertificateExpiresSoon) {
  Pki pki;
  auto soon = int64_t(time(nullptr)) + 3600;
  std::string d = pki.issue("node-a", kTd + std::string("node-a"), soon);
  PeeringSettings s;
  s.cert_file = d + "cert.pem", s.key_file = d + "key.pem", s.bundle_file = d + "bundle.pem";
  s.listen_address = "127.0.0.1:0";
  Node a("node-a", 1);
  std::string err;
  ASSERT_TRUE(a.m->configure(s, {}, {}, &err)) << err;
  EXPECT_EQ(a.m->stats().cert_expiry_soon, 1u);
  ASSERT_FALSE(a.log.empty());
  EXPECT_NE(a.log.back().find("expires in "), std::string::npos) << a.log.back();
}

TEST(PeeringManager, WrongIdentityInstallsNoSa) {
  Pki pki;
  Node a("node-a", 1), b("node-b", 1);
  PeeringSettings sa = pki.settings("node-a");
  // B presents the certificate of another node of the trust domain.
  PeeringSettings sb = pki.settings("node-b", kTd + std::string("node-x"));
  std::string err;
  ASSERT_TRUE(
      b.m->configure(sb, {{"node-a", kTd + std::string("node-a"), "127.0.0.1:1"}}, {}, &err));
  ASSERT_TRUE(a.m->configure(
      sa, {{"node-b", kTd + std::string("node-b"), "127.0.0.1:" + std::to_string(b.m->port())}}, {},
      &err));
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
  while (std::chrono::steady_clock::now() < end) {
    a.pump();
    b.pump();
  }
  EXPECT_GT(a.m->stats().refusals[size_t(Refusal::kWrongId)], 0u);
  EXPECT_EQ(a.outbound("node-b", 0), nullptr);
  EXPECT_EQ(a.n_inbound("node-b"), 0u);
  EXPECT_EQ(b.n_inbound("node-a"), 0u);
  EXPECT_NE(a.view("node-b").last_error.find("wrong_id"), std::string::npos)
      << a.view("node-b").last_error;
}

TEST(PeeringManager, BadCredentialFilesAreAClearError) {
  Node a("node-a", 1);
  PeeringSettings s;
  s.cert_file = "/nonexistent/cert.pem";
  s.key_file = "/nonexistent/key.pem";
  s.bundle_file = "/nonexistent/bundle.pem";
  s.listen_address = "127.0.0.1:0";
  std::string err;
  EXPECT_FALSE(a.m->configure(s, {}, {}, &err));
  EXPECT_NE(err.find("/nonexistent/cert.pem"), std::string::npos) << err;
}

}  // namespace
}  // namespace vanish::ctl::peering
