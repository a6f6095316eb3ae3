// Hostname parsers for egress classification (stage_hostname.hpp): the TLS ClientHello's SNI,
// the HTTP/1.x Host header, the DNS query name. No DPDK, no allocation, no exceptions.
//
// Contract
// - Each parser reads only data[0, len) and never more than that, whatever the bytes say
//   (fuzzed: tests/fuzz/fuzz_hostname.cpp). The name it returns is a valid hostname (letters,
//   digits, '-', '_', '.', 1..253 bytes, labels 1..63, no trailing dot), at most kMaxHostLen bytes.
// - A name is returned as it appears on the wire (case preserved; matching is caseless).
// - kNotProtocol: the bytes are not this protocol at all; kNoName: well formed but carries no
//   name (a ClientHello without SNI, an HTTP/1.0 request without Host); kTruncated: the input
//   ends before the name (a ClientHello or header block split over segments, a short datagram);
//   kMalformed: inconsistent lengths or a name with bytes a hostname cannot have; kTooLong: a
//   name longer than kMaxHostLen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vanish::dp {

inline constexpr size_t kMaxHostLen = 253;

enum class NameStatus : uint8_t { kFound, kNotProtocol, kNoName, kTruncated, kMalformed, kTooLong };
const char* name_status_str(NameStatus s);

// A parsed name: the bytes live in `buf` (copied, so the packet may go on being rewritten).
struct HostName {
  uint16_t len = 0;
  char buf[kMaxHostLen + 1];
  std::string_view view() const { return {buf, len}; }
};

// The first TLS record of a TCP stream: a handshake record holding a ClientHello.
NameStatus parse_tls_sni(const uint8_t* data, size_t len, HostName* out);
// The start of an HTTP/1.x request: request line, then headers up to the empty line. The port of
// a "Host: name:port" is dropped.
NameStatus parse_http_host(const uint8_t* data, size_t len, HostName* out);
// A DNS message (UDP payload): a query (QR = 0) with at least one question; the first
// question's name (no compression pointers).
NameStatus parse_dns_qname(const uint8_t* data, size_t len, HostName* out);
// The first payload of a TCP flow: TLS if it starts like a handshake record, else HTTP.
NameStatus parse_tcp_first_payload(const uint8_t* data, size_t len, HostName* out);

// A syntactically valid hostname (see the contract); config validation uses it too.
bool valid_hostname(std::string_view name);

}  // namespace vanish::dp
