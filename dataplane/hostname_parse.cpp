#include "dataplane/hostname_parse.hpp"

#include <cstring>

namespace vanish::dp {

namespace {

bool host_char(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

uint16_t be16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}

// Copies a candidate name into out after checking it; drops one trailing dot.
NameStatus take(const uint8_t* p, size_t n, HostName* out) {
  if (n && p[n - 1] == '.') n--;
  if (n == 0) return NameStatus::kMalformed;
  if (n > kMaxHostLen) return NameStatus::kTooLong;
  if (!valid_hostname(std::string_view(reinterpret_cast<const char*>(p), n)))
    return NameStatus::kMalformed;
  std::memcpy(out->buf, p, n);
  out->buf[n] = 0;
  out->len = uint16_t(n);
  return NameStatus::kFound;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? char(c + 32) : c;
}

}  // namespace

const char* name_status_str(NameStatus s) {
  switch (s) {
    case NameStatus::kFound:
      return "found";
    case NameStatus::kNotProtocol:
      return "not_protocol";
    case NameStatus::kNoName:
      return "no_name";
    case NameStatus::kTruncated:
      return "truncated";
    case NameStatus::kMalformed:
      return "malformed";
    case NameStatus::kTooLong:
      return "too_long";
  }
  return "?";
}

bool valid_hostname(std::string_view name) {
  if (name.empty() || name.size() > kMaxHostLen) return false;
  size_t label = 0;
  for (char ch : name) {
    uint8_t c = uint8_t(ch);
    if (!host_char(c)) return false;
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (++label > 63) {
      return false;
    }
  }
  return label != 0;
}

NameStatus parse_tls_sni(const uint8_t* d, size_t len, HostName* out) {
  // TLSPlaintext: type(1)=22 handshake, legacy_version(2)=0x03xx, length(2).
  if (len < 1) return NameStatus::kTruncated;
  if (d[0] != 0x16) return NameStatus::kNotProtocol;
  if (len < 5) return NameStatus::kTruncated;
  if (d[1] != 0x03) return NameStatus::kNotProtocol;
  size_t rec_len = be16(d + 3);
  if (rec_len < 4 || rec_len > (1u << 14) + 2048) return NameStatus::kMalformed;
  // Parse inside the record only; the part of it that arrived is what we have.
  size_t end = 5 + rec_len;
  bool cut = end > len;
  if (cut) end = len;
  size_t p = 5;
  // Handshake: msg_type(1)=1 ClientHello, length(3).
  if (p + 4 > end) return NameStatus::kTruncated;
  if (d[p] != 0x01) return NameStatus::kNotProtocol;
  size_t hs_len = size_t(d[p + 1]) << 16 | size_t(d[p + 2]) << 8 | d[p + 3];
  p += 4;
  if (hs_len > rec_len - 4) {
    // A ClientHello spanning several records: parse what this record holds.
    cut = true;
  } else if (p + hs_len < end) {
    end = p + hs_len;
  }
  // legacy_version(2), random(32).
  if (p + 34 > end) return NameStatus::kTruncated;
  p += 34;
  // legacy_session_id<0..32>.
  if (p + 1 > end) return NameStatus::kTruncated;
  size_t sid = d[p];
  if (sid > 32) return NameStatus::kMalformed;
  p += 1 + sid;
  // cipher_suites<2..2^16-2>.
  if (p + 2 > end) return NameStatus::kTruncated;
  size_t cs = be16(d + p);
  if (cs < 2 || (cs & 1)) return NameStatus::kMalformed;
  p += 2 + cs;
  // legacy_compression_methods<1..2^8-1>.
  if (p + 1 > end) return NameStatus::kTruncated;
  size_t cm = d[p];
  if (cm < 1) return NameStatus::kMalformed;
  p += 1 + cm;
  if (p > end) return NameStatus::kTruncated;
  if (p == end && !cut) return NameStatus::kNoName;  // no extensions at all (TLS 1.0 style)
  // extensions<8..2^16-1>.
  if (p + 2 > end) return NameStatus::kTruncated;
  size_t ext_end = p + 2 + be16(d + p);
  p += 2;
  if (ext_end > end) {
    if (!cut) return NameStatus::kMalformed;
    ext_end = end;
  }
  while (p < ext_end) {
    if (p + 4 > ext_end) return cut ? NameStatus::kTruncated : NameStatus::kMalformed;
    uint16_t type = be16(d + p);
    size_t elen = be16(d + p + 2);
    p += 4;
    if (p + elen > ext_end) return cut ? NameStatus::kTruncated : NameStatus::kMalformed;
    if (type == 0) {  // server_name: ServerNameList<1..2^16-1>
      if (elen < 2) return NameStatus::kMalformed;
      size_t list_end = p + 2 + be16(d + p);
      if (list_end > p + elen) return NameStatus::kMalformed;
      size_t q = p + 2;
      while (q < list_end) {
        if (q + 3 > list_end) return NameStatus::kMalformed;
        uint8_t name_type = d[q];
        size_t nlen = be16(d + q + 1);
        q += 3;
        if (q + nlen > list_end) return NameStatus::kMalformed;
        if (name_type == 0) return take(d + q, nlen, out);  // host_name
        q += nlen;
      }
      return NameStatus::kNoName;
    }
    p += elen;
  }
  return cut ? NameStatus::kTruncated : NameStatus::kNoName;
}

NameStatus parse_http_host(const uint8_t* d, size_t len, HostName* out) {
  // Request line: METHOD SP request-target SP HTTP/1.x CRLF.
  size_t p = 0;
  while (p < len && p < 16 && d[p] >= 'A' && d[p] <= 'Z') p++;
  if (p == len) return NameStatus::kTruncated;
  if (p == 0 || d[p] != ' ') return NameStatus::kNotProtocol;
  // The rest of the request line, up to LF; it must end with HTTP/1.x.
  const uint8_t* lf = static_cast<const uint8_t*>(std::memchr(d + p, '\n', len - p));
  if (!lf) return NameStatus::kTruncated;
  size_t eol = size_t(lf - d);
  size_t line_end = (eol > 0 && d[eol - 1] == '\r') ? eol - 1 : eol;
  if (line_end < p + 10 || std::memcmp(d + line_end - 8, "HTTP/1.", 7) != 0)
    return NameStatus::kNotProtocol;
  p = eol + 1;
  // Header fields until the empty line.
  for (;;) {
    if (p >= len) return NameStatus::kTruncated;
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(d + p, '\n', len - p));
    if (!nl) return NameStatus::kTruncated;
    size_t e = size_t(nl - d);
    size_t le = (e > p && d[e - 1] == '\r') ? e - 1 : e;
    if (le == p) return NameStatus::kNoName;  // end of the header block, no Host
    if (le - p >= 5) {
      static const char kHost[] = "host:";
      bool is_host = true;
      for (size_t k = 0; k < 5; k++)
        if (lower(char(d[p + k])) != kHost[k]) {
          is_host = false;
          break;
        }
      if (is_host) {
        size_t a = p + 5, b = le;
        while (a < b && (d[a] == ' ' || d[a] == '\t')) a++;
        while (b > a && (d[b - 1] == ' ' || d[b - 1] == '\t')) b--;
        if (a == b) return NameStatus::kNoName;
        if (d[a] == '[') return NameStatus::kNoName;  // an IPv6 literal is not a name
        // Drop ":port".
        for (size_t k = a; k < b; k++)
          if (d[k] == ':') {
            for (size_t j = k + 1; j < b; j++)
              if (d[j] < '0' || d[j] > '9') return NameStatus::kMalformed;
            b = k;
            break;
          }
        return take(d + a, b - a, out);
      }
    }
    p = e + 1;
  }
}

