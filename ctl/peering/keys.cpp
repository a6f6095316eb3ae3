#include "ctl/peering/keys.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <set>

namespace vanish::ctl::peering {

DerivedSa::~DerivedSa() {
  OPENSSL_cleanse(key_.data(), key_.size());
}

DerivedSa::DerivedSa(DerivedSa&& o) noexcept {
  *this = std::move(o);
}

DerivedSa& DerivedSa::operator=(DerivedSa&& o) noexcept {
  if (this == &o) return *this;
  inbound = o.inbound;
  worker = o.worker;
  peer_worker = o.peer_worker;
  spi = o.spi;
  alg = o.alg;
  key_ = o.key_;
  key_len_ = o.key_len_;
  salt_ = o.salt_;
  OPENSSL_cleanse(o.key_.data(), o.key_.size());
  OPENSSL_cleanse(o.salt_.data(), o.salt_.size());
  o.key_len_ = 0;
  return *this;
}

crypto::EspSaParams DerivedSa::params() const {
  crypto::EspSaParams p;
  p.spi = spi;
  p.alg = alg;
  p.key = key();
  p.salt = salt_;
  p.esn = true;
  return p;
}

const char* cipher_name(crypto::AeadAlg alg) {
  switch (alg) {
    case crypto::AeadAlg::kAes128Gcm:
      return "aes-128-gcm";
    case crypto::AeadAlg::kAes192Gcm:
      return "aes-192-gcm";
    case crypto::AeadAlg::kAes256Gcm:
      return "aes-256-gcm";
  }
  return "?";
}

std::vector<uint32_t> allocate_spis(size_t n, const std::vector<uint32_t>& taken) {
  std::set<uint32_t> used(taken.begin(), taken.end());
  std::vector<uint32_t> out;
  while (out.size() < n) {
    uint32_t v = 0;
    RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v);
    if (v < 256 || !used.insert(v).second) continue;
    out.push_back(v);
  }
  return out;
}

pv1::Hello make_hello(const std::string& node, unsigned n_workers,
                      const std::vector<uint32_t>& inbound_spis, uint64_t boot_id,
                      crypto::AeadAlg alg) {
  pv1::Hello h;
  h.set_version(kPeeringVersion);
  h.set_node(node);
  h.set_n_workers(n_workers);
  for (uint32_t s : inbound_spis) h.add_inbound_spis(s);
  h.set_boot_id(boot_id);
  h.set_cipher(cipher_name(alg));
  return h;
}

bool check_hello(const pv1::Hello& h, const std::string& expected_node, crypto::AeadAlg alg,
                 std::string* err) {
  auto bad = [&](std::string why) {
    if (err) *err = std::move(why);
    return false;
  };
  if (h.version() != kPeeringVersion) return bad("version " + std::to_string(h.version()));
  if (h.node() != expected_node) {
    return bad("Hello names node \"" + h.node() + "\", the certificate is node \"" + expected_node +
               "\"");
  }
  if (h.n_workers() < 1 || h.n_workers() > kMaxPeerWorkers) {
    return bad("n_workers " + std::to_string(h.n_workers()));
  }
  if (h.inbound_spis_size() != int(kMaxPeerWorkers)) {
    return bad(std::to_string(h.inbound_spis_size()) + " inbound SPIs, expected 16");
  }
  std::set<uint32_t> seen;
  for (uint32_t s : h.inbound_spis()) {
    if (s < 256) return bad("inbound SPI " + std::to_string(s) + " is reserved");
    if (!seen.insert(s).second) return bad("inbound SPI " + std::to_string(s) + " repeated");
  }
  if (h.cipher() != cipher_name(alg)) return bad("cipher \"" + h.cipher() + "\"");
  return true;
}

