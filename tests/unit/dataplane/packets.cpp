#include "tests/unit/dataplane/packets.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

namespace vanish::test {

MacAddr mac(const std::string& s) {
  MacAddr m;
  if (!MacAddr::parse(s, &m)) {
    std::fprintf(stderr, "bad MAC literal %s\n", s.c_str());
    std::abort();
  }
  return m;
}

IpAddr ip(const std::string& s) {
  IpAddr a;
  if (!IpAddr::parse(s, &a)) {
    std::fprintf(stderr, "bad IP literal %s\n", s.c_str());
    std::abort();
  }
  return a;
}

uint16_t rd16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
uint32_t rd32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
void wr16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void wr32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

namespace {

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += rd16(p + i);
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

const uint8_t* addr_bytes(const IpAddr& a) {
  return a.is_v4() ? a.v4_bytes() : a.b.data();
}
size_t addr_len(const IpAddr& a) {
  return a.is_v4() ? 4 : 16;
}

void append(Bytes& out, const Bytes& in) {
  out.insert(out.end(), in.begin(), in.end());
}

}  // namespace

void fix_l4_checksum(Bytes& pkt) {
  size_t hl = ip_hdr_len(pkt);
  uint8_t proto = ip_proto(pkt);
  uint8_t* l4 = pkt.data() + hl;
  size_t len = pkt.size() - hl;
  size_t off;
  uint32_t sum = 0;
  switch (proto) {
    case kProtoUdp:
      off = 6;
      sum = pseudo_header_sum(ip_src(pkt), ip_dst(pkt), proto, len);
      break;
    case kProtoTcp:
      off = 16;
      sum = pseudo_header_sum(ip_src(pkt), ip_dst(pkt), proto, len);
      break;
    case kProtoIcmp:
      off = 2;
      break;
    case kProtoIcmp6:
      off = 2;
      sum = pseudo_header_sum(ip_src(pkt), ip_dst(pkt), proto, len);
      break;
    default:
      return;
  }
  wr16(l4 + off, 0);
  uint16_t c = inet_checksum(l4, len, sum);
  if (proto == kProtoUdp && c == 0) c = 0xffff;  // RFC 768: 0 means "no checksum"
  wr16(l4 + off, c);
}

uint16_t inet_checksum(const uint8_t* p, size_t n, uint32_t sum) {
  return uint16_t(~fold(sum16(p, n, sum)));
}

uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, uint8_t proto, size_t l4_len) {
  uint32_t sum = sum16(addr_bytes(src), addr_len(src), 0);
  sum = sum16(addr_bytes(dst), addr_len(dst), sum);
  sum += proto;
  sum += uint32_t(l4_len >> 16) + uint32_t(l4_len & 0xffff);
  return sum;
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; i++) b[i] = uint8_t(seed + i * 7 + (i >> 8));
  return b;
}

// ---- IP ---------------------------------------------------------------------------------------

Bytes ip_packet(const IpHdr& h, uint8_t proto, const Bytes& l4) {
  Bytes p;
  if (!h.v6()) {
    p.resize(20);
    p[0] = 0x45;
    p[1] = h.tos;
    wr16(&p[2], uint16_t(20 + l4.size()));
    wr16(&p[4], h.id);
    wr16(&p[6], h.df ? 0x4000 : 0);
    p[8] = h.ttl;
    p[9] = proto;
    std::memcpy(&p[12], h.src.v4_bytes(), 4);
    std::memcpy(&p[16], h.dst.v4_bytes(), 4);
    wr16(&p[10], inet_checksum(p.data(), 20));
  } else {
    p.resize(40);
    wr32(&p[0], 6u << 28 | uint32_t(h.tos) << 20 | (h.flow_label & 0xfffff));
    wr16(&p[4], uint16_t(l4.size()));
    p[6] = proto;
    p[7] = h.ttl;
    std::memcpy(&p[8], h.src.b.data(), 16);
    std::memcpy(&p[24], h.dst.b.data(), 16);
  }
  append(p, l4);
  return p;
}

Bytes udp(const IpHdr& h, uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes l4(8);
  wr16(&l4[0], sport);
  wr16(&l4[2], dport);
  wr16(&l4[4], uint16_t(8 + payload.size()));
  append(l4, payload);
  Bytes p = ip_packet(h, kProtoUdp, l4);
  fix_l4_checksum(p);
  return p;
}

Bytes tcp(const IpHdr& h, uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack,
          const Bytes& payload) {
  Bytes l4(20);
  wr16(&l4[0], sport);
  wr16(&l4[2], dport);
  wr32(&l4[4], seq);
  wr32(&l4[8], ack);
  l4[12] = 5 << 4;
  l4[13] = flags;
  wr16(&l4[14], 65535);
  append(l4, payload);
  Bytes p = ip_packet(h, kProtoTcp, l4);
  fix_l4_checksum(p);
  return p;
}

