// Owning pointers for OpenSSL objects (dev CA, TLS peering): Ptr<X509>, Ptr<EVP_PKEY>, ...
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

namespace vanish::ctl::ossl {

struct Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
};
template <class T>
using Ptr = std::unique_ptr<T, Free>;

// Sets *err (if given) and returns false: `return fail(err, "why");`.
inline bool fail(std::string* err, std::string why) {
  if (err) *err = std::move(why);
  return false;
}

}  // namespace vanish::ctl::ossl
