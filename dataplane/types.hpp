// Domain types shared by the data plane and the control plane's compiler.
// Contract: plain, trivially copyable values; no DPDK dependency, so ctl/ and unit tests can use
// them.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

namespace vanish {

// A strongly typed integer id: prevents passing a workload index where an identity is expected.
template <typename Tag, typename Rep = uint32_t>
struct StrongId {
  Rep value{};
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : value(v) {}
  friend constexpr bool operator==(StrongId, StrongId) = default;
  friend constexpr auto operator<=>(StrongId, StrongId) = default;
};

using IdentityId = StrongId<struct IdentityTag>;   // compact SPIFFE identity id carried in Geneve
using WorkloadIdx = StrongId<struct WorkloadTag>;  // dense index into Snapshot::workloads
using NodeIdx = StrongId<struct NodeTag>;          // dense index into Snapshot::nodes
using Spi = StrongId<struct SpiTag>;               // ESP security parameter index (host order)

inline constexpr uint32_t kInvalidIdx = UINT32_MAX;

// Big-endian wire integers: reading/writing them needs an explicit conversion.
struct Be16 {
  uint16_t raw;
  static constexpr Be16 from_host(uint16_t v) { return Be16{uint16_t((v >> 8) | (v << 8))}; }
  constexpr uint16_t host() const { return uint16_t((raw >> 8) | (raw << 8)); }
};
struct Be32 {
  uint32_t raw;
  static constexpr Be32 from_host(uint32_t v) { return Be32{__builtin_bswap32(v)}; }
  constexpr uint32_t host() const { return __builtin_bswap32(raw); }
};

struct MacAddr {
  std::array<uint8_t, 6> b{};
  friend bool operator==(const MacAddr&, const MacAddr&) = default;
  bool is_zero() const { return (b[0] | b[1] | b[2] | b[3] | b[4] | b[5]) == 0; }
  std::string str() const;
  static bool parse(const std::string& s, MacAddr* out);
};

// An IPv4 or IPv6 address in one 16-byte form: IPv4 is stored IPv4-mapped (::ffff:a.b.c.d),
// so one hash table serves both families. Bytes are in network order.
struct IpAddr {
  std::array<uint8_t, 16> b{};
  static IpAddr v4(const uint8_t* be4) {
    IpAddr a;
    a.b[10] = 0xff;
    a.b[11] = 0xff;
    std::memcpy(&a.b[12], be4, 4);
    return a;
  }
  static IpAddr v4_host(uint32_t host) {
    uint8_t be[4] = {uint8_t(host >> 24), uint8_t(host >> 16), uint8_t(host >> 8), uint8_t(host)};
    return v4(be);
  }
  static IpAddr v6(const uint8_t* be16) {
    IpAddr a;
    std::memcpy(a.b.data(), be16, 16);
    return a;
  }
  bool is_v4() const {
    uint64_t hi;
    uint32_t mid;
    std::memcpy(&hi, b.data(), 8);
    std::memcpy(&mid, b.data() + 8, 4);
    return hi == 0 && mid == Be32::from_host(0xffff).raw;
  }
  const uint8_t* v4_bytes() const { return b.data() + 12; }
  bool is_unspecified() const { return *this == IpAddr{}; }
  // Two 64-bit compares (the defaulted one calls memcmp, on every per-packet workload lookup).
  friend bool operator==(const IpAddr& x, const IpAddr& y) {
    uint64_t a[2], c[2];
    std::memcpy(a, x.b.data(), 16);
    std::memcpy(c, y.b.data(), 16);
    return ((a[0] ^ c[0]) | (a[1] ^ c[1])) == 0;
  }
  std::string str() const;
  // Accepts dotted IPv4 or textual IPv6.
  static bool parse(const std::string& s, IpAddr* out);
  // From 4 or 16 raw octets (Istio's `bytes` addresses).
  static bool from_bytes(const std::string& raw, IpAddr* out);
};

struct IpPrefix {
  IpAddr addr;
  uint8_t len = 0;  // in bits of the 128-bit form (IPv4 /24 is stored as 96+24)
  bool contains(const IpAddr& a) const;
  static bool parse(const std::string& cidr, IpPrefix* out);  // "10.1.0.0/24", "fd00::/64"
  std::string str() const;
};

struct IpAddrHash {
  size_t operator()(const IpAddr& a) const {
    uint64_t x, y;
    std::memcpy(&x, a.b.data(), 8);
    std::memcpy(&y, a.b.data() + 8, 8);
    // FlatMap indexes by the low bits: finish with a full avalanche (MurmurHash3 fmix64) so the
    // last octets of an address (bits 48..63 of y) reach them.
    uint64_t h = x * 0x9E3779B97F4A7C15ull ^ y;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    return size_t(h ^ (h >> 33));
  }
};

}  // namespace vanish