Bytes icmp_echo(const IpHdr& h, bool request, uint16_t ident, uint16_t seq, const Bytes& payload) {
  Bytes l4(8);
  l4[0] = h.v6() ? (request ? 128 : 129) : (request ? 8 : 0);
  wr16(&l4[4], ident);
  wr16(&l4[6], seq);
  append(l4, payload);
  Bytes p = ip_packet(h, h.v6() ? kProtoIcmp6 : kProtoIcmp, l4);
  fix_l4_checksum(p);
  return p;
}

bool ip_is_v6(const Bytes& ip) {
  return !ip.empty() && (ip[0] >> 4) == 6;
}
size_t ip_hdr_len(const Bytes& ip) {
  return ip_is_v6(ip) ? 40 : size_t(ip[0] & 0xf) * 4;
}
uint8_t ip_proto(const Bytes& ip) {
  return ip_is_v6(ip) ? ip[6] : ip[9];
}
uint8_t ip_ttl(const Bytes& ip) {
  return ip_is_v6(ip) ? ip[7] : ip[8];
}
IpAddr ip_src(const Bytes& ip) {
  return ip_is_v6(ip) ? IpAddr::v6(ip.data() + 8) : IpAddr::v4(ip.data() + 12);
}
IpAddr ip_dst(const Bytes& ip) {
  return ip_is_v6(ip) ? IpAddr::v6(ip.data() + 24) : IpAddr::v4(ip.data() + 16);
}

bool ipv4_header_ok(const Bytes& ip) {
  if (ip_is_v6(ip)) return true;
  size_t hl = ip_hdr_len(ip);
  return ip.size() >= hl && hl >= 20 && inet_checksum(ip.data(), hl) == 0;
}

bool l4_checksum_ok(const Bytes& ip) {
  size_t hl = ip_hdr_len(ip);
  if (ip.size() < hl) return false;
  uint8_t proto = ip_proto(ip);
  size_t len = ip.size() - hl;
  const uint8_t* l4 = ip.data() + hl;
  uint32_t sum = 0;
  if (proto == kProtoUdp) {
    if (len < 8) return false;
    if (!ip_is_v6(ip) && rd16(l4 + 6) == 0) return true;  // IPv4 UDP without checksum
  }
  if (proto == kProtoUdp || proto == kProtoTcp || proto == kProtoIcmp6)
    sum = pseudo_header_sum(ip_src(ip), ip_dst(ip), proto, len);
  else if (proto != kProtoIcmp)
    return false;
  return inet_checksum(l4, len, sum) == 0;
}

void fix_ipv4_checksum(Bytes& ip) {
  if (ip_is_v6(ip)) return;
  size_t hl = ip_hdr_len(ip);
  wr16(&ip[10], 0);
  wr16(&ip[10], inet_checksum(ip.data(), hl));
}

Bytes dec_ttl(Bytes ip) {
  if (ip_is_v6(ip)) {
    ip[7]--;
  } else {
    ip[8]--;
    fix_ipv4_checksum(ip);
  }
  return ip;
}

std::optional<Bytes> ipv4_reassemble(const std::vector<Bytes>& frags) {
  if (frags.empty()) return std::nullopt;
  std::map<size_t, Bytes> parts;  // payload offset -> payload
  std::optional<Bytes> first_hdr;
  std::optional<size_t> total;
  for (const Bytes& f : frags) {
    if (f.size() < 20 || ip_is_v6(f)) return std::nullopt;
    size_t hl = ip_hdr_len(f);
    if (rd16(f, 2) != f.size() || !ipv4_header_ok(f)) return std::nullopt;
    uint16_t fo = rd16(f, 6);
    size_t off = size_t(fo & 0x1fff) * 8;
    bool mf = fo & 0x2000;
    Bytes payload(f.begin() + long(hl), f.end());
    if (!mf) {
      if (total) return std::nullopt;
      total = off + payload.size();
    }
    if (off == 0) first_hdr = Bytes(f.begin(), f.begin() + long(hl));
    if (!parts.emplace(off, std::move(payload)).second) return std::nullopt;
  }
  if (!total || !first_hdr) return std::nullopt;
  Bytes out = *first_hdr;
  size_t at = 0;
  for (auto& [off, p] : parts) {
    if (off != at) return std::nullopt;  // gap or overlap
    append(out, p);
    at += p.size();
  }
  if (at != *total) return std::nullopt;
  wr16(&out[2], uint16_t(out.size()));
  wr16(&out[6], rd16(out, 6) & 0x4000);  // keep DF, clear MF and offset
  fix_ipv4_checksum(out);
  return out;
}

// ---- Ethernet, ARP, ND ------------------------------------------------------------------------

Bytes eth(const MacAddr& dst, const MacAddr& src, uint16_t ethertype, const Bytes& payload) {
  Bytes f(kEth);
  std::memcpy(&f[0], dst.b.data(), 6);
  std::memcpy(&f[6], src.b.data(), 6);
  wr16(&f[12], ethertype);
  append(f, payload);
  return f;
}

Bytes eth_ip(const MacAddr& dst, const MacAddr& src, const Bytes& ip) {
  return eth(dst, src, ip_is_v6(ip) ? kEthIpv6 : kEthIpv4, ip);
}

