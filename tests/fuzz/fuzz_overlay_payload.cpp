// Fuzz target: the decrypted ESP payload (UDP 6081 | Geneve | inner IP) is attacker-shaped when a
// peer is compromised. The input is sealed with node-a -> node-b's SA (so the ICV is valid) and
// fed to node-b: mutations exercise the Geneve parser, the inner IP parser and the identity check.
#include <rte_ether.h>

#include "ctl/model.hpp"
#include "tests/support/node_pair.hpp"
#include "tests/fuzz/fuzz_target.hpp"
#include "tests/fuzz/seeds.hpp"

using namespace vanish;

namespace {

crypto::EspSa& sa() {
  static crypto::EspSa* s = [] {
    static const uint8_t key[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                    0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
    crypto::EspSaParams p{};
    p.spi = 0xa00;
    p.alg = crypto::AeadAlg::kAes128Gcm;
    p.key = std::span<const uint8_t>(key, 16);
    p.salt = {0xde, 0xad, 0xbe, 0xef};
    p.esn = true;
    auto* x = new crypto::EspSa;
    if (!x->init(p)) std::abort();
    // Start far beyond node-b's window so our sequence numbers are always fresh.
    x->set_next_seq(1ull << 40);
    return x;
  }();
  return *s;
}

}  // namespace

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  using namespace vanish::fuzz;
  uint32_t id = ctl::identity_id_for("cluster.local/ns/default/sa/sleep").value;
  auto payload = [&](const Bytes& inner, uint16_t proto) {
    Bytes b = {0xc0,
               0x00,
               0x17,
               0xc1,
               uint8_t((8 + 16 + inner.size()) >> 8),
               uint8_t(8 + 16 + inner.size()),
               0,
               0};
    put(b, {0x02, 0x40, uint8_t(proto >> 8), uint8_t(proto), 0, 0, 0, 0});
    put(b, {0xff, 0x56, 0x81, 0x01, uint8_t(id >> 24), uint8_t(id >> 16), uint8_t(id >> 8),
            uint8_t(id)});
    b.insert(b.end(), inner.begin(), inner.end());
    return b;
  };
  Bytes v4 = v4_frame({10, 2, 0, 20}, 17, udp(8080, 20));
  Bytes v6 = v6_frame(0x20, 17, udp(8080, 20));
  return {payload(Bytes(v4.begin() + 14, v4.end()), 0x0800),
          payload(Bytes(v6.begin() + 14, v6.end()), 0x86dd)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& e = testing::env();
  if (size > 1400) return 0;
  // Eth | IPv4 172.16.0.1 -> 172.16.0.2 | UDP 4500 | ESP(seal(data)).
  fuzz::Bytes f;
  fuzz::put(f, {0x02, 0, 0, 0, 0x16, 0x02, 0x02, 0, 0, 0, 0x16, 0x01, 0x08, 0x00});
  fuzz::put(f, {0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 172, 16, 0, 1, 172, 16, 0, 2});
  fuzz::put(f, {0xc0, 0x00, 0x11, 0x94, 0, 0, 0, 0});
  size_t esp_off = f.size();
  f.resize(esp_off + 16 + size + 5 + 16);
  std::memcpy(f.data() + esp_off + 16, data, size);
  crypto::EspStatus st;
  size_t esp_len = sa().seal(crypto::thread_imb_mgr(), f.data() + esp_off, size, 17, &st);
  if (!esp_len) return 0;
  f.resize(esp_off + esp_len);
  uint16_t ip_len = uint16_t(20 + 8 + esp_len), udp_len = uint16_t(8 + esp_len);
  f[16] = uint8_t(ip_len >> 8);
  f[17] = uint8_t(ip_len);
  f[38] = uint8_t(udp_len >> 8);
  f[39] = uint8_t(udp_len);
  rte_mbuf* m = testing::make_mbuf(f.data(), f.size());
  if (!m) return 0;
  dp::Burst b;
  b.push(m);
  e.b.ctx.now = rte_rdtsc();
  e.b.pipe.inbound(e.b.ctx, b, false);
  e.b.flush();
  return 0;
}
