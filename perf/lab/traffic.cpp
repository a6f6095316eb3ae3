// vanish-perf traffic model (see traffic.hpp for the contracts).
#include "perf/lab/traffic.hpp"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "crypto/esp.hpp"
#include "ctl/config_loader.hpp"
#include "ctl/model.hpp"

namespace vanish::perf {
namespace {

bool parse_mac(const std::string& s, std::array<uint8_t, 6>* out) {
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
    return false;
  for (int i = 0; i < 6; i++) (*out)[i] = uint8_t(v[i]);
  return true;
}

bool parse_ip4(const std::string& s, std::array<uint8_t, 4>* out) {
  return inet_pton(AF_INET, s.c_str(), out->data()) == 1;
}

bool sa_keys(const config::StaticSa& sa, SaKeys* k, std::string* err) {
  k->spi = sa.spi_base();
  std::vector<uint8_t> salt;
  if (!ctl::parse_hex(sa.key_hex(), &k->key) || !ctl::parse_hex(sa.salt_hex(), &salt) ||
      salt.size() != 4) {
    *err = "static SA " + sa.from_node() + " -> " + sa.to_node() + ": bad key_hex or salt_hex";
    return false;
  }
  std::copy(salt.begin(), salt.end(), k->salt.begin());
  k->esn = sa.has_esn() ? sa.esn() : true;
  k->udp_sport = ctl::static_sa_udp_sport(sa, 0);
  return true;
}

void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}

uint64_t get_be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

void put_be64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = uint8_t(v);
}

uint16_t ip4_csum(const uint8_t* h) {
  uint32_t s = 0;
  for (int i = 0; i < 20; i += 2) s += uint32_t(h[i] << 8 | h[i + 1]);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(~s);
}

// Ethernet + IPv4 (DF, TTL 64) header at p; total_length and checksum filled in by fix_ip4().
void eth_ip4(uint8_t* p, const std::array<uint8_t, 6>& dst, const std::array<uint8_t, 6>& src,
             const std::array<uint8_t, 4>& sip, const std::array<uint8_t, 4>& dip, uint8_t proto) {
  std::memcpy(p, dst.data(), 6);
  std::memcpy(p + 6, src.data(), 6);
  put16(p + 12, 0x0800);
  uint8_t* ip = p + 14;
  std::memset(ip, 0, 20);
  ip[0] = 0x45;
  put16(ip + 6, 0x4000);
  ip[8] = 64;
  ip[9] = proto;
  std::memcpy(ip + 12, sip.data(), 4);
  std::memcpy(ip + 16, dip.data(), 4);
}

void fix_ip4(uint8_t* ip, size_t total) {
  put16(ip + 2, uint16_t(total));
  put16(ip + 10, 0);
  put16(ip + 10, ip4_csum(ip));
}

// UDP header (checksum 0) + payload of `payload` bytes: the tag (flow 0, index 0, tsc 0) and a
// byte ramp.
void udp_payload(uint8_t* p, uint16_t sport, uint16_t dport, size_t payload) {
  put16(p, sport);
  put16(p + 2, dport);
  put16(p + 4, uint16_t(8 + payload));
  put16(p + 6, 0);
  uint8_t* d = p + 8;
  for (size_t i = 0; i < payload; i++) d[i] = uint8_t(i);
  uint32_t magic = htonl(kTagMagic);
  std::memcpy(d, &magic, 4);
  std::memset(d + 4, 0, 12);
}

// GF(2^128) multiplication in GCM's bit order (NIST SP 800-38D, algorithm 1).
Block gf_mul(Block x, Block y) {
  Block z, v = y;
  for (int i = 0; i < 128; i++) {
    uint64_t bit = i < 64 ? (x.hi >> (63 - i)) & 1 : (x.lo >> (127 - i)) & 1;
    if (bit) {
      z.hi ^= v.hi;
      z.lo ^= v.lo;
    }
    bool lsb = v.lo & 1;
    v.lo = (v.lo >> 1) | (v.hi << 63);
    v.hi >>= 1;
    if (lsb) v.hi ^= 0xE100000000000000ULL;
  }
  return z;
}

