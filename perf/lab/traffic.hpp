// vanish-perf traffic model: mesh-shaped frames built from a vanish config, with no DPDK.
//
// Contracts:
//  - Mesh::load() reads a vanish config (ctl::load_config) and picks the device under test (DUT,
//    the config's this_node), one peer node, a source workload hosted on the DUT and a
//    destination workload hosted on the peer, and the static SAs between the two nodes.
//  - Every generated frame carries a 16-byte probe tag in its innermost UDP payload (magic, trial
//    id, packet index, TSC at transmission): the receiver reads it for latency.
//  - Frame "size" is always the plaintext Ethernet frame without FCS: what enters the DUT's local
//    port (outbound) or what it delivers there (inbound).
//  - Inbound frames are valid ESP sealed once per template with crypto::EspSa (the static SA
//    peer -> DUT); per packet, EspTemplate::patch() changes the sequence number, the flow's
//    ports and the tag without re-encrypting: AES-GCM is CTR (a plaintext XOR is the same
//    ciphertext XOR) and GHASH is linear over GF(2^128), so the ICV changes by
//    XOR_i (delta block_i * H^(m-i+1)); the per-byte contributions are precomputed tables.
//    The explicit IV stays that of the template (a generator may reuse a nonce; an appliance
//    must not). selftest() proves every patched packet opens with EspSa::open.
//  - Nothing here allocates after build(); patch()/fill() are per-packet hot-path code.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace vanish::perf {

constexpr uint32_t kTagMagic = 0x56505246;  // "VPRF"
constexpr size_t kTagLen = 16;              // magic(4) | trial<<24 | idx (4) | tsc (8)

enum class Dir : uint8_t { kOut, kIn };
// Wire format of inbound frames: vanish (ESP-in-UDP 4500 | UDP 6081 | Geneve | inner IP) or
// secgw (ESP transport of the inner UDP, IP protocol 50): what DPDK's ipsec-secgw decrypts.
enum class Format : uint8_t { kVanish, kSecgw };

struct SaKeys {
  uint32_t spi = 0;
  std::vector<uint8_t> key;
  std::array<uint8_t, 4> salt{};
  bool esn = true;
  uint16_t udp_sport = 0;  // outer UDP source port (vanish format)
};

struct Mesh {
  std::array<uint8_t, 6> dut_local_mac{}, dut_fabric_mac{}, peer_fabric_mac{}, src_mac{};
  std::array<uint8_t, 4> dut_fabric_ip{}, peer_fabric_ip{};
  std::array<uint8_t, 4> src_ip{}, dst_ip{};  // src: workload on the DUT; dst: on the peer
  uint32_t dst_identity = 0;                  // wire identity id of the destination workload
  std::string src_name, dst_name, dut_name, peer_name;
  SaKeys out_sa;  // DUT -> peer (to read the DUT's outbound ESP)
  SaKeys in_sa;   // peer -> DUT (to generate inbound ESP)

  // Returns false with *err set when the config lacks what the generator needs.
  bool load(const std::string& config_path, const std::string& src_workload,
            const std::string& dst_workload, std::string* err);
};

struct TrafficOpts {
  Dir dir = Dir::kOut;
  Format format = Format::kVanish;
  std::vector<uint16_t> sizes{64};  // one entry, the IMIX cycle or a list, cycled per packet
  uint32_t flows = 1;
  uint16_t sport_base = 1024;
  uint16_t dport_base = 8080;
};

// Flow f -> (source port, destination port): 60000 source ports per destination port.
inline void flow_ports(const TrafficOpts& o, uint32_t f, uint16_t* sp, uint16_t* dp) {
  *sp = uint16_t(o.sport_base + f % 60000);
  *dp = uint16_t(o.dport_base + f / 60000);
}

// CSIT IMIX: 28 x 64, 16 x 570, 4 x 1518 (as 4 x [7x64, 4x570, 1x1518]), 1518 capped at `max`.
std::vector<uint16_t> imix_sizes(uint16_t max = 1518);

// A 128-bit GHASH block as two big-endian halves.
struct Block {
  uint64_t hi = 0, lo = 0;
};

// One frame template (one size) plus what patch() needs.
struct Template {
  std::vector<uint8_t> bytes;
  uint16_t size = 0;      // plaintext frame size it stands for
  uint16_t port_off = 0;  // offset of the innermost UDP source port in `bytes`
  uint16_t tag_off = 0;   // offset of the probe tag in `bytes`
  bool esp = false;
  // ESP only:
  uint16_t esp_off = 0;      // ESP header
  uint16_t icv_off = 0;      // ICV
  uint16_t pt_port_off = 0;  // same fields as offsets in the ESP payload (plaintext coordinates)
  uint16_t pt_tag_off = 0;
  uint64_t base_seq = 1;
  std::array<uint8_t, 4 + kTagLen> base_fields{};  // ports + tag as sealed
  // Tables: [field byte k][value] -> ICV delta. k 0..7: seq (AAD bytes 4..11), 8..11 ports,
  // 12..27 the tag.
  std::vector<std::array<Block, 256>> tables;
};

class Traffic {
 public:
  bool build(const Mesh& mesh, const TrafficOpts& o, std::string* err);
  const TrafficOpts& opts() const { return o_; }
  size_t cycle() const { return o_.sizes.size(); }
  const Template& tmpl_for(uint64_t i) const { return tmpl_[size_idx_[i % o_.sizes.size()]]; }
  uint16_t max_frame() const { return max_frame_; }
  // Writes packet i (flow i % flows) into `dst` (room for tmpl.bytes.size()); returns its
  // length. `seq` is the ESP sequence number for inbound (ignored outbound).
  uint16_t fill(uint8_t* dst, uint64_t i, uint64_t seq, uint8_t trial, uint64_t tsc) const;
  // Patched ESP frames must open with the SA (a fresh receiving EspSa). Returns false with *err.
  bool selftest(const Mesh& mesh, size_t packets, std::string* err) const;

 private:
  TrafficOpts o_;
  std::vector<Template> tmpl_;
  std::vector<uint16_t> size_idx_;  // position in the size cycle -> template index
  uint16_t max_frame_ = 0;
};

// pcap (classic, microsecond, Ethernet) writer.
bool write_pcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames,
                std::string* err);

}  // namespace vanish::perf
