// The hostname parsers (dataplane/hostname_parse.hpp) on real-shaped input: ClientHellos sent by
// `openssl s_client`, requests sent by `curl`, queries sent by `dig`, captured on loopback by the
// test and kept in a pcap (written, read back, parsed from there), plus hand-made edge cases:
// every truncation, malformed lengths, oversized names. No DPDK.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "dataplane/hostname_parse.hpp"
#include "tests/unit/dataplane/capture.hpp"

namespace vanish::test {
namespace {

using dp::HostName;
using dp::NameStatus;

std::string status(NameStatus s) {
  return dp::name_status_str(s);
}

// Round trip through a pcap file: Eth | IPv4 | TCP or UDP | payload, then the payload back.
Bytes via_pcap(const Bytes& payload, bool udp_) {
  IpHdr h;
  h.src = ip("10.1.0.10");
  h.dst = ip("203.0.113.10");
  Bytes l3 = udp_ ? udp(h, 40000, 53, payload)
                  : tcp(h, 40000, 443, uint8_t(kTcpAck | 0x08), 1, 1, payload);
  Bytes frame = eth_ip(mac("02:00:00:00:10:01"), mac("02:00:00:aa:00:10"), l3);
  char tmpl[] = "/tmp/vanish-hostname-XXXXXX";
  int fd = mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  close(fd);
  EXPECT_TRUE(write_pcap(tmpl, {frame}));
  std::vector<Bytes> back = read_pcap(tmpl);
  unlink(tmpl);
  EXPECT_EQ(back.size(), 1u);
  if (back.size() != 1) return {};
  Bytes ipb = l3_of(back[0]);
  size_t off = ip_hdr_len(ipb) + (udp_ ? 8 : 20);
  return Bytes(ipb.begin() + long(off), ipb.end());
}

NameStatus tls(const Bytes& b, HostName* n) {
  return dp::parse_tls_sni(b.data(), b.size(), n);
}
NameStatus http(const std::string& s, HostName* n) {
  return dp::parse_http_host(reinterpret_cast<const uint8_t*>(s.data()), s.size(), n);
}
NameStatus dns(const Bytes& b, HostName* n) {
  return dp::parse_dns_qname(b.data(), b.size(), n);
}

// Every prefix and a few thousand single-byte corruptions: never more than the input is read
// (ASan build), and a name is only ever found when the input still holds it.
template <typename Parse>
void torture(const Bytes& whole, Parse parse, const std::string& expect) {
  HostName n;
  for (size_t k = 0; k < whole.size(); k++) {
    Bytes cut(whole.begin(), whole.begin() + long(k));
    cut.shrink_to_fit();
    NameStatus st = parse(cut, &n);
    if (st == NameStatus::kFound) {
      EXPECT_EQ(n.view(), expect) << "prefix " << k;
    }
  }
  uint64_t r = 0x12345;
  for (int i = 0; i < 4000; i++) {
    Bytes m = whole;
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    m[r % m.size()] = uint8_t(r >> 32);
    NameStatus st = parse(m, &n);
    if (st == NameStatus::kFound) {
      EXPECT_TRUE(dp::valid_hostname(n.view()));
    }
  }
}

TEST(HostnameParse, OpensslClientHelloSni) {
  auto ch = capture_client_hello("allowed.test");
  if (!ch) GTEST_SKIP() << "openssl s_client not available";
  Bytes rec = via_pcap(*ch, false);
  ASSERT_GT(rec.size(), 50u);
  EXPECT_EQ(rec[0], 0x16) << "a TLS handshake record";
  HostName n;
  ASSERT_EQ(tls(rec, &n), NameStatus::kFound) << status(tls(rec, &n));
  EXPECT_EQ(n.view(), "allowed.test");
  EXPECT_EQ(dp::parse_tcp_first_payload(rec.data(), rec.size(), &n), NameStatus::kFound);
  torture(rec, tls, "allowed.test");
  // Cut right after the record header and inside the SNI: truncated, never a wrong name.
  Bytes cut(rec.begin(), rec.begin() + 20);
  EXPECT_EQ(tls(cut, &n), NameStatus::kTruncated);
}

TEST(HostnameParse, OpensslTls12AndMixedCaseSni) {
  auto ch = capture_client_hello("API.Example.COM", "-tls1_2");
  if (!ch) GTEST_SKIP() << "openssl s_client not available";
  HostName n;
  ASSERT_EQ(tls(*ch, &n), NameStatus::kFound);
  EXPECT_EQ(n.view(), "API.Example.COM") << "case preserved; matching is caseless";
}

TEST(HostnameParse, OpensslClientHelloWithoutSni) {
  auto ch = capture_client_hello("");
  if (!ch) GTEST_SKIP() << "openssl s_client not available";
  HostName n;
  EXPECT_EQ(tls(*ch, &n), NameStatus::kNoName);
}

TEST(HostnameParse, TlsEdgeCases) {
  HostName n;
  EXPECT_EQ(tls({}, &n), NameStatus::kTruncated);
  EXPECT_EQ(tls({0x17, 3, 3, 0, 5}, &n), NameStatus::kNotProtocol) << "application data";
  EXPECT_EQ(tls({0x16, 3, 1, 0, 0}, &n), NameStatus::kMalformed) << "empty record";
  EXPECT_EQ(tls({0x16, 3, 1, 0xff, 0xff}, &n), NameStatus::kMalformed) << "oversized record";
  EXPECT_EQ(tls({0x16, 3, 1, 0, 4, 2, 0, 0, 0}, &n), NameStatus::kNotProtocol) << "ServerHello";
  // A ClientHello whose SNI is 300 bytes long: too long for a hostname.
  auto build = [](const std::string& name) {
    Bytes body = {3, 3};
    body.resize(2 + 32, 0x11);
    body.push_back(0);                                  // session id
    body.insert(body.end(), {0, 2, 0x13, 0x01, 1, 0});  // cipher suites, compression
    Bytes sn = {0, uint8_t(name.size() >> 8), uint8_t(name.size())};
    sn.insert(sn.end(), name.begin(), name.end());
    Bytes ext = {0,
                 0,
                 uint8_t((sn.size() + 2) >> 8),
                 uint8_t(sn.size() + 2),
                 uint8_t(sn.size() >> 8),
                 uint8_t(sn.size())};
    ext.insert(ext.end(), sn.begin(), sn.end());
    body.push_back(uint8_t(ext.size() >> 8));
    body.push_back(uint8_t(ext.size()));
    body.insert(body.end(), ext.begin(), ext.end());
    Bytes hs = {1, 0, uint8_t(body.size() >> 8), uint8_t(body.size())};
    hs.insert(hs.end(), body.begin(), body.end());
    Bytes rec = {0x16, 3, 1, uint8_t(hs.size() >> 8), uint8_t(hs.size())};
    rec.insert(rec.end(), hs.begin(), hs.end());
    return rec;
  };
  EXPECT_EQ(tls(build("ok.example.com"), &n), NameStatus::kFound);
  EXPECT_EQ(n.view(), "ok.example.com");
  EXPECT_EQ(tls(build(std::string(300, 'a')), &n), NameStatus::kTooLong);
  EXPECT_EQ(tls(build("bad name"), &n), NameStatus::kMalformed);
  EXPECT_EQ(tls(build("a..b"), &n), NameStatus::kMalformed);
  EXPECT_EQ(tls(build("trailing.dot."), &n), NameStatus::kFound);
  EXPECT_EQ(n.view(), "trailing.dot");
  torture(build("ok.example.com"), tls, "ok.example.com");
}

TEST(HostnameParse, CurlHttpHost) {
  auto req = capture_http_request("allowed.test");
  if (!req) GTEST_SKIP() << "curl not available";
  Bytes p = via_pcap(*req, false);
  std::string s(p.begin(), p.end());
  ASSERT_NE(s.find("Host: allowed.test:"), std::string::npos) << s;
  HostName n;
  ASSERT_EQ(http(s, &n), NameStatus::kFound);
  EXPECT_EQ(n.view(), "allowed.test") << "the port is dropped";
  EXPECT_EQ(dp::parse_tcp_first_payload(p.data(), p.size(), &n), NameStatus::kFound);
  torture(
      p, [](const Bytes& b, HostName* o) { return dp::parse_http_host(b.data(), b.size(), o); },
      "allowed.test");
}

TEST(HostnameParse, HttpEdgeCases) {
  HostName n;
  EXPECT_EQ(http("GET / HTTP/1.1\r\nhOsT:\t x.example.org \r\n\r\n", &n), NameStatus::kFound);
  EXPECT_EQ(n.view(), "x.example.org");
  EXPECT_EQ(http("GET / HTTP/1.1\nHost: lf.only\n\n", &n), NameStatus::kFound);
  EXPECT_EQ(http("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", &n), NameStatus::kNoName);
  EXPECT_EQ(http("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &n), NameStatus::kNoName);
  EXPECT_EQ(http("GET / HTTP/1.1\r\nHost: a.b:8x\r\n\r\n", &n), NameStatus::kMalformed);
  EXPECT_EQ(http("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", &n), NameStatus::kMalformed);
  EXPECT_EQ(http("GET / HTTP/1.1\r\nHost: " + std::string(260, 'a') + "\r\n\r\n", &n),
            NameStatus::kTooLong);
  EXPECT_EQ(http("GET / HTTP/1.1\r\nAccept: */*\r\n", &n), NameStatus::kTruncated);
  EXPECT_EQ(http("GET / HTT", &n), NameStatus::kTruncated);
  EXPECT_EQ(http("SSH-2.0-OpenSSH_9.2\r\n", &n), NameStatus::kNotProtocol);
  EXPECT_EQ(http("GET / SMTP\r\n", &n), NameStatus::kNotProtocol);
  EXPECT_EQ(http("", &n), NameStatus::kTruncated);
}

TEST(HostnameParse, DigDnsQuery) {
  auto q = capture_dns_query("Allowed.Test");
  if (!q) GTEST_SKIP() << "dig not available";
  Bytes p = via_pcap(*q, true);
  HostName n;
  ASSERT_EQ(dns(p, &n), NameStatus::kFound);
  EXPECT_EQ(n.view(), "Allowed.Test");
  torture(p, dns, "Allowed.Test");
}

TEST(HostnameParse, DnsEdgeCases) {
  Bytes hdr = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  auto q = [&](const Bytes& name) {
    Bytes b = hdr;
    b.insert(b.end(), name.begin(), name.end());
    b.insert(b.end(), {0, 1, 0, 1});
    return b;
  };
  HostName n;
  EXPECT_EQ(dns(q({3, 'w', 'w', 'w', 1, 'x', 0}), &n), NameStatus::kFound);
  EXPECT_EQ(n.view(), "www.x");
  EXPECT_EQ(dns(q({0}), &n), NameStatus::kNoName) << "the root";
  EXPECT_EQ(dns(q({0xc0, 12}), &n), NameStatus::kMalformed) << "compression pointer";
  EXPECT_EQ(dns(q({3, 'a', '.', 'b', 0}), &n), NameStatus::kMalformed) << "dot inside a label";
  Bytes resp = q({1, 'a', 0});
  resp[2] |= 0x80;
  EXPECT_EQ(dns(resp, &n), NameStatus::kNotProtocol) << "a response";
  Bytes longname;
  for (int i = 0; i < 5; i++) {
    longname.push_back(63);
    longname.insert(longname.end(), 63, 'a');
  }
  longname.push_back(0);
  EXPECT_EQ(dns(q(longname), &n), NameStatus::kTooLong);
  Bytes cut = q({3, 'w', 'w', 'w', 0});
  cut.resize(cut.size() - 2);
  EXPECT_EQ(dns(cut, &n), NameStatus::kTruncated) << "no QTYPE/QCLASS";
  EXPECT_EQ(dns(Bytes(hdr.begin(), hdr.begin() + 11), &n), NameStatus::kTruncated);
}

TEST(HostnameParse, ValidHostname) {
  EXPECT_TRUE(dp::valid_hostname("a"));
  EXPECT_TRUE(dp::valid_hostname("_dmarc.example-1.com"));
  EXPECT_FALSE(dp::valid_hostname(""));
  EXPECT_FALSE(dp::valid_hostname(".a"));
  EXPECT_FALSE(dp::valid_hostname("a."));
  EXPECT_FALSE(dp::valid_hostname("a..b"));
  EXPECT_FALSE(dp::valid_hostname(std::string(64, 'a')));
  EXPECT_TRUE(dp::valid_hostname(std::string(63, 'a')));
  EXPECT_FALSE(dp::valid_hostname("*.a"));
}

}  // namespace
}  // namespace vanish::test