// Table of the ICV deltas of one byte at position `pos` (0..15) of GHASH block `mult`-power.
std::array<Block, 256> byte_table(int pos, const Block& mult) {
  std::array<Block, 8> bit;
  for (int j = 0; j < 8; j++) {
    uint8_t b[16] = {};
    b[pos] = uint8_t(1u << j);
    bit[j] = gf_mul(Block{get_be64(b), get_be64(b + 8)}, mult);
  }
  std::array<Block, 256> t{};
  for (int v = 1; v < 256; v++)
    for (int j = 0; j < 8; j++)
      if (v & (1 << j)) {
        t[v].hi ^= bit[j].hi;
        t[v].lo ^= bit[j].lo;
      }
  return t;
}

bool ghash_key(const SaKeys& k, Block* h) {
  const EVP_CIPHER* c = k.key.size() == 16   ? EVP_aes_128_ecb()
                        : k.key.size() == 24 ? EVP_aes_192_ecb()
                        : k.key.size() == 32 ? EVP_aes_256_ecb()
                                             : nullptr;
  if (!c) return false;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  uint8_t zero[16] = {}, out[32];
  int n = 0;
  bool ok = ctx && EVP_EncryptInit_ex(ctx, c, nullptr, k.key.data(), nullptr) == 1 &&
            EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
            EVP_EncryptUpdate(ctx, out, &n, zero, 16) == 1 && n == 16;
  EVP_CIPHER_CTX_free(ctx);
  if (ok) *h = Block{get_be64(out), get_be64(out + 8)};
  return ok;
}

bool init_sa(const SaKeys& k, crypto::EspSa* sa) {
  crypto::EspSaParams p;
  p.spi = k.spi;
  p.alg = k.key.size() == 16   ? crypto::AeadAlg::kAes128Gcm
          : k.key.size() == 24 ? crypto::AeadAlg::kAes192Gcm
                               : crypto::AeadAlg::kAes256Gcm;
  p.key = k.key;
  p.salt = k.salt;
  p.esn = k.esn;
  p.deterministic_iv = true;
  return sa->init(p);
}

}  // namespace

std::vector<uint16_t> imix_sizes(uint16_t max) {
  std::vector<uint16_t> v;
  for (int r = 0; r < 4; r++) {
    for (int i = 0; i < 7; i++) v.push_back(64);
    for (int i = 0; i < 4; i++) v.push_back(570);
    v.push_back(std::min<uint16_t>(1518, max));
  }
  return v;
}

bool Mesh::load(const std::string& path, const std::string& src_wl, const std::string& dst_wl,
                std::string* err) {
  config::Config c;
  std::vector<std::string> errs;
  if (!ctl::load_config(path, &c, &errs)) {
    *err = path + ": " + (errs.empty() ? "cannot load" : errs.front());
    return false;
  }
  dut_name = c.this_node();
  const config::Node* dut = nullptr;
  for (const auto& n : c.nodes())
    if (n.name() == dut_name) dut = &n;
  if (!dut) {
    *err = "config has no this_node (or names no node)";
    return false;
  }
  // The peer: the first node with static SAs in both directions.
  const config::StaticSa *out = nullptr, *in = nullptr;
  for (const auto& n : c.nodes()) {
    if (n.name() == dut_name) continue;
    out = in = nullptr;
    for (const auto& sa : c.static_sas()) {
      if (sa.from_node() == dut_name && sa.to_node() == n.name()) out = &sa;
      if (sa.to_node() == dut_name && sa.from_node() == n.name()) in = &sa;
    }
    if (out && in) {
      peer_name = n.name();
      if (!parse_mac(n.fabric_mac(), &peer_fabric_mac) ||
          !parse_ip4(n.fabric_ipv4(), &peer_fabric_ip)) {
        *err = "node " + n.name() + ": needs fabric_mac and fabric_ipv4";
        return false;
      }
      break;
    }
  }
  if (peer_name.empty()) {
    *err = "no peer node with static SAs in both directions (static_sas)";
    return false;
  }
  if (!parse_mac(dut->local_mac(), &dut_local_mac) ||
      !parse_mac(dut->fabric_mac(), &dut_fabric_mac) ||
      !parse_ip4(dut->fabric_ipv4(), &dut_fabric_ip)) {
    *err = "node " + dut_name + ": needs local_mac, fabric_mac and fabric_ipv4";
    return false;
  }
  if (!sa_keys(*out, &out_sa, err) || !sa_keys(*in, &in_sa, err)) return false;
  // Workloads: the named one on each node, else the first with an IPv4 address.
  auto pick = [&](const std::string& node, const std::string& want, std::array<uint8_t, 4>* ip,
                  std::string* name, uint32_t* id) {
    const istio::workload::Workload* best = nullptr;
    for (const auto& w : c.workloads()) {
      if (w.node() != node) continue;
      bool v4 = false;
      for (const auto& a : w.addresses()) v4 |= a.size() == 4;
      if (!v4) continue;
      if (w.name() == want) {
        best = &w;
        break;
      }
      if (!best) best = &w;
    }
    if (!best) return false;
    for (const auto& a : best->addresses())
      if (a.size() == 4) {
        std::memcpy(ip->data(), a.data(), 4);
        break;
      }
    *name = best->namespace_() + "/" + best->name();
    if (id) *id = ctl::identity_id_for(ctl::workload_principal(*best)).value;
    return true;
  };
  if (!pick(dut_name, src_wl, &src_ip, &src_name, nullptr) ||
      !pick(peer_name, dst_wl, &dst_ip, &dst_name, &dst_identity)) {
    *err = "need a workload with an IPv4 address on " + dut_name + " and on " + peer_name;
    return false;
  }
  src_mac = {0x02, 0x00, 0x00, 0xaa, 0x00, 0x01};
  char sip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, src_ip.data(), sip, sizeof sip);
  for (const auto& nb : c.neighbours())
    if (nb.address() == sip) parse_mac(nb.mac(), &src_mac);
  return true;
}

