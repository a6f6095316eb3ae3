// Seeds for the hostname parser fuzz targets (fuzz_tls_sni, fuzz_http_host, fuzz_dns_qname):
// well-formed messages shaped like what openssl s_client, curl and dig send, and the checks every
// target makes on a parser's result.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "dataplane/hostname_parse.hpp"

namespace vanish::fuzz {

using Bytes = std::vector<uint8_t>;

// A TLS 1.3-style ClientHello record with SNI `name` after one other extension.
inline Bytes client_hello(const std::string& name, bool with_sni = true) {
  Bytes body = {3, 3};
  body.resize(2 + 32, 0x5a);
  body.push_back(32);
  body.insert(body.end(), 32, 0x33);
  body.insert(body.end(), {0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 1, 0});
  Bytes ext = {0x00, 0x0b, 0, 4, 3, 0, 1, 2};  // ec_point_formats
  if (with_sni) {
    size_t n = name.size();
    Bytes sn = {0x00,           0x00, uint8_t((n + 5) >> 8), uint8_t(n + 5), uint8_t((n + 3) >> 8),
                uint8_t(n + 3), 0,    uint8_t(n >> 8),       uint8_t(n)};
    sn.insert(sn.end(), name.begin(), name.end());
    ext.insert(ext.end(), sn.begin(), sn.end());
  }
  ext.insert(ext.end(), {0x00, 0x2b, 0, 3, 2, 3, 4});  // supported_versions
  body.push_back(uint8_t(ext.size() >> 8));
  body.push_back(uint8_t(ext.size()));
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes hs = {1, 0, uint8_t(body.size() >> 8), uint8_t(body.size())};
  hs.insert(hs.end(), body.begin(), body.end());
  Bytes rec = {0x16, 3, 1, uint8_t(hs.size() >> 8), uint8_t(hs.size())};
  rec.insert(rec.end(), hs.begin(), hs.end());
  return rec;
}

inline Bytes text(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

inline Bytes dns_query(std::initializer_list<const char*> labels) {
  Bytes b = {0xbe, 0xef, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0};
  for (const char* l : labels) {
    std::string s(l);
    b.push_back(uint8_t(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  }
  b.insert(b.end(), {0, 0, 1, 0, 1});
  return b;
}

// What every parser promises: a found name is a valid hostname of at most kMaxHostLen bytes.
inline void check_result(dp::NameStatus st, const dp::HostName& n) {
  if (st != dp::NameStatus::kFound) return;
  if (n.len == 0 || n.len > dp::kMaxHostLen || !dp::valid_hostname(n.view())) std::abort();
}

}  // namespace vanish::fuzz
