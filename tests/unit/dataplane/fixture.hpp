// Packet-fixture harness for the data plane (Katran / FastClick .clicktest style): a built frame
// goes into a real dp::Pipeline running on a compiled example config; the test asserts the exact
// frames that come out of the local and fabric TX buffers and the exact counters that moved.
//
// Contract
// - eal_init() runs once per process before any test (main.cpp): rte_eal_init without hugepages
//   or PCI, a per-process file prefix, one mbuf pool (no per-lcore cache, so in-use counts are
//   exact). eal_cleanup() frees the pool and calls rte_eal_cleanup().
// - A DpNode is one appliance with one worker (n_workers = 1): its compiled Snapshot, FlowTable,
//   counters, WorkerCtx (imb = crypto::thread_imb_mgr(), no handoff) and Pipeline. run_*() feed
//   frames in bursts of 32, copy what lands in ctx.to_local / ctx.to_fabric into byte vectors,
//   free those mbufs and empty the buffers.
// - DpTest checks in TearDown that every mbuf went back to the pool (each stage forwards or
//   frees every packet).
#pragma once

#include <rte_rcu_qsbr.h>

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/esp.hpp"
#include "ctl/compile.hpp"
#include "dataplane/pipeline.hpp"
#include "tests/unit/dataplane/packets.hpp"
#include "vanish/config.pb.h"

namespace vanish::test {

// ---- process-wide EAL ------------------------------------------------------------------------

bool eal_init(const char* argv0);
void eal_cleanup();
rte_mempool* pool();
// A one-segment mbuf from pool() holding f, with ol_flags set (e.g. an RX checksum verdict);
// nullptr if the pool is empty or f does not fit.
rte_mbuf* to_mbuf(const Bytes& f, uint64_t ol_flags = 0);

// ---- the reference mesh (/work/shared/scenario.md, examples/*.textproto) ---------------------

struct Workload {
  std::string name;
  IpAddr v4, v6;
  MacAddr mac;  // static neighbour MAC in the examples
  std::string principal;
  IpAddr addr(bool v6_) const { return v6_ ? v6 : v4; }
};

namespace mesh {
extern const MacAddr kAFabricMac, kBFabricMac, kALocalMac, kBLocalMac;
extern const IpAddr kAFabric4, kBFabric4, kAFabric6, kBFabric6;
extern const IpAddr kAGw4, kAGw6, kBGw4, kBGw6;
extern const Workload kSleep, kCurl, kHttpbin1, kHttpbin2, kPostgres;
}  // namespace mesh

// Static SA key material (RFC 4106: key, then salt).
struct SaKeys {
  uint32_t spi;
  Bytes key;
  std::array<uint8_t, 4> salt;
};
extern const SaKeys kSaAB, kSaBA;  // node-a -> node-b, node-b -> node-a (worker 0)

// Outer UDP source port the examples give worker 0's SA (derived: 49152 + spi % 16384).
uint16_t derived_sport(uint32_t spi);

// IPv4 or IPv6 header between two workloads (TTL 64, DF).
IpHdr ip_hdr(const Workload& src, const Workload& dst, bool v6, uint8_t ttl = 64);
IpHdr ip_hdr(const IpAddr& src, const IpAddr& dst, uint8_t ttl = 64);

// One flow of protocol p between two workloads (ports 40000 -> 7777 UDP, 40000 -> 8080 TCP,
// echo id 0x4242): packet i of it, and the reply to it.
enum class L4 { kUdp, kTcp, kIcmp };
const char* l4_name(L4 p);
Bytes flow_packet(L4 p, const IpHdr& h, unsigned i, size_t payload = 64);
Bytes reply_packet(L4 p, const IpHdr& h, unsigned i, size_t payload = 64);  // h: reply's header

// ---- one appliance ---------------------------------------------------------------------------

config::Config load_example(const std::string& name);

struct Out {
  std::vector<Bytes> local, fabric;
};

class DpNode {
 public:
  // Compiles cfg (generation 1, one worker); fails the current test (and returns null) if the
  // config does not compile.
  // deterministic_iv: outbound IVs equal the sequence number (byte-exact fixtures); false is
  // what vanishd runs (IV = seq ^ a random per-SA mask).
  static std::unique_ptr<DpNode> make(const config::Config& cfg, bool deterministic_iv = true);
  static std::unique_ptr<DpNode> load(const std::string& example,
                                      const std::function<void(config::Config&)>& edit = {});
  ~DpNode();

