#include "ctl/dev_ca.hpp"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "ctl/ossl_ptr.hpp"
#include "ctl/spiffe.hpp"

namespace vanish::ctl {
namespace {

using ossl::fail;
using ossl::Ptr;

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, size_t(n));
}

Ptr<X509> cert_from_pem(const std::string& pem) {
  Ptr<BIO> b(BIO_new_mem_buf(pem.data(), int(pem.size())));
  if (!b) return nullptr;
  return Ptr<X509>(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
}

Ptr<EVP_PKEY> key_from_pem(const std::string& pem) {
  Ptr<BIO> b(BIO_new_mem_buf(pem.data(), int(pem.size())));
  if (!b) return nullptr;
  return Ptr<EVP_PKEY>(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
}

bool add_ext(X509* issuer, X509* subject, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, subject, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  return ext && X509_add_ext(subject, ext.get(), -1) == 1;
}

// Version 3, random serial, validity, subject, public key.
bool fill_common(X509* x, EVP_PKEY* key, const std::string& cn, std::optional<int64_t> nb,
                 std::optional<int64_t> na, int days) {
  if (X509_set_version(x, X509_VERSION_3) != 1) return false;
  Ptr<BIGNUM> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1) return false;
  if (!BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x))) return false;
  time_t now = time(nullptr);
  time_t not_before = nb ? time_t(*nb) : now - 300;
  time_t not_after = na ? time_t(*na) : now + time_t(days) * 86400;
  if (!ASN1_TIME_set(X509_getm_notBefore(x), not_before)) return false;
  if (!ASN1_TIME_set(X509_getm_notAfter(x), not_after)) return false;
  X509_NAME* name = X509_get_subject_name(x);
  auto add = [&](const char* field, const std::string& v) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1,
                                      0) == 1;
  };
  if (!add("O", "vanish")) return false;
  if (!cn.empty() && cn.size() <= 64 && !add("CN", cn)) return false;
  return X509_set_pubkey(x, key) == 1;
}

std::string to_pem(X509* x) {
  Ptr<BIO> b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), x) != 1) return {};
  return bio_string(b.get());
}

std::string to_pem(EVP_PKEY* k) {
  Ptr<BIO> b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return {};
  }
  std::string pem = bio_string(b.get());
  return pem;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// mkdir -p.
bool make_dirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    std::string part = path.substr(0, i);
    if (!is_dir(part) && mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  return true;
}

}  // namespace

bool make_ca(const CaOptions& o, PemPair* ca, std::string* err) {
  SpiffeId id;
  std::string why;
  if (!parse_spiffe_id("spiffe://" + o.trust_domain, &id, &why)) {
    return fail(err, "trust domain \"" + o.trust_domain + "\": " + why);
  }
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  Ptr<X509> x(X509_new());
  if (!key || !x) return fail(err, "out of memory or no EC P-256 support");
  if (!fill_common(x.get(), key.get(), "vanish dev CA " + o.trust_domain, o.not_before, o.not_after,
                   o.days) ||
      X509_set_issuer_name(x.get(), X509_get_subject_name(x.get())) != 1 ||
      !add_ext(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(x.get(), x.get(), NID_subject_key_identifier, "hash") ||
      !add_ext(x.get(), x.get(), NID_authority_key_identifier, "keyid:always") ||
      !add_ext(x.get(), x.get(), NID_subject_alt_name, "URI:spiffe://" + o.trust_domain) ||
      X509_sign(x.get(), key.get(), EVP_sha256()) <= 0) {
    return fail(err, "building the CA certificate failed");
  }
  ca->cert = to_pem(x.get());
  ca->key = to_pem(key.get());
  if (ca->cert.empty() || ca->key.empty()) return fail(err, "PEM encoding failed");
  return true;
}

std::string ca_trust_domain(const std::string& ca_cert_pem) {
  Ptr<X509> x = cert_from_pem(ca_cert_pem);
  if (!x) return {};
  Ptr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return {};
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = gn->d.uniformResourceIdentifier;
    std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                    size_t(ASN1_STRING_length(s)));
    SpiffeId id;
    if (parse_spiffe_id(uri, &id, nullptr) && id.path.empty()) return id.trust_domain;
  }
  return {};
}

