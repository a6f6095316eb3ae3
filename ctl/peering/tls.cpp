#include "ctl/peering/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <vector>

#include "ctl/dev_ca.hpp"
#include "ctl/ossl_ptr.hpp"
#include "ctl/spiffe.hpp"

namespace vanish::ctl::peering {
namespace {

using ossl::fail;
using ossl::Ptr;

std::vector<Ptr<X509>> read_certs(const std::string& pem) {
  std::vector<Ptr<X509>> out;
  Ptr<BIO> b(BIO_new_mem_buf(pem.data(), int(pem.size())));
  if (!b) return out;
  for (;;) {
    X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
    if (!x) break;
    out.emplace_back(x);
  }
  ERR_clear_error();  // the loop ends on "no start line"
  return out;
}

}  // namespace

const char* refusal_name(Refusal r) {
  switch (r) {
    case Refusal::kNone:
      return "none";
    case Refusal::kUnknownCa:
      return "unknown_ca";
    case Refusal::kExpired:
      return "expired";
    case Refusal::kNotYetValid:
      return "not_yet_valid";
    case Refusal::kBadCertificate:
      return "bad_certificate";
    case Refusal::kNoCertificate:
      return "no_certificate";
    case Refusal::kMissingSan:
      return "missing_san";
    case Refusal::kBadSan:
      return "bad_san";
    case Refusal::kWrongTrustDomain:
      return "wrong_trust_domain";
    case Refusal::kWrongId:
      return "wrong_id";
    case Refusal::kNotTls13:
      return "not_tls13";
    case Refusal::kTimeout:
      return "handshake_timeout";
    case Refusal::kProtocolError:
      return "protocol_error";
    case Refusal::kPeerAlert:
      return "peer_alert";
    case Refusal::kClosed:
      return "closed";
    case Refusal::kConnectFailed:
      return "connect_failed";
    case Refusal::kBadHello:
      return "bad_hello";
    case Refusal::kCount:
      break;
  }
  return "unknown";
}

const char* refusal_description(Refusal r) {
  switch (r) {
    case Refusal::kNone:
      return "accepted";
    case Refusal::kUnknownCa:
      return "certificate not issued by the trust bundle";
    case Refusal::kExpired:
      return "certificate expired";
    case Refusal::kNotYetValid:
      return "certificate not yet valid";
    case Refusal::kBadCertificate:
      return "certificate chain invalid";
    case Refusal::kNoCertificate:
      return "peer presented no certificate";
    case Refusal::kMissingSan:
      return "certificate has no URI SAN";
    case Refusal::kBadSan:
      return "certificate URI SAN is not exactly one SPIFFE id";
    case Refusal::kWrongTrustDomain:
      return "SPIFFE id of another trust domain";
    case Refusal::kWrongId:
      return "SPIFFE id is not the expected peer node";
    case Refusal::kNotTls13:
      return "protocol version is not TLS 1.3";
    case Refusal::kTimeout:
      return "handshake did not complete in time";
    case Refusal::kProtocolError:
      return "not TLS or malformed handshake/frame";
    case Refusal::kPeerAlert:
      return "peer refused the handshake (fatal alert)";
    case Refusal::kClosed:
      return "peer closed during the handshake";
    case Refusal::kConnectFailed:
      return "TCP connect failed";
    case Refusal::kBadHello:
      return "peering Hello inconsistent with the peer identity";
    case Refusal::kCount:
      break;
  }
  return "unknown";
}

std::vector<std::string> uri_sans(X509* cert) {
  std::vector<std::string> out;
  Ptr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     size_t(ASN1_STRING_length(s)));
  }
  return out;
}

Refusal check_peer_identity(X509* leaf, const PeerPolicy& policy, PeerIdentity* out,
                            std::string* detail) {
  if (!leaf) return Refusal::kNoCertificate;
  std::vector<std::string> sans = uri_sans(leaf);
  if (sans.empty()) return Refusal::kMissingSan;
  if (sans.size() > 1) {
    if (detail) *detail = std::to_string(sans.size()) + " URI SANs";
    return Refusal::kBadSan;
  }
  SpiffeId id;
  std::string why;
  if (detail) *detail = sans[0];
  if (!parse_spiffe_id(sans[0], &id, &why)) {
    if (detail) *detail = sans[0] + ": " + why;
    return Refusal::kBadSan;
  }
  if (id.trust_domain != policy.trust_domain) return Refusal::kWrongTrustDomain;
  auto it = policy.allowed.find(sans[0]);
  if (it == policy.allowed.end()) return Refusal::kWrongId;
  if (out) {
    out->spiffe_id = sans[0];
    out->node = it->second;
  }
  return Refusal::kNone;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

std::unique_ptr<TlsContext> TlsContext::create(const TlsCredentials& creds, std::string* err) {
  std::unique_ptr<TlsContext> t(new TlsContext());
  t->ctx_ = SSL_CTX_new(TLS_method());
  SSL_CTX* ctx = t->ctx_;
  if (!ctx) return fail(err, "SSL_CTX_new failed"), nullptr;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384") != 1 ||
      SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1) {
    return fail(err, "configuring TLS 1.3 cipher suites/groups failed"), nullptr;
  }

  std::vector<Ptr<X509>> chain = read_certs(creds.cert_pem);
  if (chain.empty()) return fail(err, "the node certificate does not parse"), nullptr;
  if (SSL_CTX_use_certificate(ctx, chain[0].get()) != 1) {
    return fail(err, "the node certificate is not usable"), nullptr;
  }
  for (size_t i = 1; i < chain.size(); ++i) SSL_CTX_add1_chain_cert(ctx, chain[i].get());
  {
    Ptr<BIO> b(BIO_new_mem_buf(creds.key_pem.data(), int(creds.key_pem.size())));
    Ptr<EVP_PKEY> key(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return fail(err, "the private key does not parse or does not match the certificate"), nullptr;
    }
  }
  std::vector<Ptr<X509>> roots = read_certs(creds.bundle_pem);
  if (roots.empty()) return fail(err, "the trust bundle holds no certificate"), nullptr;
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const Ptr<X509>& r : roots) X509_STORE_add_cert(store, r.get());
  SSL_CTX_set_verify_depth(ctx, 4);

  std::vector<std::string> own = uri_sans(chain[0].get());
  SpiffeId id;
  if (own.size() != 1 || !parse_spiffe_id(own[0], &id, nullptr)) {
    return fail(err, "the node certificate does not carry exactly one SPIFFE URI SAN"), nullptr;
  }
  t->spiffe_id_ = own[0];
  t->trust_domain_ = id.trust_domain;
  const ASN1_TIME* na = X509_get0_notAfter(chain[0].get());
  struct tm tm {};
  if (na && ASN1_TIME_to_tm(na, &tm) == 1) t->not_after_ = int64_t(timegm(&tm));
  return t;
}

std::unique_ptr<TlsContext> TlsContext::from_files(const std::string& cert, const std::string& key,
                                                   const std::string& bundle, std::string* err) {
  TlsCredentials c;
  if (!read_file(cert, &c.cert_pem, err) || !read_file(key, &c.key_pem, err) ||
      !read_file(bundle, &c.bundle_pem, err)) {
    return nullptr;
  }
  std::unique_ptr<TlsContext> t = create(c, err);
  OPENSSL_cleanse(c.key_pem.data(), c.key_pem.size());
  return t;
}

}  // namespace vanish::ctl::peering