bool Traffic::build(const Mesh& m, const TrafficOpts& o, std::string* err) {
  o_ = o;
  if (o.sizes.empty() || o.flows == 0) {
    *err = "no sizes or no flows";
    return false;
  }
  std::map<uint16_t, uint16_t> by_size;
  for (uint16_t s : o.sizes) {
    if (s < 42 + kTagLen || s > 1518) {
      *err = "frame size " + std::to_string(s) + " is outside 58..1518";
      return false;
    }
    if (by_size.count(s)) continue;
    Template t;
    t.size = s;
    size_t payload = s - 42;
    uint16_t sp, dp;
    flow_ports(o, 0, &sp, &dp);
    if (o.dir == Dir::kOut) {
      t.bytes.assign(s, 0);
      uint8_t* p = t.bytes.data();
      eth_ip4(p, m.dut_local_mac, m.src_mac, m.src_ip, m.dst_ip, 17);
      udp_payload(p + 34, sp, dp, payload);
      fix_ip4(p + 14, s - 14);
      t.port_off = 34;
      t.tag_off = 42;
    } else {
      // The ESP payload (plaintext), then sealed in place.
      std::vector<uint8_t> pt;
      size_t hdr;
      // The delivered frame (inner packet peer workload -> DUT workload) it carries.
      std::vector<uint8_t> fr(s, 0);
      eth_ip4(fr.data(), m.src_mac, m.dut_local_mac, m.dst_ip, m.src_ip, 17);
      udp_payload(fr.data() + 34, sp, dp, payload);
      fix_ip4(fr.data() + 14, s - 14);
      if (o.format == Format::kVanish) {
        size_t inner = s - 14;
        pt.assign(8 + 16 + inner, 0);
        uint8_t* u = pt.data();
        put16(u, 0xC000 | uint16_t(m.in_sa.spi & 0x3fff));  // entropy
        put16(u + 2, 6081);
        put16(u + 4, uint16_t(pt.size()));
        uint8_t* g = u + 8;
        g[0] = 2;     // version 0, option length 2 words
        g[1] = 0x40;  // C: critical option present
        put16(g + 2, 0x0800);
        put16(g + 8, 0xFF56);
        g[10] = 0x81;
        g[11] = 1;
        uint32_t id = htonl(m.dst_identity);
        std::memcpy(g + 12, &id, 4);
        std::memcpy(g + 16, fr.data() + 14, inner);
        t.pt_port_off = 8 + 16 + 20;
        hdr = 14 + 20 + 8;
      } else {
        pt.assign(fr.begin() + 34, fr.end());
        t.pt_port_off = 0;
        hdr = 14 + 20;
      }
      t.pt_tag_off = uint16_t(t.pt_port_off + 8);
      t.bytes.assign(
          hdr + crypto::kEspPayloadOffset + pt.size() + crypto::kEspTrailerMax + crypto::kEspIcvLen,
          0);
      uint8_t* p = t.bytes.data();
      t.esp = true;
      t.esp_off = uint16_t(hdr);
      std::memcpy(p + hdr + crypto::kEspPayloadOffset, pt.data(), pt.size());
      crypto::EspSa sa;
      if (!init_sa(m.in_sa, &sa)) {
        *err = "cannot init the inbound SA";
        return false;
      }
      sa.set_next_seq(1);
      crypto::EspStatus st;
      size_t esp_len = sa.seal(crypto::thread_imb_mgr(), p + hdr, pt.size(), 17, &st);
      if (esp_len == 0) {
        *err = "seal failed";
        return false;
      }
      t.bytes.resize(hdr + esp_len);
      if (o.format == Format::kVanish) {
        eth_ip4(p, m.dut_fabric_mac, m.peer_fabric_mac, m.peer_fabric_ip, m.dut_fabric_ip, 17);
        put16(p + 34, m.in_sa.udp_sport);
        put16(p + 36, 4500);
        put16(p + 38, uint16_t(8 + esp_len));
        put16(p + 40, 0);
        fix_ip4(p + 14, 20 + 8 + esp_len);
      } else {
        eth_ip4(p, m.dut_fabric_mac, m.peer_fabric_mac, m.dst_ip, m.src_ip, 50);
        fix_ip4(p + 14, 20 + esp_len);
      }
      t.icv_off = uint16_t(hdr + esp_len - crypto::kEspIcvLen);
      t.port_off = uint16_t(hdr + crypto::kEspPayloadOffset + t.pt_port_off);
      t.tag_off = uint16_t(hdr + crypto::kEspPayloadOffset + t.pt_tag_off);
      t.base_seq = 1;
      std::memcpy(t.base_fields.data(), pt.data() + t.pt_port_off, 4);
      std::memcpy(t.base_fields.data() + 4, pt.data() + t.pt_tag_off, kTagLen);
      // GHASH: blocks = AAD (1) + ciphertext + length block.
      size_t clen = esp_len - crypto::kEspPayloadOffset - crypto::kEspIcvLen;
      size_t mblk = 1 + (clen + 15) / 16 + 1;
      Block h;
      if (!ghash_key(m.in_sa, &h)) {
        *err = "cannot derive the GHASH key";
        return false;
      }
      std::vector<Block> hp(mblk + 1);
      hp[1] = h;
      for (size_t k = 2; k <= mblk; k++) hp[k] = gf_mul(hp[k - 1], h);
      t.tables.resize(8 + 4 + kTagLen);
      // Sequence number bytes in the AAD: SPI | seq_hi | seq_lo (ESN) or SPI | seq_lo.
      for (int k = 0; k < 8; k++) {
        int pos = m.in_sa.esn ? 4 + k : (k < 4 ? -1 : k);
        if (pos >= 0) t.tables[k] = byte_table(pos, hp[mblk]);
      }
      auto ct_table = [&](size_t off) {
        size_t j = off / 16;
        return byte_table(int(off % 16), hp[mblk - 1 - j]);
      };
      for (int k = 0; k < 4; k++) t.tables[8 + k] = ct_table(t.pt_port_off + k);
      for (size_t k = 0; k < kTagLen; k++) t.tables[12 + k] = ct_table(t.pt_tag_off + k);
    }
    by_size[s] = uint16_t(tmpl_.size());
    max_frame_ = std::max<uint16_t>(max_frame_, uint16_t(t.bytes.size()));
    tmpl_.push_back(std::move(t));
  }
  size_idx_.clear();
  for (uint16_t s : o.sizes) size_idx_.push_back(by_size[s]);
  return true;
}

