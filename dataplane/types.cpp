#include "dataplane/types.hpp"

#include <arpa/inet.h>

#include <cstdio>

namespace vanish {

std::string MacAddr::str() const {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4],
                b[5]);
  return buf;
}

bool MacAddr::parse(const std::string& s, MacAddr* out) {
  unsigned v[6];
  char tail;
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                  &tail) != 6)
    return false;
  for (int i = 0; i < 6; i++) out->b[i] = uint8_t(v[i]);
  return true;
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) return inet_ntop(AF_INET, v4_bytes(), buf, sizeof buf);
  return inet_ntop(AF_INET6, b.data(), buf, sizeof buf);
}

bool IpAddr::parse(const std::string& s, IpAddr* out) {
  uint8_t raw[16];
  if (inet_pton(AF_INET, s.c_str(), raw) == 1) {
    *out = v4(raw);
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), raw) == 1) {
    *out = v6(raw);
    return true;
  }
  return false;
}

bool IpAddr::from_bytes(const std::string& raw, IpAddr* out) {
  if (raw.size() == 4) {
    *out = v4(reinterpret_cast<const uint8_t*>(raw.data()));
    return true;
  }
  if (raw.size() == 16) {
    *out = v6(reinterpret_cast<const uint8_t*>(raw.data()));
    return true;
  }
  return false;
}

bool IpPrefix::contains(const IpAddr& a) const {
  unsigned full = len / 8, rem = len % 8;
  if (std::memcmp(a.b.data(), addr.b.data(), full) != 0) return false;
  if (rem == 0) return true;
  uint8_t mask = uint8_t(0xff << (8 - rem));
  return (a.b[full] & mask) == (addr.b[full] & mask);
}

bool IpPrefix::parse(const std::string& cidr, IpPrefix* out) {
  auto slash = cidr.find('/');
  if (slash == std::string::npos) return false;
  IpAddr a;
  if (!IpAddr::parse(cidr.substr(0, slash), &a)) return false;
  std::string lens = cidr.substr(slash + 1);
  if (lens.empty() || lens.size() > 3) return false;
  for (char c : lens)
    if (c < '0' || c > '9') return false;
  unsigned l = unsigned(std::stoul(lens));
  bool v4 = a.is_v4();
  if (l > (v4 ? 32u : 128u)) return false;
  out->addr = a;
  out->len = uint8_t(v4 ? 96 + l : l);
  // Host bits must be zero: "10.1.0.5/24" is a typo more often than intent.
  IpPrefix p = *out;
  for (unsigned bit = p.len; bit < 128; bit++)
    if (a.b[bit / 8] & (0x80 >> (bit % 8))) return false;
  return true;
}

std::string IpPrefix::str() const {
  bool v4 = addr.is_v4();
  return addr.str() + "/" + std::to_string(v4 ? len - 96 : len);
}

}  // namespace vanish
