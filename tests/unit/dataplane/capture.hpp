// Real-shaped application payloads for the hostname tests: what `openssl s_client`, `curl` and
// `dig` actually send, captured on a loopback socket the test opens (no network, no fixtures
// checked in), and a minimal pcap writer/reader so the captures can be kept as files.
//
// Contract: each capture_*() runs the program once against 127.0.0.1:<ephemeral port>, returns
// the first payload it sent (the TLS records / HTTP request head / DNS query datagram), and
// nullopt when the program is missing or sent nothing within 5 s (tests then skip). The child is
// stopped by its pid.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tests/unit/dataplane/packets.hpp"

namespace vanish::test {

std::optional<Bytes> capture_client_hello(const std::string& sni, const std::string& extra = "");
std::optional<Bytes> capture_http_request(const std::string& host);
std::optional<Bytes> capture_dns_query(const std::string& name);

// pcap (LINKTYPE_ETHERNET) of whole frames; read_pcap returns them in order (empty on error).
bool write_pcap(const std::string& path, const std::vector<Bytes>& frames);
std::vector<Bytes> read_pcap(const std::string& path);

}  // namespace vanish::test
