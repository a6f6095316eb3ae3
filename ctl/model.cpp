#include "ctl/model.hpp"

#include <openssl/evp.h>

#include <cctype>

namespace vanish::ctl {

ResolvedLimits resolve_limits(const config::Limits& l) {
  ResolvedLimits r;
  if (l.has_flows_per_worker()) r.flows_per_worker = l.flows_per_worker();
  if (l.has_mbufs()) r.mbufs = l.mbufs();
  if (l.has_rx_ring()) r.rx_ring = l.rx_ring();
  if (l.has_tx_ring()) r.tx_ring = l.tx_ring();
  if (l.has_handoff_ring()) r.handoff_ring = l.handoff_ring();
  if (l.has_mbuf_cache()) r.mbuf_cache = l.mbuf_cache();
  return r;
}

std::string workload_trust_domain(const istio::workload::Workload& w) {
  return w.trust_domain().empty() ? kDefaultTrustDomain : w.trust_domain();
}

std::string workload_service_account(const istio::workload::Workload& w) {
  return w.service_account().empty() ? kDefaultServiceAccount : w.service_account();
}

std::string workload_principal(const istio::workload::Workload& w) {
  return workload_trust_domain(w) + "/ns/" + w.namespace_() + "/sa/" + workload_service_account(w);
}

std::string workload_resource(const istio::workload::Workload& w, int index) {
  if (w.name().empty()) return "workloads[" + std::to_string(index) + "]";
  return "workload " + w.namespace_() + "/" + w.name();
}

IdentityId identity_id_for(const std::string& principal) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  // EVP rather than SHA256(): <openssl/sha.h> clashes with IPsec-MB's compatibility macros.
  // The digest is fetched once: an implicit fetch per call costs more than the hash itself
  // (100k workloads). EVP_MD objects are immutable and thread-safe.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_Digest(principal.data(), principal.size(), md, &md_len, sha256 ? sha256 : EVP_sha256(),
             nullptr);
  return IdentityId((uint32_t(md[0]) << 24) | (uint32_t(md[1]) << 16) | (uint32_t(md[2]) << 8) |
                    uint32_t(md[3]));
}

bool parse_cipher(const std::string& name, crypto::AeadAlg* alg) {
  std::string n;
  for (char c : name) n += char(std::tolower(static_cast<unsigned char>(c)));
  if (n == "aes-128-gcm") {
    *alg = crypto::AeadAlg::kAes128Gcm;
  } else if (n == "aes-192-gcm") {
    *alg = crypto::AeadAlg::kAes192Gcm;
  } else if (n == "aes-256-gcm") {
    *alg = crypto::AeadAlg::kAes256Gcm;
  } else {
    return false;
  }
  return true;
}

bool parse_hex(const std::string& hex, std::vector<uint8_t>* out) {
  size_t start = (hex.size() >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) ? 2 : 0;
  if ((hex.size() - start) % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = start; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(uint8_t(hi << 4 | lo));
  }
  return true;
}

uint16_t static_sa_udp_sport(const config::StaticSa& sa, unsigned worker) {
  if (sa.udp_sport_base() != 0) return uint16_t(sa.udp_sport_base() + worker);
  uint32_t spi = sa.spi_base() + worker;
  return uint16_t(kUdpSportDeriveBase + spi % kUdpSportDeriveSpan);
}

std::vector<std::string> anti_replay_off_warnings(const config::Config& c) {
  std::vector<std::string> out;
  for (const config::StaticSa& sa : c.static_sas())
    if (sa.to_node() == c.this_node() && static_sa_replay_window(sa) == 0)
      out.push_back("vanishd: warning: static_sa " + sa.from_node() + "->" + sa.to_node() +
                    ": anti-replay off (replay_window: 0): replayed ESP packets are accepted");
  return out;
}

}  // namespace vanish::ctl
