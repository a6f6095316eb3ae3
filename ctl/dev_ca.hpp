// A development certificate authority for mTLS peering (`vanishctl ca init|issue`, and the
// tests): EC P-256 keys, X.509 v3 certificates whose URI SAN is a SPIFFE id, through OpenSSL 3's
// EVP APIs.
//
// Contract
// - make_ca() creates a self-signed CA: basicConstraints CA:TRUE (critical), keyUsage
//   keyCertSign|cRLSign (critical), subject/authority key ids, and the URI SAN
//   spiffe://<trust domain> (the SPIFFE convention for a trust domain's signing key).
// - issue_cert() creates a node (leaf) certificate signed by the CA: basicConstraints CA:FALSE,
//   keyUsage digitalSignature (critical), extendedKeyUsage serverAuth+clientAuth, one URI SAN
//   per entry of `uri_sans` (normally exactly the SPIFFE id). It refuses an id that is not a
//   valid SPIFFE id of the CA's trust domain unless `allow_any_san` is set (tests build bad
//   certificates with it).
// - Validity: [not_before, not_after] when given (Unix seconds), else [now - 5 min, now + days].
// - Serial numbers are 127 random bits. Nothing is logged; errors come back as a message.
// - write_ca_dir()/write_node_files() write PEM files; every private key file is created with
//   mode 0600 (never world-readable, even briefly).
// - Control-plane / CLI code only; allocates; no DPDK.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vanish::ctl {

struct PemPair {
  std::string cert;  // PEM certificate
  std::string key;   // PEM PKCS#8 private key
};

struct CaOptions {
  std::string trust_domain = "cluster.local";
  int days = 3650;
  std::optional<int64_t> not_before;  // Unix seconds; overrides the default validity
  std::optional<int64_t> not_after;
};

struct IssueOptions {
  std::string spiffe_id;              // the node's SPIFFE id; also the default uri_sans
  std::vector<std::string> uri_sans;  // empty: {spiffe_id}; tests may put 0 or 2+ entries
  bool no_san = false;                // tests: no subjectAltName at all
  bool allow_any_san = false;         // tests: skip the SPIFFE / trust-domain check
  int days = 365;
  std::optional<int64_t> not_before;
  std::optional<int64_t> not_after;
};

bool make_ca(const CaOptions& o, PemPair* ca, std::string* err);
bool issue_cert(const PemPair& ca, const IssueOptions& o, PemPair* leaf, std::string* err);

// The trust domain named by the CA certificate's spiffe://<td> URI SAN ("" if none).
std::string ca_trust_domain(const std::string& ca_cert_pem);

// `vanishctl ca init`: writes DIR/bundle.pem (the trust bundle: the CA certificate) and
// DIR/ca-key.pem (0600); creates DIR if needed; refuses to overwrite an existing CA.
bool write_ca_dir(const std::string& dir, const CaOptions& o, std::string* err);
// `vanishctl ca issue`: reads the CA from DIR, issues, writes <out>cert.pem, <out>key.pem (0600)
// and <out>bundle.pem, where <out> is "PREFIX-" or, when PREFIX is a directory (existing or
// ending in '/'), "PREFIX/". *written lists the files.
bool write_node_files(const std::string& ca_dir, const IssueOptions& o, const std::string& prefix,
                      std::vector<std::string>* written, std::string* err);

// Parses "2024-01-31T12:00:00Z", "2024-01-31" or Unix seconds ("@1700000000" or digits).
std::optional<int64_t> parse_cert_time(const std::string& s);

// PEM/file helpers shared with peering and tests.
bool read_file(const std::string& path, std::string* out, std::string* err);
bool write_file(const std::string& path, const std::string& data, bool secret, std::string* err);

}  // namespace vanish::ctl
