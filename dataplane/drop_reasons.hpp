// Every reason the data plane can drop a packet, with a description: one list (VPP error defs).
// Contract: each stage that frees a packet counts it under exactly one of these reasons.
#pragma once

#include <cstdint>

namespace vanish::dp {

// One reason per line (a table; not reflowed):
// clang-format off
#define VANISH_DROP_REASONS(X)                                                                    \
  X(kParseError, "parse_error", "malformed or truncated Ethernet/IP/L4 header")                   \
  X(kUnsupportedL2, "unsupported_l2", "ethertype is not IPv4, IPv6 or ARP")                       \
  X(kNotForUs, "not_for_us", "destination MAC or address is not this appliance")                  \
  X(kUnknownSource, "unknown_source", "source is not a workload hosted on this node")             \
  X(kNoRoute, "no_route", "destination is not a known workload or service VIP:port")             \
  X(kNoEndpoint, "no_endpoint", "service VIP:port has no healthy endpoint of the client's family") \
  X(kAuthzDenied, "authz_denied", "an authorization policy denies the flow at its destination")  \
  X(kNoSa, "no_sa", "no valid outbound SA to the destination node (fail closed)")                 \
  X(kTtlExpired, "ttl_expired", "TTL/hop limit reached zero (ICMP time exceeded sent)")           \
  X(kMtuExceeded, "mtu_exceeded", "too big for the fabric MTU (ICMP too-big sent)")               \
  X(kFragFailed, "frag_failed", "IPv4 fragmentation before encryption failed")                    \
  X(kFlowTableFull, "flow_table_full", "per-worker flow table has no free entry")                 \
  X(kSeqExhausted, "seq_exhausted", "outbound SA sequence space used up (rekey needed)")          \
  X(kEncapNoRoom, "encap_no_room", "no headroom/tailroom or multi-segment mbuf")                  \
  X(kNotEsp, "not_esp", "fabric packet is not ESP-in-UDP to this node")                           \
  X(kOuterFragment, "outer_fragment", "fragmented outer packet on the fabric")                    \
  X(kUnknownSpi, "unknown_spi", "no inbound SA with this SPI")                                    \
  X(kReplay, "replay", "sequence number already received (anti-replay)")                          \
  X(kReplayTooOld, "replay_too_old", "sequence number left of the anti-replay window")            \
  X(kBadIcv, "bad_icv", "ESP integrity check failed")                                             \
  X(kBadPadding, "bad_padding", "ESP padding or trailer invalid after decryption")                \
  X(kEspTruncated, "esp_truncated", "ESP packet shorter than header+IV+ICV")                      \
  X(kBadGeneve, "bad_geneve", "inner UDP/Geneve header missing or malformed")                     \
  X(kNoIdentity, "no_identity", "Geneve header carries no source identity option")                \
  X(kIdentitySpoof, "identity_spoof", "source identity/address not hosted by the SA's peer node") \
  X(kNotLocal, "not_local", "decrypted packet's destination is not a local workload")             \
  X(kNeighbourMiss, "neighbour_miss", "destination MAC unknown (ARP/ND solicitation sent)")       \
  X(kHandoffFull, "handoff_full", "handoff ring to the owner worker full")                        \
  X(kTxFull, "tx_full", "port TX queue full")                                                     \
  X(kTxLinkDown, "tx_link_down", "port link down (e.g. its memif peer went away)")               \
  X(kNoMbuf, "no_mbuf", "mbuf pool exhausted while building a reply or fragment")                 \
  X(kIcmpRateLimited, "icmp_rate_limited", "ICMP error suppressed by the rate limiter")           \
  X(kArpIgnored, "arp_ignored", "ARP/ND not for a gateway address (consumed)")                    \
  X(kEchoReplied, "echo_replied", "ICMP echo to the gateway (consumed, reply sent)")              \
  X(kStaticDeny, "static_deny", "pinned by vanishctl flow add --verdict deny")                  \
  X(kEgressDenied, "egress_denied", "outside the mesh: no egress rule allows it (REGISTRY_ONLY or a namespace allow list)") \
  X(kHostDenied, "host_denied", "egress: the flow's host name (TLS SNI, HTTP Host, DNS query) is not allowed") \
  X(kHostUnknown, "host_unknown", "egress: a governed flow's first payload carries no host name (not TLS/HTTP/DNS, no SNI)") \
  X(kHostMalformed, "host_malformed", "egress: ClientHello/HTTP head/DNS query malformed, truncated, oversized or fragmented") \
  X(kBadIpChecksum, "bad_ip_checksum", "IPv4 header checksum wrong (fabric port: the outer header; the NIC's verdict when it checks, else ours)")

// clang-format on

enum class DropReason : uint8_t {
#define VANISH_X(id, name, desc) id,
  VANISH_DROP_REASONS(VANISH_X)
#undef VANISH_X
      kCount
};

inline constexpr unsigned kDropReasonCount = unsigned(DropReason::kCount);

inline const char* drop_reason_name(DropReason r) {
  static constexpr const char* names[] = {
#define VANISH_X(id, name, desc) name,
      VANISH_DROP_REASONS(VANISH_X)
#undef VANISH_X
  };
  return unsigned(r) < kDropReasonCount ? names[unsigned(r)] : "invalid";
}

inline const char* drop_reason_description(DropReason r) {
  static constexpr const char* descs[] = {
#define VANISH_X(id, name, desc) desc,
      VANISH_DROP_REASONS(VANISH_X)
#undef VANISH_X
  };
  return unsigned(r) < kDropReasonCount ? descs[unsigned(r)] : "invalid";
}

}  // namespace vanish::dp