  Out outbound(const std::vector<Bytes>& frames);
  Out inbound(const std::vector<Bytes>& frames);
  Out outbound(const Bytes& frame) { return outbound(std::vector<Bytes>{frame}); }
  // The frames in runs of `run` bursts of 32 (the last may be shorter) the way the worker runs a
  // full burst and the one after it from the same port: outbound through Pipeline::outbound_run
  // (run 2: outbound_pair), inbound through inbound_pair (run 2 only); a lone last burst through
  // outbound() / inbound().
  Out outbound_runs(const std::vector<Bytes>& frames, unsigned run);
  Out inbound_pairs(const std::vector<Bytes>& frames);
  Out inbound(const Bytes& frame) { return inbound(std::vector<Bytes>{frame}); }
  // Hand-made mbufs (e.g. chains), at most one burst; the pipeline owns them from here.
  Out run_mbufs(const std::vector<rte_mbuf*>& pkts, bool inbound);

  // Publishes a new config generation the way the control thread does: compiled against the
  // current snapshot (SAs, replay windows and learned MACs carry forward), then swapped in.
  // The old snapshot is kept until the node dies (no RCU here: one thread).
  bool reload(const config::Config& next);
  // Republishes the running config the way LiveConfig::republish does after an SA change
  // (CompileOptions::same_config): a new generation, the same decision generation.
  bool republish();

  // Non-zero drop counters as "name=n name=n" in reason order ("" when nothing was dropped).
  std::string drops() const;
  uint64_t drop(dp::DropReason r) const { return ctr.drops[unsigned(r)]; }

  const dp::NodeInfo& self() const { return snap->self_node(); }
  // The MAC the neighbour table holds for a local workload address (zero if none).
  MacAddr neighbour(const IpAddr& a) const;

  config::Config cfg;
  std::unique_ptr<dp::Snapshot> snap;
  std::unique_ptr<dp::FlowTable> flows;
  dp::WorkerCounters ctr;
  dp::WorkerCtx ctx;
  std::unique_ptr<dp::Pipeline> pipe;