NameStatus parse_dns_qname(const uint8_t* d, size_t len, HostName* out) {
  if (len < 12) return NameStatus::kTruncated;
  if (d[2] & 0x80) return NameStatus::kNotProtocol;  // QR = 1: a response
  if (be16(d + 4) == 0) return NameStatus::kNoName;  // QDCOUNT
  size_t p = 12, n = 0;
  for (;;) {
    if (p >= len) return NameStatus::kTruncated;
    uint8_t l = d[p++];
    if (l == 0) break;
    if (l & 0xc0) return NameStatus::kMalformed;  // compression pointer or reserved label type
    if (p + l > len) return NameStatus::kTruncated;
    if (n + (n ? 1 : 0) + l > kMaxHostLen) return NameStatus::kTooLong;
    if (n) out->buf[n++] = '.';
    for (size_t k = 0; k < l; k++) {
      uint8_t c = d[p + k];
      if (!host_char(c) || c == '.') return NameStatus::kMalformed;
      out->buf[n++] = char(c);
    }
    p += l;
  }
  if (p + 4 > len) return NameStatus::kTruncated;  // QTYPE, QCLASS
  if (n == 0) return NameStatus::kNoName;          // the root
  out->buf[n] = 0;
  out->len = uint16_t(n);
  return valid_hostname(out->view()) ? NameStatus::kFound : NameStatus::kMalformed;
}

NameStatus parse_tcp_first_payload(const uint8_t* data, size_t len, HostName* out) {
  if (len && data[0] == 0x16) return parse_tls_sni(data, len, out);
  return parse_http_host(data, len, out);
}

}  // namespace vanish::dp
