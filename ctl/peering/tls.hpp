// TLS 1.3 mutual-TLS credentials and peer identity checks for appliance peering.
//
// Contract
// - TlsContext::create() builds one OpenSSL SSL_CTX used for both roles: TLS 1.3 only, no
//   session resumption (every handshake is a fresh key exchange), the node certificate + key
//   (with any intermediates that follow it in the cert PEM), and the trust bundle as the only
//   roots. Peers must present a certificate (SSL_VERIFY_FAIL_IF_NO_PEER_CERT).
// - check_peer_identity() accepts a leaf only if it has exactly one URI SAN, that SAN is a valid
//   SPIFFE id in `policy.trust_domain`, and it is a key of `policy.allowed` (the configured
//   nodes' spiffe_id; a client expects exactly one). It returns the refusal reason otherwise.
// - Refusal reasons are one list with stable names (counters, logs). Nothing here logs a key.
#pragma once

#include <openssl/ssl.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vanish::ctl::peering {

enum class Refusal : uint8_t {
  kNone,
  kUnknownCa,         // the chain does not lead to a certificate of the trust bundle
  kExpired,           // a certificate of the chain is past notAfter
  kNotYetValid,       // a certificate of the chain is before notBefore
  kBadCertificate,    // other chain errors (signature, usage, extensions)
  kNoCertificate,     // the peer presented no certificate
  kMissingSan,        // the leaf has no URI SAN
  kBadSan,            // more than one URI SAN, or it is not a SPIFFE id
  kWrongTrustDomain,  // a SPIFFE id of another trust domain
  kWrongId,           // a SPIFFE id of the trust domain, but not the expected / a configured node
  kNotTls13,          // the peer offered or selected a protocol version other than TLS 1.3
  kTimeout,           // no handshake (and Hello) within the deadline
  kProtocolError,     // not TLS, a malformed record or handshake, or an invalid peering frame
  kPeerAlert,         // the peer refused us (it sent a fatal alert)
  kClosed,            // the peer closed the connection before the handshake finished
  kConnectFailed,     // TCP connect failed
  kBadHello,          // the peering Hello is inconsistent with the authenticated identity
  kCount
};
inline constexpr size_t kRefusalCount = size_t(Refusal::kCount);

// Stable lower-case name, e.g. "wrong_trust_domain".
const char* refusal_name(Refusal r);
const char* refusal_description(Refusal r);

using RefusalCounters = std::array<uint64_t, kRefusalCount>;

struct PeerPolicy {
  std::string trust_domain;
  std::map<std::string, std::string> allowed;  // SPIFFE id -> node name
};

struct PeerIdentity {
  std::string spiffe_id;
  std::string node;
};

Refusal check_peer_identity(X509* leaf, const PeerPolicy& policy, PeerIdentity* out,
                            std::string* detail);

// The URI SANs of a certificate, in order.
std::vector<std::string> uri_sans(X509* cert);

struct TlsCredentials {
  std::string cert_pem;    // node certificate, then intermediates
  std::string key_pem;     // its private key
  std::string bundle_pem;  // trust bundle: one or more CA certificates
};

class TlsContext {
 public:
  static std::unique_ptr<TlsContext> create(const TlsCredentials& creds, std::string* err);
  // Reads the three PEM files (cert, key, bundle).
  static std::unique_ptr<TlsContext> from_files(const std::string& cert, const std::string& key,
                                                const std::string& bundle, std::string* err);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* get() const { return ctx_; }
  const std::string& spiffe_id() const { return spiffe_id_; }  // of our own certificate
  const std::string& trust_domain() const { return trust_domain_; }
  int64_t not_after() const { return not_after_; }  // our certificate's, Unix seconds

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string spiffe_id_;
  std::string trust_domain_;
  int64_t not_after_ = 0;
};

}  // namespace vanish::ctl::peering
