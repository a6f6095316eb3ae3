// ESP SAs keyed from an established peering connection (TLS exporter, RFC 8446 §7.5).
//
// Contract
// - Each side sends make_hello() (its n_workers and kMaxWorkers fresh inbound SPIs, one per
//   possible peer worker) and checks the peer's with check_hello().
// - derive_sas() gives, for this node: outbound SA w (w < local.n_workers) with SPI
//   peer.inbound_spis[w]; inbound SA j (j < peer.n_workers) with SPI local.inbound_spis[j],
//   owned by worker j % local.n_workers. Both sides compute the same key for the same SA:
//   key || salt = SSL_export_keying_material(label "EXPORTER-vanish-esp-v1",
//     context = "vanish-esp-v1" | direction (0: TLS client -> server, 1: server -> client)
//               | sender worker (u16) | this SA's SPI (u32) | the reverse SA's SPI (u32)
//               | cipher id (u8)),
//   length key_len + 4; the salt is the last 4 bytes (RFC 4106 §8.1). The reverse SA of the
//   sender's worker w is the one it receives on for the peer's worker w (sender's inbound_spis[w]).
// - Key bytes live only in DerivedSa (wiped by OPENSSL_cleanse when it is destroyed or moved
//   from); they are never logged. params() views them (valid while the DerivedSa lives).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "crypto/esp.hpp"
#include "vanish/peering.pb.h"

namespace vanish::ctl::peering {

namespace pv1 = vanish::peering::v1;

inline constexpr char kExporterLabel[] = "EXPORTER-vanish-esp-v1";
inline constexpr uint32_t kPeeringVersion = 1;
inline constexpr unsigned kMaxPeerWorkers = 16;  // == dp::kMaxWorkers

class DerivedSa {
 public:
  DerivedSa() = default;
  ~DerivedSa();
  DerivedSa(DerivedSa&& o) noexcept;
  DerivedSa& operator=(DerivedSa&& o) noexcept;
  DerivedSa(const DerivedSa&) = delete;
  DerivedSa& operator=(const DerivedSa&) = delete;

  bool inbound = false;
  unsigned worker = 0;       // outbound: sending worker; inbound: owner worker
  unsigned peer_worker = 0;  // inbound: the peer worker that sends on it; outbound: == worker
  uint32_t spi = 0;
  crypto::AeadAlg alg = crypto::AeadAlg::kAes128Gcm;

  crypto::EspSaParams params() const;
  std::span<const uint8_t> key() const { return {key_.data(), key_len_}; }
  const std::array<uint8_t, 4>& salt() const { return salt_; }

 private:
  friend bool derive_one(SSL*, bool, unsigned, uint32_t, uint32_t, crypto::AeadAlg, DerivedSa*);
  std::array<uint8_t, 32> key_{};
  size_t key_len_ = 0;
  std::array<uint8_t, 4> salt_{};
};

struct SaSet {
  std::vector<DerivedSa> outbound;  // index = local worker
  std::vector<DerivedSa> inbound;   // index = peer worker
};

// Random, distinct SPIs >= 256 for a Hello (`taken` lists SPIs already in use on this node).
std::vector<uint32_t> allocate_spis(size_t n, const std::vector<uint32_t>& taken);

pv1::Hello make_hello(const std::string& node, unsigned n_workers,
                      const std::vector<uint32_t>& inbound_spis, uint64_t boot_id,
                      crypto::AeadAlg alg);
// False with a reason if the Hello is malformed, names another node than `expected_node`, or
// uses another cipher than ours.
bool check_hello(const pv1::Hello& h, const std::string& expected_node, crypto::AeadAlg alg,
                 std::string* err);

bool derive_sas(SSL* ssl, bool we_are_client, const pv1::Hello& local, const pv1::Hello& peer,
                SaSet* out, std::string* err);

const char* cipher_name(crypto::AeadAlg alg);

}  // namespace vanish::ctl::peering