uint16_t Traffic::fill(uint8_t* dst, uint64_t i, uint64_t seq, uint8_t trial, uint64_t tsc) const {
  const Template& t = tmpl_for(i);
  const size_t len = t.bytes.size();
  std::memcpy(dst, t.bytes.data(), len);
  uint16_t sp, dp;
  flow_ports(o_, uint32_t(i % o_.flows), &sp, &dp);
  uint8_t f[4 + kTagLen];
  put16(f, sp);
  put16(f + 2, dp);
  uint32_t magic = htonl(kTagMagic), word = (uint32_t(trial) << 24) | uint32_t(i & 0xffffff);
  std::memcpy(f + 4, &magic, 4);
  std::memcpy(f + 8, &word, 4);
  std::memcpy(f + 12, &tsc, 8);
  if (!t.esp) {
    std::memcpy(dst + t.port_off, f, 4);
    std::memcpy(dst + t.tag_off, f + 4, kTagLen);
    return uint16_t(len);
  }
  Block acc;
  uint64_t ds = seq ^ t.base_seq;
  for (int k = 0; k < 8; k++) {
    uint8_t d = uint8_t(ds >> (56 - 8 * k));
    if (d) {
      acc.hi ^= t.tables[k][d].hi;
      acc.lo ^= t.tables[k][d].lo;
    }
  }
  uint32_t lo = htonl(uint32_t(seq));
  std::memcpy(dst + t.esp_off + 4, &lo, 4);
  for (size_t k = 0; k < 4 + kTagLen; k++) {
    uint8_t d = uint8_t(f[k] ^ t.base_fields[k]);
    if (!d) continue;
    size_t off = k < 4 ? t.port_off + k : t.tag_off + (k - 4);
    dst[off] ^= d;
    acc.hi ^= t.tables[8 + k][d].hi;
    acc.lo ^= t.tables[8 + k][d].lo;
  }
  uint8_t* icv = dst + t.icv_off;
  put_be64(icv, get_be64(icv) ^ acc.hi);
  put_be64(icv + 8, get_be64(icv + 8) ^ acc.lo);
  return uint16_t(len);
}

