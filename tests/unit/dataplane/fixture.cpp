#include "tests/unit/dataplane/fixture.hpp"

#include <openssl/evp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstring>

#include "crypto/aead.hpp"
#include "ctl/config_loader.hpp"

namespace vanish::test {

// ---- EAL -------------------------------------------------------------------------------------

namespace {
rte_mempool* g_pool = nullptr;
unsigned g_flow_tables = 0;
constexpr unsigned kPoolSize = 16383;
}  // namespace

bool eal_init(const char* argv0) {
  std::string prefix = "vanish-fix-" + std::to_string(getpid());
  std::vector<std::string> args = {
      argv0,  "--no-huge",         "-m", "256", "--no-pci", "--file-prefix",
      prefix, "--log-level=error", "-l", "0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(int(argv.size()), argv.data()) < 0) {
    std::fprintf(stderr, "rte_eal_init failed: %s\n", rte_strerror(rte_errno));
    return false;
  }
  // No per-lcore cache: rte_mempool_in_use_count() is then exact for the leak check.
  g_pool = rte_pktmbuf_pool_create("vanish_fix_pool", kPoolSize, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
  if (!g_pool) {
    std::fprintf(stderr, "mbuf pool: %s\n", rte_strerror(rte_errno));
    rte_eal_cleanup();
    return false;
  }
  return true;
}

void eal_cleanup() {
  rte_mempool_free(g_pool);
  g_pool = nullptr;
  rte_eal_cleanup();
}

rte_mempool* pool() {
  return g_pool;
}

// ---- the reference mesh ----------------------------------------------------------------------

namespace mesh {
const MacAddr kAFabricMac = mac("02:00:00:00:16:01"), kBFabricMac = mac("02:00:00:00:16:02"),
              kALocalMac = mac("02:00:00:00:10:01"), kBLocalMac = mac("02:00:00:00:10:02");
const IpAddr kAFabric4 = ip("172.16.0.1"), kBFabric4 = ip("172.16.0.2"),
             kAFabric6 = ip("fd00:16::1"), kBFabric6 = ip("fd00:16::2");
const IpAddr kAGw4 = ip("10.1.0.1"), kAGw6 = ip("fd00:10:1::1"), kBGw4 = ip("10.2.0.1"),
             kBGw6 = ip("fd00:10:2::1");
const Workload kSleep{"sleep", ip("10.1.0.10"), ip("fd00:10:1::10"), mac("02:00:00:aa:00:10"),
                      "cluster.local/ns/default/sa/sleep"};
const Workload kCurl{"curl-untrusted", ip("10.1.0.11"), ip("fd00:10:1::11"),
                     mac("02:00:00:aa:00:11"), "cluster.local/ns/untrusted/sa/default"};
const Workload kHttpbin1{"httpbin-1", ip("10.2.0.20"), ip("fd00:10:2::20"),
                         mac("02:00:00:aa:00:20"), "cluster.local/ns/default/sa/httpbin"};
const Workload kHttpbin2{"httpbin-2", ip("10.2.0.21"), ip("fd00:10:2::21"),
                         mac("02:00:00:aa:00:21"), "cluster.local/ns/default/sa/httpbin"};
const Workload kPostgres{"postgres", ip("10.2.0.30"), ip("fd00:10:2::30"), mac("02:00:00:aa:00:30"),
                         "cluster.local/ns/data/sa/postgres"};
}  // namespace mesh

const SaKeys kSaAB{0x00000a00,
                   {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09,
                    0xcf, 0x4f, 0x3c},
                   {0xde, 0xad, 0xbe, 0xef}};
const SaKeys kSaBA{0x00000b00,
                   {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c,
                    0x0d, 0x0e, 0x0f},
                   {0xca, 0xfe, 0xba, 0xbe}};

uint16_t derived_sport(uint32_t spi) {
  return uint16_t(49152 + spi % 16384);
}

IpHdr ip_hdr(const Workload& src, const Workload& dst, bool v6, uint8_t ttl) {
  return ip_hdr(src.addr(v6), dst.addr(v6), ttl);
}

IpHdr ip_hdr(const IpAddr& src, const IpAddr& dst, uint8_t ttl) {
  IpHdr h;
  h.src = src;
  h.dst = dst;
  h.ttl = ttl;
  return h;
}

const char* l4_name(L4 p) {
  return p == L4::kUdp ? "udp" : p == L4::kTcp ? "tcp" : "icmp";
}

Bytes flow_packet(L4 p, const IpHdr& h, unsigned i, size_t payload) {
  switch (p) {
    case L4::kUdp:
      return udp(h, 40000, 7777, pattern(payload, uint8_t(i)));
    case L4::kTcp:
      return tcp(h, 40000, 8080, kTcpAck, 1000 + i * uint32_t(payload), 1,
                 pattern(payload, uint8_t(i)));
    case L4::kIcmp:
      return icmp_echo(h, true, 0x4242, uint16_t(i + 1), pattern(payload, uint8_t(i)));
  }
  return {};
}

Bytes reply_packet(L4 p, const IpHdr& h, unsigned i, size_t payload) {
  switch (p) {
    case L4::kUdp:
      return udp(h, 7777, 40000, pattern(payload, uint8_t(0x80 + i)));
    case L4::kTcp:
      return tcp(h, 8080, 40000, kTcpAck, 5000 + i * uint32_t(payload), 1000,
                 pattern(payload, uint8_t(0x80 + i)));
    case L4::kIcmp:
      return icmp_echo(h, false, 0x4242, uint16_t(i + 1), pattern(payload, uint8_t(i)));
  }
  return {};
}

// ---- DpNode ----------------------------------------------------------------------------------

config::Config load_example(const std::string& name) {
  config::Config c;
  std::vector<std::string> errors;
  std::string path = std::string(VANISH_SOURCE_ROOT) + "/examples/" + name;
  bool ok = ctl::load_config(path, &c, &errors);
  std::string all;
  for (const auto& e : errors) all += e + "\n";
  EXPECT_TRUE(ok) << path << "\n" << all;
  return c;
}

std::unique_ptr<DpNode> DpNode::make(const config::Config& cfg, bool deterministic_iv) {
  std::unique_ptr<DpNode> n(new DpNode());
  n->cfg = cfg;
  std::vector<ctl::ConfigError> errors;
  n->deterministic_iv_ = deterministic_iv;
  n->snap =
      ctl::compile_snapshot(cfg, ctl::CompileOptions{1, 1, deterministic_iv}, nullptr, &errors);
  if (!n->snap) {
    std::string all;
    for (const auto& e : errors) all += "  " + e.str() + "\n";
    ADD_FAILURE() << "config does not compile:\n" << all;
    return nullptr;
  }
  n->flows = std::make_unique<dp::FlowTable>("fix_flows_" + std::to_string(g_flow_tables++), 4096,
                                             SOCKET_ID_ANY);
  if (!n->flows->ok()) {
    ADD_FAILURE() << "flow table: " << rte_strerror(rte_errno);
    return nullptr;
  }
  n->ctx.id = 0;
  n->ctx.snap = n->snap.get();
  n->ctx.flows = n->flows.get();
  n->ctx.ctr = &n->ctr;
  n->ctx.imb = crypto::thread_imb_mgr();
  n->ctx.pool = pool();
  n->ctx.handoff = nullptr;
  n->ctx.n_handoff = 0;
  n->ctx.tsc_hz = rte_get_tsc_hz();
  n->pipe = std::make_unique<dp::Pipeline>();
  n->burst_ = std::make_unique<dp::Burst>();
  return n;
}

std::unique_ptr<DpNode> DpNode::load(const std::string& example,
                                     const std::function<void(config::Config&)>& edit) {
  config::Config c = load_example(example);
  if (edit) edit(c);
  return make(c);
}

bool DpNode::republish() {
  return swap_in(cfg, true);
}

bool DpNode::reload(const config::Config& next) {
  return swap_in(next, false);
}

bool DpNode::swap_in(const config::Config& next, bool same_config) {
  std::vector<ctl::ConfigError> errors;
  ctl::CompileOptions o{1, snap->generation + 1, deterministic_iv_};
  o.same_config = same_config;
  auto s = ctl::compile_snapshot(next, o, snap.get(), &errors);
  if (!s) {
    std::string all;
    for (const auto& e : errors) all += "  " + e.str() + "\n";
    ADD_FAILURE() << "config does not compile:\n" << all;
    return false;
  }
  cfg = next;
  old_snaps_.push_back(std::move(snap));
  snap = std::move(s);
  ctx.snap = snap.get();
  return true;
}

DpNode::~DpNode() {
  // Nothing may be left in the TX buffers (run() empties them); free defensively.
  for (uint16_t i = 0; i < ctx.to_local.n; i++) rte_pktmbuf_free(ctx.to_local.pkts[i]);
  for (uint16_t i = 0; i < ctx.to_fabric.n; i++) rte_pktmbuf_free(ctx.to_fabric.pkts[i]);
}

rte_mbuf* to_mbuf(const Bytes& f, uint64_t ol_flags) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  if (!m) return nullptr;
  char* p = rte_pktmbuf_append(m, uint16_t(f.size()));
  if (!p) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  if (!f.empty()) std::memcpy(p, f.data(), f.size());
  m->ol_flags |= ol_flags;
  return m;
}

namespace {

Bytes from_mbuf(const rte_mbuf* m) {
  Bytes b(rte_pktmbuf_pkt_len(m));
  const void* p = rte_pktmbuf_read(m, 0, uint32_t(b.size()), b.data());
  if (p != b.data() && !b.empty()) std::memcpy(b.data(), p, b.size());
  return b;
}

void drain(dp::TxBuffer& buf, std::vector<Bytes>& out) {
  for (uint16_t i = 0; i < buf.n; i++) {
    EXPECT_EQ(buf.pkts[i]->nb_segs, 1) << "a stage emitted a multi-segment mbuf";
    out.push_back(from_mbuf(buf.pkts[i]));
    rte_pktmbuf_free(buf.pkts[i]);
  }
  buf.n = 0;
}

}  // namespace

void DpNode::run_burst(bool inbound, Out& out) {
  dp::Burst& b = *burst_;
  ctx.now = rte_rdtsc();
  if (inbound) {
    pipe->inbound(ctx, b, false);
  } else {
    pipe->outbound(ctx, b);
  }
  EXPECT_EQ(b.n, 0) << "the pipeline left packets in the burst";
  drain(ctx.to_local, out.local);
  drain(ctx.to_fabric, out.fabric);
}

Out DpNode::run(const std::vector<Bytes>& frames, bool inbound) {
  Out out;
  dp::Burst& b = *burst_;
  for (size_t i = 0; i < frames.size(); i += dp::kBurstSize) {
    b.n = 0;
    for (size_t j = i; j < frames.size() && j < i + dp::kBurstSize; j++) {
      rte_mbuf* m = to_mbuf(frames[j]);
      if (!m) {
        ADD_FAILURE() << "mbuf pool exhausted building input frame " << j;
        continue;
      }
      b.push(m);
    }
    run_burst(inbound, out);
  }
  return out;
}

Out DpNode::run_mbufs(const std::vector<rte_mbuf*>& pkts, bool inbound) {
  Out out;
  dp::Burst& b = *burst_;
  b.n = 0;
  for (rte_mbuf* m : pkts) b.push(m);
  run_burst(inbound, out);
  return out;
}

Out DpNode::outbound_runs(const std::vector<Bytes>& frames, unsigned run) {
  return runs(frames, run, false);
}

Out DpNode::inbound_pairs(const std::vector<Bytes>& frames) {
  return runs(frames, 2, true);
}

Out DpNode::runs(const std::vector<Bytes>& frames, unsigned run, bool inbound) {
  Out out;
  while (run_.size() < run) run_.push_back(std::make_unique<dp::Burst>());
  std::vector<dp::Burst*> bs;
  for (size_t i = 0; i < frames.size(); i += run * dp::kBurstSize) {
    bs.clear();
    for (size_t k = 0; k < run && i + k * dp::kBurstSize < frames.size(); k++) {
      dp::Burst& b = *run_[k];
      b.n = 0;
      for (size_t j = i + k * dp::kBurstSize; j < frames.size() && j < i + (k + 1) * dp::kBurstSize;
           j++) {
        rte_mbuf* m = to_mbuf(frames[j]);
        if (!m) {
          ADD_FAILURE() << "mbuf pool exhausted building input frame " << j;
          continue;
        }
        b.push(m);
      }
      bs.push_back(&b);
    }
    ctx.now = rte_rdtsc();
    if (bs.size() == 1 && inbound)
      pipe->inbound(ctx, *bs[0], false);
    else if (bs.size() == 1)
      pipe->outbound(ctx, *bs[0]);
    else if (inbound)
      pipe->inbound_pair(ctx, *bs[0], *bs[1], false);
    else
      pipe->outbound_run(ctx, bs.data(), unsigned(bs.size()));
    for (dp::Burst* b : bs) EXPECT_EQ(b->n, 0) << "the pipeline left packets in a burst";
    EXPECT_EQ(ctx.lookahead, nullptr);
    drain(ctx.to_local, out.local);
    drain(ctx.to_fabric, out.fabric);
  }
  return out;
}

Out DpNode::outbound(const std::vector<Bytes>& frames) {
  return run(frames, false);
}
Out DpNode::inbound(const std::vector<Bytes>& frames) {
  return run(frames, true);
}

std::string DpNode::drops() const {
  std::string s;
  for (unsigned r = 0; r < dp::kDropReasonCount; r++) {
    if (!ctr.drops[r]) continue;
    if (!s.empty()) s += ' ';
    s += std::string(dp::drop_reason_name(dp::DropReason(r))) + "=" + std::to_string(ctr.drops[r]);
  }
  return s;
}

MacAddr DpNode::neighbour(const IpAddr& a) const {
  const dp::WorkloadInfo* w = snap->workload(a);
  MacAddr m;
  if (!w || !snap->neighbours->get(w->neighbour_slot, &m)) return MacAddr{};
  return m;
}

Bytes local_frame(const DpNode& n, const MacAddr& src_mac, const Bytes& ip) {
  return eth_ip(n.self().local_mac, src_mac, ip);
}

// ---- ESP reference ---------------------------------------------------------------------------

std::optional<EspOpened> esp_open_ref(const SaKeys& k, const uint8_t* esp, size_t len, bool esn,
                                      uint32_t seq_hi) {
  if (len < 16 + 2 + 16) return std::nullopt;
  EspOpened o;
  o.spi = rd32(esp);
  o.seq = rd32(esp + 4);
  o.iv = uint64_t(rd32(esp + 8)) << 32 | rd32(esp + 12);
  uint8_t nonce[12];
  std::memcpy(nonce, k.salt.data(), 4);
  std::memcpy(nonce + 4, esp + 8, 8);
  uint8_t aad[12];
  size_t aad_len;
  if (esn) {
    std::memcpy(aad, esp, 4);
    wr32(aad + 4, seq_hi);
    std::memcpy(aad + 8, esp + 4, 4);
    aad_len = 12;
  } else {
    std::memcpy(aad, esp, 8);
    aad_len = 8;
  }
  size_t ct_len = len - 16 - 16;
  Bytes text(ct_len + 16);
  const EVP_CIPHER* cipher = k.key.size() == 16   ? EVP_aes_128_gcm()
                             : k.key.size() == 24 ? EVP_aes_192_gcm()
                                                  : EVP_aes_256_gcm();
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int n = 0;
  bool ok = EVP_DecryptInit_ex(c, cipher, nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
            EVP_DecryptInit_ex(c, nullptr, nullptr, k.key.data(), nonce) == 1 &&
            EVP_DecryptUpdate(c, nullptr, &n, aad, int(aad_len)) == 1 &&
            EVP_DecryptUpdate(c, text.data(), &n, esp + 16, int(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
                                const_cast<uint8_t*>(esp + 16 + ct_len)) == 1 &&
            EVP_DecryptFinal_ex(c, text.data() + n, &n) == 1;
  EVP_CIPHER_CTX_free(c);
  if (!ok || ct_len < 2) return std::nullopt;
  text.resize(ct_len);
  o.next_header = text[ct_len - 1];
  o.pad_len = text[ct_len - 2];
  if (o.pad_len > ct_len - 2) return std::nullopt;
  size_t plen = ct_len - 2 - o.pad_len;
  o.payload.assign(text.begin(), text.begin() + long(plen));
  o.padding.assign(text.begin() + long(plen), text.begin() + long(ct_len - 2));
  return o;
}

Bytes esp_seal_ref(const SaKeys& k, uint64_t seq, const Bytes& payload, uint8_t next_header) {
  Bytes text = payload;
  size_t pad = (4 - ((payload.size() + 2) & 3)) & 3;
  for (size_t i = 1; i <= pad; i++) text.push_back(uint8_t(i));
  text.push_back(uint8_t(pad));
  text.push_back(next_header);
  return esp_seal_ref_text(k, seq, text);
}

Bytes esp_seal_ref_text(const SaKeys& k, uint64_t seq, const Bytes& text) {
  Bytes esp(16);
  wr32(&esp[0], k.spi);
  wr32(&esp[4], uint32_t(seq));
  wr32(&esp[8], uint32_t(seq >> 32));
  wr32(&esp[12], uint32_t(seq));
  uint8_t nonce[12];
  std::memcpy(nonce, k.salt.data(), 4);
  std::memcpy(nonce + 4, &esp[8], 8);
  uint8_t aad[12];
  std::memcpy(aad, &esp[0], 4);
  wr32(aad + 4, uint32_t(seq >> 32));
  std::memcpy(aad + 8, &esp[4], 4);
  Bytes ct(text.size() + 16);
  uint8_t tag[16];
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int n = 0;
  bool ok = EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
            EVP_EncryptInit_ex(c, nullptr, nullptr, k.key.data(), nonce) == 1 &&
            EVP_EncryptUpdate(c, nullptr, &n, aad, 12) == 1 &&
            EVP_EncryptUpdate(c, ct.data(), &n, text.data(), int(text.size())) == 1 &&
            EVP_EncryptFinal_ex(c, ct.data() + n, &n) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
  EVP_CIPHER_CTX_free(c);
  EXPECT_TRUE(ok) << "OpenSSL AES-GCM seal failed";
  esp.insert(esp.end(), ct.begin(), ct.begin() + long(text.size()));
  esp.insert(esp.end(), tag, tag + 16);
  return esp;
}

::testing::AssertionResult decode_fabric(const Bytes& f, const SaKeys& k, FabricPacket* out) {
  using ::testing::AssertionFailure;
  if (f.size() < kEth + 20 + 8) return AssertionFailure() << "frame too short: " << f.size();
  out->eth_dst = eth_dst(f);
  out->eth_src = eth_src(f);
  uint16_t et = eth_type(f);
  Bytes l3 = l3_of(f);
  size_t ip_len;
  if (et == kEthIpv4) {
    if ((l3[0] >> 4) != 4 || (l3[0] & 0xf) != 5) return AssertionFailure() << "outer IPv4 hdr";
    if (!ipv4_header_ok(l3)) return AssertionFailure() << "outer IPv4 checksum is wrong";
    ip_len = rd16(l3, 2);
    out->outer_v6 = false;
    out->outer_ip.assign(l3.begin(), l3.begin() + 20);
  } else if (et == kEthIpv6) {
    if ((l3[0] >> 4) != 6 || l3.size() < 48) return AssertionFailure() << "outer IPv6 hdr";
    ip_len = 40 + rd16(l3, 4);
    out->outer_v6 = true;
    out->outer_ip.assign(l3.begin(), l3.begin() + 40);
  } else {
    return AssertionFailure() << "outer ethertype " << et;
  }
  if (ip_len != l3.size())
    return AssertionFailure() << "outer IP length " << ip_len << " != frame payload " << l3.size();
  if (ip_proto(l3) != kProtoUdp) return AssertionFailure() << "outer proto " << int(ip_proto(l3));
  out->outer_src = ip_src(l3);
  out->outer_dst = ip_dst(l3);
  if (!l4_checksum_ok(l3)) return AssertionFailure() << "outer UDP checksum is wrong";
  size_t hl = ip_hdr_len(l3);
  out->sport = rd16(l3, hl);
  out->dport = rd16(l3, hl + 2);
  if (rd16(l3, hl + 4) != l3.size() - hl)
    return AssertionFailure() << "outer UDP length " << rd16(l3, hl + 4);
  auto esp = esp_open_ref(k, l3.data() + hl + 8, l3.size() - hl - 8);
  if (!esp) return AssertionFailure() << "ESP does not open with the reference (OpenSSL)";
  out->esp = *esp;
  const Bytes& p = esp->payload;
  if (p.size() < 16) return AssertionFailure() << "ESP payload too short for UDP+Geneve";
  out->inner_sport = rd16(p, 0);
  out->inner_dport = rd16(p, 2);
  if (rd16(p, 4) != p.size())
    return AssertionFailure() << "inner UDP length " << rd16(p, 4) << " != " << p.size();
  out->geneve_ver = p[8] >> 6;
  out->geneve_optlen = p[8] & 0x3f;
  out->geneve_flags = p[9];
  out->geneve_protocol = rd16(p, 10);
  size_t opt_end = 16 + size_t(out->geneve_optlen) * 4;
  if (opt_end > p.size()) return AssertionFailure() << "Geneve options overrun";
  out->geneve_options.assign(p.begin() + 16, p.begin() + long(opt_end));
  out->inner.assign(p.begin() + long(opt_end), p.end());
  return ::testing::AssertionSuccess();
}

std::unique_ptr<crypto::EspSa> make_sa(const SaKeys& k, uint32_t spi) {
  auto sa = std::make_unique<crypto::EspSa>();
  crypto::EspSaParams p;
  p.spi = spi ? spi : k.spi;
  p.alg = crypto::AeadAlg::kAes128Gcm;
  p.key = std::span<const uint8_t>(k.key.data(), k.key.size());
  p.salt = k.salt;
  p.esn = true;
  EXPECT_TRUE(sa->init(p));
  return sa;
}

Bytes seal(crypto::EspSa& sa, const Bytes& payload, uint8_t next_header) {
  Bytes buf(crypto::kEspPayloadOffset + payload.size() + crypto::kEspTrailerMax +
            crypto::kEspIcvLen);
  std::memcpy(buf.data() + crypto::kEspPayloadOffset, payload.data(), payload.size());
  crypto::EspStatus st;
  size_t n = sa.seal(crypto::thread_imb_mgr(), buf.data(), payload.size(), next_header, &st);
  EXPECT_EQ(st, crypto::EspStatus::kOk);
  buf.resize(n);
  return buf;
}

Bytes fabric_a_to_b(const Bytes& esp, bool outer_v6) {
  using namespace mesh;
  OuterHdr o{kAFabricMac, kBFabricMac, outer_v6 ? kAFabric6 : kAFabric4,
             outer_v6 ? kBFabric6 : kBFabric4, derived_sport(kSaAB.spi)};
  return fabric_frame(o, esp);
}

Bytes fabric_b_to_a(const Bytes& esp, bool outer_v6) {
  using namespace mesh;
  OuterHdr o{kBFabricMac, kAFabricMac, outer_v6 ? kBFabric6 : kBFabric4,
             outer_v6 ? kAFabric6 : kAFabric4, derived_sport(kSaBA.spi)};
  return fabric_frame(o, esp);
}

// ---- fixture ---------------------------------------------------------------------------------

void DpTest::SetUp() {
  baseline_in_use_ = rte_mempool_in_use_count(pool());
  a = DpNode::load("node-a.textproto");
  b = DpNode::load("node-b.textproto");
  ASSERT_TRUE(a && b);
}

DpNode* DpTest::keep(std::unique_ptr<DpNode> n) {
  extra_.push_back(std::move(n));
  return extra_.back().get();
}

void DpTest::TearDown() {
  a.reset();
  b.reset();
  extra_.clear();
  EXPECT_EQ(rte_mempool_in_use_count(pool()), baseline_in_use_)
      << "mbufs leaked: a stage neither forwarded nor freed a packet";
}

}  // namespace vanish::test