 private:
  DpNode() = default;
  Out run(const std::vector<Bytes>& frames, bool inbound);
  Out runs(const std::vector<Bytes>& frames, unsigned run, bool inbound);
  void run_burst(bool inbound, Out& out);
  std::unique_ptr<dp::Burst> burst_;
  std::vector<std::unique_ptr<dp::Burst>> run_;
  std::vector<std::unique_ptr<dp::Snapshot>> old_snaps_;
  bool swap_in(const config::Config& next, bool same_config);
  bool deterministic_iv_ = true;
};

// A frame from a local workload to the node's gateway MAC.
Bytes local_frame(const DpNode& n, const MacAddr& src_mac, const Bytes& ip);

// ---- ESP, independently of crypto/ ------------------------------------------------------------

// ESP opened with OpenSSL EVP AES-GCM: nonce = salt || IV, AAD = SPI || seq_hi || seq_lo (ESN)
// or SPI || seq_lo.
struct EspOpened {
  uint32_t spi = 0, seq = 0;
  uint64_t iv = 0;
  Bytes payload;  // before the padding
  Bytes padding;
  uint8_t pad_len = 0, next_header = 0;
};
std::optional<EspOpened> esp_open_ref(const SaKeys& k, const uint8_t* esp, size_t len,
                                      bool esn = true, uint32_t seq_hi = 0);

// ESP header .. ICV sealed with OpenSSL (IV = 64-bit seq; ESN AAD; padding 1,2,3..; SPI k.spi).
Bytes esp_seal_ref(const SaKeys& k, uint64_t seq, const Bytes& payload,
                   uint8_t next_header = kProtoUdp);
// The same around a plaintext the caller built whole (payload | padding | pad length | NH), so a
// test can authenticate a malformed trailer.
Bytes esp_seal_ref_text(const SaKeys& k, uint64_t seq, const Bytes& text);

// A fabric frame taken apart: outer headers checked for well-formedness, ESP opened with the
// reference, UDP/Geneve parsed.
struct FabricPacket {
  MacAddr eth_src, eth_dst;
  bool outer_v6 = false;
  Bytes outer_ip;  // the outer IP header (20 or 40 bytes)
  IpAddr outer_src, outer_dst;
  uint16_t sport = 0, dport = 0;
  EspOpened esp;
  uint16_t inner_sport = 0, inner_dport = 0;
  uint8_t geneve_ver = 0, geneve_optlen = 0, geneve_flags = 0;
  uint16_t geneve_protocol = 0;
  Bytes geneve_options;
  Bytes inner;  // the inner IP packet
};
::testing::AssertionResult decode_fabric(const Bytes& frame, const SaKeys& k, FabricPacket* out);

// A test-owned SA with the static SA's key material (to seal packets with a valid ICV).
std::unique_ptr<crypto::EspSa> make_sa(const SaKeys& k, uint32_t spi = 0);
// ESP header .. ICV around payload, sealed by sa.
Bytes seal(crypto::EspSa& sa, const Bytes& payload, uint8_t next_header = kProtoUdp);
// A fabric frame node-a -> node-b (or b -> a) around an ESP packet, IPv4 or IPv6 outer.
Bytes fabric_a_to_b(const Bytes& esp, bool outer_v6 = false);
Bytes fabric_b_to_a(const Bytes& esp, bool outer_v6 = false);

// ---- the fixture -----------------------------------------------------------------------------

// An RCU QSBR variable for `threads` readers with reader `reader` registered and online, for
// flow tables with shared readers; offline and unregistered again at the end of the scope.
class TestQsbr {
 public:
  TestQsbr(unsigned threads, unsigned reader)
      : mem_((rte_rcu_qsbr_get_memsize(threads) + 7) / 8 + 8), reader_(reader) {
    v_ = reinterpret_cast<rte_rcu_qsbr*>((reinterpret_cast<uintptr_t>(mem_.data()) + 63) & ~63ull);
    ok_ = rte_rcu_qsbr_init(v_, threads) == 0 && rte_rcu_qsbr_thread_register(v_, reader) == 0;
    if (ok_) rte_rcu_qsbr_thread_online(v_, reader);
  }
  ~TestQsbr() {
    if (!ok_) return;
    rte_rcu_qsbr_thread_offline(v_, reader_);
    rte_rcu_qsbr_thread_unregister(v_, reader_);
  }
  TestQsbr(const TestQsbr&) = delete;
  TestQsbr& operator=(const TestQsbr&) = delete;
  bool ok() const { return ok_; }
  rte_rcu_qsbr* get() const { return v_; }

 private:
  std::vector<uint64_t> mem_;
  rte_rcu_qsbr* v_ = nullptr;
  unsigned reader_;
  bool ok_ = false;
};

class DpTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Frees the nodes (and any extra ones the test registered) before the leak check.
  DpNode* keep(std::unique_ptr<DpNode> n);

  std::unique_ptr<DpNode> a, b;  // node-a.textproto, node-b.textproto
  std::vector<std::unique_ptr<DpNode>> extra_;
  unsigned baseline_in_use_ = 0;
};

}  // namespace vanish::test
