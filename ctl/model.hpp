// Helpers over the config model shared by validation and compilation: documented defaults,
// workload principals and their wire identity ids, cipher and hex parsing.
// Contract: pure functions of their arguments; no I/O, no global state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crypto/aead.hpp"
#include "dataplane/types.hpp"
#include "istio/workload/workload.pb.h"
#include "vanish/config.pb.h"

namespace vanish::ctl {

// Defaults for unset fields (docs/config.md lists the same values).
inline constexpr const char* kDefaultTrustDomain = "cluster.local";
inline constexpr const char* kDefaultServiceAccount = "default";
inline constexpr uint32_t kDefaultLocalPort = 0;
inline constexpr uint32_t kDefaultFabricPort = 1;
inline constexpr uint32_t kDefaultFabricMtu = 1500;
inline constexpr uint32_t kDefaultReplayWindow = 4096;
inline constexpr uint32_t kUdpSportDeriveBase = 49152;  // derived sport = 49152 + spi % 16384
inline constexpr uint32_t kUdpSportDeriveSpan = 16384;
// The receiver of a static SA accepts this many SPIs from spi_base (the sender may have up to
// dp::kMaxWorkers workers); validation checks these ranges do not overlap.
inline constexpr uint32_t kStaticSaSpiSpan = 16;
inline constexpr uint32_t kMinSpi = 256;  // RFC 4303 §2.1: 0 reserved, 1..255 IANA-reserved

// Limits with defaults applied.
struct ResolvedLimits {
  uint32_t flows_per_worker = 262144;
  uint32_t mbufs = 16383;
  uint32_t rx_ring = 1024;
  uint32_t tx_ring = 1024;
  uint32_t handoff_ring = 1024;
  uint32_t mbuf_cache = 256;
};
ResolvedLimits resolve_limits(const config::Limits& limits);

inline uint32_t local_port(const config::Config& c) {
  return c.ports().has_local() ? c.ports().local() : kDefaultLocalPort;
}
inline uint32_t fabric_port(const config::Config& c) {
  return c.ports().has_fabric() ? c.ports().fabric() : kDefaultFabricPort;
}
inline uint32_t fabric_mtu(const config::Config& c) {
  return c.fabric().has_mtu() ? c.fabric().mtu() : kDefaultFabricMtu;
}

// Workload identity parts with defaults: trust domain "cluster.local", service account "default".
std::string workload_trust_domain(const istio::workload::Workload& w);
std::string workload_service_account(const istio::workload::Workload& w);
// "cluster.local/ns/default/sa/sleep": the SPIFFE id without "spiffe://".
std::string workload_principal(const istio::workload::Workload& w);
// "workload default/sleep" (or "workloads[3]" when the name is empty): for error messages.
std::string workload_resource(const istio::workload::Workload& w, int index);

// The wire identity id of a principal: the first 32 bits, big-endian, of SHA-256(principal).
// 0 is reserved ("no identity"): a principal that hashes to 0 gets IdentityId(0), and
// validation rejects it like a collision.
IdentityId identity_id_for(const std::string& principal);

// "aes-128-gcm" | "aes-192-gcm" | "aes-256-gcm" (case-insensitive).
bool parse_cipher(const std::string& name, crypto::AeadAlg* alg);
// Even-length hex, optional "0x" prefix, no separators.
bool parse_hex(const std::string& hex, std::vector<uint8_t>* out);

// Outer UDP source port of the SA with SPI `spi` sent by worker `worker` of a static SA bundle.
uint16_t static_sa_udp_sport(const config::StaticSa& sa, unsigned worker);
inline bool static_sa_esn(const config::StaticSa& sa) {
  return sa.has_esn() ? sa.esn() : true;
}
inline uint32_t static_sa_replay_window(const config::StaticSa& sa) {
  return sa.has_replay_window() ? sa.replay_window() : kDefaultReplayWindow;
}
// One warning per static SA this node receives with anti-replay off (replay_window: 0), for
// vanishd to print at start-up and on every reload that serves such a config.
std::vector<std::string> anti_replay_off_warnings(const config::Config& c);

}  // namespace vanish::ctl