bool Traffic::selftest(const Mesh& m, size_t packets, std::string* err) const {
  if (o_.dir != Dir::kIn) return true;
  crypto::EspSa rx;
  if (!init_sa(m.in_sa, &rx)) {
    *err = "cannot init the receiving SA";
    return false;
  }
  std::vector<uint8_t> buf(max_frame_ + 64);
  uint64_t seq = 1;
  for (size_t i = 0; i < packets; i++) {
    seq += 1 + (i % 7 == 3 ? 250 : 0);  // exercise several sequence bytes
    uint64_t tsc = 0x0123456789abcdefULL * (i + 1);
    uint16_t len = fill(buf.data(), i * 7919, seq, uint8_t(i), tsc);
    const Template& t = tmpl_for(i * 7919);
    size_t pl = 0;
    uint8_t nh = 0;
    auto st = rx.open(crypto::thread_imb_mgr(), buf.data() + t.esp_off, len - t.esp_off, &pl, &nh);
    if (st != crypto::EspStatus::kOk) {
      *err = "patched packet " + std::to_string(i) + " (seq " + std::to_string(seq) + ", size " +
             std::to_string(t.size) + ") does not open: " + crypto::esp_status_name(st);
      return false;
    }
    uint64_t got;
    std::memcpy(&got, buf.data() + t.tag_off + 8, 8);
    if (got != tsc) {
      *err = "patched packet " + std::to_string(i) + ": tag does not decrypt to what was written";
      return false;
    }
  }
  return true;
}

bool write_pcap(const std::string& path, const std::vector<std::vector<uint8_t>>& frames,
                std::string* err) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) {
    *err = "cannot write " + path;
    return false;
  }
  uint32_t gh[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};
  std::fwrite(gh, 1, 24, f);
  uint32_t usec = 0;
  for (const auto& fr : frames) {
    uint32_t rh[4] = {0, usec++, uint32_t(fr.size()), uint32_t(fr.size())};
    if (usec == 1000000) usec = 0;
    std::fwrite(rh, 1, 16, f);
    std::fwrite(fr.data(), 1, fr.size(), f);
  }
  bool ok = std::fclose(f) == 0;
  if (!ok) *err = "write error on " + path;
  return ok;
}

}  // namespace vanish::perf