bool issue_cert(const PemPair& ca, const IssueOptions& o, PemPair* leaf, std::string* err) {
  Ptr<X509> ca_cert = cert_from_pem(ca.cert);
  Ptr<EVP_PKEY> ca_key = key_from_pem(ca.key);
  if (!ca_cert || !ca_key) return fail(err, "the CA certificate or key does not parse");
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    return fail(err, "the CA key does not match the CA certificate");
  }
  std::vector<std::string> sans = o.uri_sans;
  if (sans.empty() && !o.no_san) sans.push_back(o.spiffe_id);
  if (!o.allow_any_san) {
    if (sans.size() != 1) return fail(err, "a node certificate has exactly one URI SAN");
    SpiffeId id;
    std::string why;
    if (!parse_spiffe_id(sans[0], &id, &why)) {
      return fail(err, "\"" + sans[0] + "\" is not a SPIFFE id: " + why);
    }
    if (id.path.empty()) return fail(err, "\"" + sans[0] + "\" names no workload (empty path)");
    std::string td = ca_trust_domain(ca.cert);
    if (!td.empty() && td != id.trust_domain) {
      return fail(err, "\"" + sans[0] + "\" is not in the CA's trust domain \"" + td + "\"");
    }
  }
  for (const std::string& s : sans) {
    if (s.find(',') != std::string::npos) return fail(err, "a URI SAN may not contain ','");
  }
  Ptr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  Ptr<X509> x(X509_new());
  if (!key || !x) return fail(err, "out of memory or no EC P-256 support");
  std::string san;
  for (const std::string& s : sans) san += (san.empty() ? "URI:" : ",URI:") + s;
  bool ok = fill_common(x.get(), key.get(), o.spiffe_id, o.not_before, o.not_after, o.days) &&
            X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert.get())) == 1 &&
            add_ext(ca_cert.get(), x.get(), NID_basic_constraints, "critical,CA:FALSE") &&
            add_ext(ca_cert.get(), x.get(), NID_key_usage, "critical,digitalSignature") &&
            add_ext(ca_cert.get(), x.get(), NID_ext_key_usage, "serverAuth,clientAuth") &&
            add_ext(ca_cert.get(), x.get(), NID_subject_key_identifier, "hash") &&
            add_ext(ca_cert.get(), x.get(), NID_authority_key_identifier, "keyid:always") &&
            (san.empty() || add_ext(ca_cert.get(), x.get(), NID_subject_alt_name, san)) &&
            X509_sign(x.get(), ca_key.get(), EVP_sha256()) > 0;
  if (!ok) return fail(err, "building the node certificate failed");
  leaf->cert = to_pem(x.get());
  leaf->key = to_pem(key.get());
  if (leaf->cert.empty() || leaf->key.empty()) return fail(err, "PEM encoding failed");
  return true;
}

bool read_file(const std::string& path, std::string* out, std::string* err) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, path + ": " + strerror(errno));
  out->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return fail(err, path + ": " + strerror(e));
    }
    if (n == 0) break;
    out->append(buf, size_t(n));
  }
  close(fd);
  return true;
}

bool write_file(const std::string& path, const std::string& data, bool secret, std::string* err) {
  // Write to a temporary name then rename, so a reader never sees half a file; a secret is
  // 0600 from its creation.
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0) return fail(err, tmp + ": " + strerror(errno));
  if (secret) fchmod(fd, 0600);  // O_CREAT does not change the mode of an existing file
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return fail(err, tmp + ": " + strerror(e));
    }
    off += size_t(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(tmp.c_str());
    return fail(err, tmp + ": " + strerror(errno));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return fail(err, path + ": " + strerror(errno));
  }
  return true;
}

bool write_ca_dir(const std::string& dir, const CaOptions& o, std::string* err) {
  if (!make_dirs(dir)) {
    return fail(err, dir + ": " + strerror(errno));
  }
  std::string key_path = dir + "/ca-key.pem";
  std::string bundle_path = dir + "/bundle.pem";
  if (access(key_path.c_str(), F_OK) == 0) {
    return fail(err, key_path + " exists: refusing to replace a CA (remove the directory first)");
  }
  PemPair ca;
  if (!make_ca(o, &ca, err)) return false;
  bool ok = write_file(key_path, ca.key, true, err) && write_file(bundle_path, ca.cert, false, err);
  OPENSSL_cleanse(ca.key.data(), ca.key.size());
  return ok;
}

bool write_node_files(const std::string& ca_dir, const IssueOptions& o, const std::string& prefix,
                      std::vector<std::string>* written, std::string* err) {
  PemPair ca;
  if (!read_file(ca_dir + "/bundle.pem", &ca.cert, err) ||
      !read_file(ca_dir + "/ca-key.pem", &ca.key, err)) {
    return false;
  }
  PemPair leaf;
  bool ok = issue_cert(ca, o, &leaf, err);
  OPENSSL_cleanse(ca.key.data(), ca.key.size());
  if (!ok) return false;
  std::string base;
  if (!prefix.empty() && prefix.back() == '/') {
    if (!make_dirs(prefix.substr(0, prefix.size() - 1))) {
      return fail(err, prefix + ": " + strerror(errno));
    }
    base = prefix;
  } else {
    base = is_dir(prefix) ? prefix + "/" : prefix + "-";
  }
  std::string cert_path = base + "cert.pem", key_path = base + "key.pem",
              bundle_path = base + "bundle.pem";
  ok = write_file(key_path, leaf.key, true, err) && write_file(cert_path, leaf.cert, false, err) &&
       write_file(bundle_path, ca.cert, false, err);
  OPENSSL_cleanse(leaf.key.data(), leaf.key.size());
  if (ok && written) *written = {cert_path, key_path, bundle_path};
  return ok;
}

std::optional<int64_t> parse_cert_time(const std::string& s) {
  if (s.empty()) return std::nullopt;
  std::string digits = s[0] == '@' ? s.substr(1) : s;
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos) {
    return int64_t(std::stoll(digits));
  }
  struct tm tm {};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end) {
    tm = {};
    end = strptime(s.c_str(), "%Y-%m-%d", &tm);
    if (!end || *end) return std::nullopt;
  }
  return int64_t(timegm(&tm));
}

}  // namespace vanish::ctl