Bytes l3_of(const Bytes& frame) {
  return frame.size() < kEth ? Bytes{} : Bytes(frame.begin() + kEth, frame.end());
}
MacAddr eth_dst(const Bytes& frame) {
  MacAddr m;
  std::memcpy(m.b.data(), frame.data(), 6);
  return m;
}
MacAddr eth_src(const Bytes& frame) {
  MacAddr m;
  std::memcpy(m.b.data(), frame.data() + 6, 6);
  return m;
}
uint16_t eth_type(const Bytes& frame) {
  return rd16(frame, 12);
}

Bytes arp(uint16_t op, const MacAddr& sha, const IpAddr& spa, const MacAddr& tha, const IpAddr& tpa,
          const MacAddr* dst) {
  Bytes a(28);
  wr16(&a[0], 1);  // Ethernet
  wr16(&a[2], kEthIpv4);
  a[4] = 6;
  a[5] = 4;
  wr16(&a[6], op);
  std::memcpy(&a[8], sha.b.data(), 6);
  std::memcpy(&a[14], spa.v4_bytes(), 4);
  std::memcpy(&a[18], tha.b.data(), 6);
  std::memcpy(&a[24], tpa.v4_bytes(), 4);
  a.resize(46, 0);  // minimum Ethernet payload
  MacAddr bcast = mac("ff:ff:ff:ff:ff:ff");
  return eth(dst ? *dst : bcast, sha, kEthArp, a);
}

IpAddr solicited_node(const IpAddr& target) {
  IpAddr g = ip("ff02::1:ff00:0");
  std::memcpy(&g.b[13], &target.b[13], 3);
  return g;
}

MacAddr ipv6_multicast_mac(const IpAddr& group) {
  MacAddr m;
  m.b = {0x33, 0x33, group.b[12], group.b[13], group.b[14], group.b[15]};
  return m;
}

Bytes nd_solicit(const MacAddr& src_mac, const IpAddr& src, const IpAddr& target, bool with_sll,
                 uint8_t hop_limit) {
  Bytes icmp(24);
  icmp[0] = 135;
  std::memcpy(&icmp[8], target.b.data(), 16);
  if (with_sll) {
    Bytes opt = {1, 1};
    opt.insert(opt.end(), src_mac.b.begin(), src_mac.b.end());
    append(icmp, opt);
  }
  IpHdr h;
  h.src = src;
  h.dst = solicited_node(target);
  h.ttl = hop_limit;
  Bytes p = ip_packet(h, kProtoIcmp6, icmp);
  fix_l4_checksum(p);
  return eth_ip(ipv6_multicast_mac(h.dst), src_mac, p);
}

// ---- Fabric -----------------------------------------------------------------------------------

Bytes geneve_option(uint16_t opt_class, uint8_t type, const Bytes& data) {
  Bytes o(4);
  wr16(&o[0], opt_class);
  o[2] = type;
  size_t words = (data.size() + 3) / 4;
  o[3] = uint8_t(words & 0x1f);
  append(o, data);
  o.resize(4 + words * 4, 0);
  return o;
}

Bytes geneve_identity(uint32_t id) {
  Bytes d(4);
  wr32(d.data(), id);
  return geneve_option(0xFF56, 0x81, d);
}

Bytes geneve_udp(uint16_t sport, uint16_t protocol, const Bytes& options, const Bytes& inner,
                 uint8_t flags) {
  Bytes g(16);
  wr16(&g[0], sport);
  wr16(&g[2], kGenevePort);
  wr16(&g[4], uint16_t(16 + options.size() + inner.size()));
  // g[6..7]: checksum 0 (ESP protects the payload; RFC 8926 §3.3)
  g[8] = uint8_t((options.size() / 4) & 0x3f);
  g[9] = flags;
  wr16(&g[10], protocol);
  // VNI 0, reserved 0
  append(g, options);
  append(g, inner);
  return g;
}

Bytes fabric_frame(const OuterHdr& o, const Bytes& esp) {
  Bytes u(8);
  wr16(&u[0], o.sport);
  wr16(&u[2], o.dport);
  wr16(&u[4], uint16_t(8 + esp.size()));
  append(u, esp);
  IpHdr h;
  h.src = o.src;
  h.dst = o.dst;
  h.ttl = 64;
  h.df = true;
  h.id = 0;
  Bytes p = ip_packet(h, kProtoUdp, u);
  if (h.v6()) fix_l4_checksum(p);
  return eth_ip(o.dst_mac, o.src_mac, p);
}

size_t esp_offset(const Bytes& frame) {
  return kEth + (rd16(frame, 12) == kEthIpv6 ? 40 : size_t(frame[kEth] & 0xf) * 4) + 8;
}

std::string hex(const Bytes& b, size_t max) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < b.size() && i < max; i++) {
    std::snprintf(buf, sizeof buf, "%02x", b[i]);
    if (i) s += (i % 16 == 0) ? '\n' : ' ';
    s += buf;
  }
  if (b.size() > max) s += " ...";
  return s;
}

}  // namespace vanish::test