bool derive_one(SSL* ssl, bool client_to_server, unsigned sender_worker, uint32_t spi,
                uint32_t reverse_spi, crypto::AeadAlg alg, DerivedSa* out) {
  static constexpr char kCtxTag[] = "vanish-esp-v1";
  std::array<uint8_t, sizeof kCtxTag - 1 + 1 + 2 + 4 + 4 + 1> ctx{};
  size_t o = 0;
  for (size_t i = 0; i + 1 < sizeof kCtxTag; ++i) ctx[o++] = uint8_t(kCtxTag[i]);
  ctx[o++] = client_to_server ? 0 : 1;
  ctx[o++] = uint8_t(sender_worker >> 8);
  ctx[o++] = uint8_t(sender_worker);
  for (int s = 24; s >= 0; s -= 8) ctx[o++] = uint8_t(spi >> s);
  for (int s = 24; s >= 0; s -= 8) ctx[o++] = uint8_t(reverse_spi >> s);
  ctx[o++] = uint8_t(alg);
  size_t key_len = crypto::aead_key_len(alg);
  std::array<uint8_t, 36> km{};
  int ok = SSL_export_keying_material(ssl, km.data(), key_len + 4, kExporterLabel,
                                      sizeof kExporterLabel - 1, ctx.data(), ctx.size(), 1);
  if (ok == 1) {
    std::copy_n(km.begin(), key_len, out->key_.begin());
    std::copy_n(km.begin() + long(key_len), 4, out->salt_.begin());
    out->key_len_ = key_len;
    out->spi = spi;
    out->alg = alg;
  }
  OPENSSL_cleanse(km.data(), km.size());
  return ok == 1;
}

bool derive_sas(SSL* ssl, bool we_are_client, const pv1::Hello& local, const pv1::Hello& peer,
                SaSet* out, std::string* err) {
  auto bad = [&](std::string why) {
    if (err) *err = std::move(why);
    return false;
  };
  if (!ssl || !SSL_is_init_finished(ssl)) return bad("the TLS handshake is not complete");
  if (local.inbound_spis_size() != int(kMaxPeerWorkers) ||
      peer.inbound_spis_size() != int(kMaxPeerWorkers) || local.n_workers() < 1 ||
      local.n_workers() > kMaxPeerWorkers || peer.n_workers() < 1 ||
      peer.n_workers() > kMaxPeerWorkers) {
    return bad("malformed Hello");
  }
  crypto::AeadAlg alg = crypto::AeadAlg::kAes128Gcm;
  if (local.cipher() == "aes-256-gcm") {
    alg = crypto::AeadAlg::kAes256Gcm;
  } else if (local.cipher() == "aes-192-gcm") {
    alg = crypto::AeadAlg::kAes192Gcm;
  } else if (local.cipher() != "aes-128-gcm") {
    return bad("cipher \"" + local.cipher() + "\"");
  }
  if (peer.cipher() != local.cipher()) return bad("the peers disagree on the cipher");
  SaSet set;
  // Outbound: our worker w -> the peer, on the SPI the peer gave our worker w. Direction is
  // "ours": client->server if we are the client. Its reverse SA is ours for the peer's worker w.
  for (unsigned w = 0; w < local.n_workers(); ++w) {
    DerivedSa sa;
    sa.inbound = false;
    sa.worker = w;
    sa.peer_worker = w;
    if (!derive_one(ssl, we_are_client, w, peer.inbound_spis(int(w)), local.inbound_spis(int(w)),
                    alg, &sa)) {
      return bad("SSL_export_keying_material failed");
    }
    set.outbound.push_back(std::move(sa));
  }
  // Inbound: the peer's worker j -> us, on our SPI for it; the sender is the peer, so the
  // direction flag is the peer's and the reverse SPI is the peer's inbound SPI for our worker j.
  for (unsigned j = 0; j < peer.n_workers(); ++j) {
    DerivedSa sa;
    sa.inbound = true;
    sa.worker = j % local.n_workers();
    sa.peer_worker = j;
    if (!derive_one(ssl, !we_are_client, j, local.inbound_spis(int(j)), peer.inbound_spis(int(j)),
                    alg, &sa)) {
      return bad("SSL_export_keying_material failed");
    }
    set.inbound.push_back(std::move(sa));
  }
  *out = std::move(set);
  return true;
}

}  // namespace vanish::ctl::peering
