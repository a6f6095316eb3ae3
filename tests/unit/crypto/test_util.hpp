// Helpers shared by the crypto unit tests: hex, test-data paths, an independent AES-GCM
// (OpenSSL EVP) to cross-check IPsec-MB.
#pragma once

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace vanish::crypto::testing {

using Bytes = std::vector<uint8_t>;

inline Bytes from_hex(const std::string& hex) {
  Bytes out;
  out.reserve(hex.size() / 2);
  auto nibble = [](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
    std::abort();
  };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

// One Wycheproof AES-GCM test row (testvectors_v1 aes_gcm_test.json), bytes decoded.
struct WycheproofGcmRow {
  Bytes key, iv, aad, msg, ct, tag;
  std::string result;  // "valid", "invalid" or "acceptable"
};
inline WycheproofGcmRow wycheproof_gcm_row(const nlohmann::json& t) {
  auto hex = [&](const char* field) { return from_hex(t.at(field).get<std::string>()); };
  return {hex("key"),
          hex("iv"),
          hex("aad"),
          hex("msg"),
          hex("ct"),
          hex("tag"),
          t.at("result").get<std::string>()};
}

inline std::string to_hex(std::span<const uint8_t> b) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (uint8_t v : b) {
    s.push_back(kDigits[v >> 4]);
    s.push_back(kDigits[v & 15]);
  }
  return s;
}

// $VANISH_TESTDATA, else <source root>/../shared/testdata (set by meson).
inline std::string testdata_dir() {
  if (const char* env = std::getenv("VANISH_TESTDATA"); env != nullptr && *env != '\0') {
    return env;
  }
  return VANISH_TESTDATA_DEFAULT;
}

// Deterministic bytes for tests.
inline Bytes pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& v : b) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v = static_cast<uint8_t>(x);
  }
  return b;
}

inline const EVP_CIPHER* ossl_gcm_cipher(size_t key_len) {
  switch (key_len) {
    case 16:
      return EVP_aes_128_gcm();
    case 24:
      return EVP_aes_192_gcm();
    case 32:
      return EVP_aes_256_gcm();
  }
  return nullptr;
}

// OpenSSL AES-GCM seal: returns ct || tag (tag_len bytes), or empty on failure.
inline Bytes ossl_gcm_seal(std::span<const uint8_t> key, std::span<const uint8_t> iv,
                           std::span<const uint8_t> aad, std::span<const uint8_t> pt,
                           size_t tag_len = 16) {
  Bytes out(pt.size() + 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok =
      EVP_EncryptInit_ex(ctx, ossl_gcm_cipher(key.size()), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data(), iv.data()) == 1 &&
      (aad.empty() ||
       EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
      (pt.empty() ||
       EVP_EncryptUpdate(ctx, out.data(), &len, pt.data(), static_cast<int>(pt.size())) == 1) &&
      EVP_EncryptFinal_ex(ctx, out.data() + pt.size(), &len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_len),
                          out.data() + pt.size()) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return {};
  out.resize(pt.size() + tag_len);
  return out;
}

// OpenSSL AES-GCM open of ct || tag (tag_len bytes); false if the tag does not verify.
inline bool ossl_gcm_open(std::span<const uint8_t> key, std::span<const uint8_t> iv,
                          std::span<const uint8_t> aad, std::span<const uint8_t> ct_tag,
                          size_t tag_len, Bytes* pt) {
  if (ct_tag.size() < tag_len) return false;
  const size_t ct_len = ct_tag.size() - tag_len;
  pt->assign(ct_len + 16, 0);
  Bytes tag(ct_tag.begin() + static_cast<std::ptrdiff_t>(ct_len), ct_tag.end());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok =
      EVP_DecryptInit_ex(ctx, ossl_gcm_cipher(key.size()), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx, nullptr, nullptr, key.data(), iv.data()) == 1 &&
      (aad.empty() ||
       EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
      (ct_len == 0 ||
       EVP_DecryptUpdate(ctx, pt->data(), &len, ct_tag.data(), static_cast<int>(ct_len)) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_len), tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx, pt->data() + ct_len, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  pt->resize(ct_len);
  return ok;
}

}  // namespace vanish::crypto::testing
