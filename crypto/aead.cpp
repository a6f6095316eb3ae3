#include "crypto/aead.hpp"

#include <openssl/crypto.h>

#include <cstdlib>
#include <cstring>

namespace vanish::crypto {

namespace {

// Owns one thread's manager; the destructor runs at thread exit.
struct ThreadMgr {
  IMB_MGR* mgr = nullptr;
  ~ThreadMgr() {
    if (mgr != nullptr) free_mb_mgr(mgr);
  }
};

thread_local ThreadMgr t_mgr;

// NIST SP 800-38D: at most 2^39 - 256 bits of plaintext.
constexpr uint64_t kGcmMaxLen = (uint64_t{1} << 36) - 32;

// IPsec-MB (built with SAFE_PARAM) rejects null pointers even for zero lengths; point empty
// inputs and outputs at this instead.
alignas(16) uint8_t g_empty[16];

constexpr GcmFns make_fns(AeadAlg alg) {
  switch (alg) {
    case AeadAlg::kAes128Gcm:
      return {&IMB_MGR::gcm128_enc,         &IMB_MGR::gcm128_dec,
              &IMB_MGR::gcm128_init_var_iv, &IMB_MGR::gcm128_enc_update,
              &IMB_MGR::gcm128_dec_update,  &IMB_MGR::gcm128_enc_finalize,
              &IMB_MGR::gcm128_dec_finalize};
    case AeadAlg::kAes192Gcm:
      return {&IMB_MGR::gcm192_enc,         &IMB_MGR::gcm192_dec,
              &IMB_MGR::gcm192_init_var_iv, &IMB_MGR::gcm192_enc_update,
              &IMB_MGR::gcm192_dec_update,  &IMB_MGR::gcm192_enc_finalize,
              &IMB_MGR::gcm192_dec_finalize};
    case AeadAlg::kAes256Gcm:
      return {&IMB_MGR::gcm256_enc,         &IMB_MGR::gcm256_dec,
              &IMB_MGR::gcm256_init_var_iv, &IMB_MGR::gcm256_enc_update,
              &IMB_MGR::gcm256_dec_update,  &IMB_MGR::gcm256_enc_finalize,
              &IMB_MGR::gcm256_dec_finalize};
  }
  return {};
}

bool params_ok(IMB_MGR* mgr, const GcmKey& key, std::span<const uint8_t> iv,
               std::span<const uint8_t> aad, const void* in, const void* out, size_t len,
               const void* tag, size_t tag_len) {
  if (mgr == nullptr || !key.valid()) return false;
  if (iv.empty() || iv.data() == nullptr) return false;
  if (!aad.empty() && aad.data() == nullptr) return false;
  if (tag == nullptr || tag_len == 0 || tag_len > kGcmMaxTagLen) return false;
  if (len > kGcmMaxLen) return false;
  if (len != 0 && (in == nullptr || out == nullptr)) return false;
  return true;
}

GcmBackend detect_backend() {
  if (!vaes_gcm_supported()) return GcmBackend::kIpsecMb;
  const char* env = std::getenv("VANISH_GCM");
  if (env != nullptr && std::strcmp(env, "ipsecmb") == 0) return GcmBackend::kIpsecMb;
  if (env != nullptr && std::strcmp(env, "vaes") == 0) return GcmBackend::kVaes;
  if (env != nullptr && std::strcmp(env, "hybrid") == 0) return GcmBackend::kHybrid;
  const IMB_MGR* mgr = thread_imb_mgr();
  if (mgr != nullptr && mgr->used_arch == IMB_ARCH_AVX512) return GcmBackend::kHybrid;
  return GcmBackend::kVaes;
}

}  // namespace

GcmBackend gcm_default_backend() {
  static const GcmBackend backend = detect_backend();
  return backend;
}

const char* gcm_backend_name(GcmBackend backend) {
  if (backend == GcmBackend::kAuto) backend = gcm_default_backend();
  switch (backend) {
    case GcmBackend::kVaes:
      return "vaes-avx2";
    case GcmBackend::kHybrid:
      return "hybrid";
    default:
      return "ipsec-mb";
  }
}

const char* aead_alg_name(AeadAlg alg) {
  switch (alg) {
    case AeadAlg::kAes128Gcm:
      return "aes128gcm";
    case AeadAlg::kAes192Gcm:
      return "aes192gcm";
    case AeadAlg::kAes256Gcm:
      return "aes256gcm";
  }
  return "?";
}

IMB_MGR* thread_imb_mgr() {
  if (t_mgr.mgr != nullptr) [[likely]]
    return t_mgr.mgr;
  IMB_MGR* mgr = alloc_mb_mgr(0);
  if (mgr == nullptr) return nullptr;
  init_mb_mgr_auto(mgr, nullptr);
  if (imb_get_errno(mgr) != 0) {
    free_mb_mgr(mgr);
    return nullptr;
  }
  t_mgr.mgr = mgr;
  return mgr;
}

GcmKey::GcmKey(GcmKey&& other) noexcept
    : data_(other.data_),
      vaes_(other.vaes_),
      fns_(other.fns_),
      vaes_below_(other.vaes_below_),
      alg_(other.alg_),
      valid_(other.valid_) {
  other.reset();
}

GcmKey& GcmKey::operator=(GcmKey&& other) noexcept {
  if (this != &other) {
    reset();
    data_ = other.data_;
    vaes_ = other.vaes_;
    fns_ = other.fns_;
    vaes_below_ = other.vaes_below_;
    alg_ = other.alg_;
    valid_ = other.valid_;
    other.reset();
  }
  return *this;
}

bool GcmKey::set(AeadAlg alg, std::span<const uint8_t> key, GcmBackend backend) {
  reset();
  if (key.size() != aead_key_len(alg) || key.data() == nullptr) return false;
  if (backend == GcmBackend::kAuto) backend = gcm_default_backend();
  if ((backend == GcmBackend::kVaes || backend == GcmBackend::kHybrid) && !vaes_gcm_supported())
    return false;
  IMB_MGR* mgr = thread_imb_mgr();
  if (mgr == nullptr) return false;
  switch (alg) {
    case AeadAlg::kAes128Gcm:
      IMB_AES128_GCM_PRE(mgr, key.data(), &data_);
      break;
    case AeadAlg::kAes192Gcm:
      IMB_AES192_GCM_PRE(mgr, key.data(), &data_);
      break;
    case AeadAlg::kAes256Gcm:
      IMB_AES256_GCM_PRE(mgr, key.data(), &data_);
      break;
  }
  if (backend == GcmBackend::kVaes || backend == GcmBackend::kHybrid) {
    vaes_gcm_set_key(&vaes_, key.data(), key.size());
    vaes_below_ = backend == GcmBackend::kVaes ? kVaesAlways : kGcmHybridSplit;
  }
  fns_ = make_fns(alg);
  alg_ = alg;
  valid_ = true;
  return true;
}

void GcmKey::reset() {
  OPENSSL_cleanse(&data_, sizeof(data_));
  OPENSSL_cleanse(&vaes_, sizeof(vaes_));
  fns_ = {};
  vaes_below_ = 0;
  valid_ = false;
}

bool gcm_seal(IMB_MGR* mgr, const GcmKey& key, std::span<const uint8_t> iv,
              std::span<const uint8_t> aad, const uint8_t* in, uint8_t* out, size_t len,
              uint8_t* tag, size_t tag_len) {
  if (!params_ok(mgr, key, iv, aad, in, out, len, tag, tag_len)) return false;
  if (len == 0) {
    in = g_empty;
    out = g_empty;
  }
  const uint8_t* aad_ptr = aad.empty() ? g_empty : aad.data();
  if (iv.size() == kGcmStdIvLen && key.uses_vaes(len)) {
    alignas(16) uint8_t full[kGcmMaxTagLen];
    vaes_gcm_enc(key.vaes(), iv.data(), aad_ptr, aad.size(), in, out, len, full);
    std::memcpy(tag, full, tag_len);
    return true;
  }
  const GcmFns& f = key.fns();
  gcm_context_data ctx;
  if (iv.size() == kGcmStdIvLen) {
    (mgr->*f.enc)(key.data(), &ctx, out, in, len, iv.data(), aad_ptr, aad.size(), tag, tag_len);
  } else {
    (mgr->*f.init_var_iv)(key.data(), &ctx, iv.data(), iv.size(), aad_ptr, aad.size());
    if (len != 0) (mgr->*f.enc_update)(key.data(), &ctx, out, in, len);
    (mgr->*f.enc_finalize)(key.data(), &ctx, tag, tag_len);
  }
  return true;
}

bool gcm_open(IMB_MGR* mgr, const GcmKey& key, std::span<const uint8_t> iv,
              std::span<const uint8_t> aad, const uint8_t* in, uint8_t* out, size_t len,
              const uint8_t* tag, size_t tag_len) {
  if (!params_ok(mgr, key, iv, aad, in, out, len, tag, tag_len)) return false;
  if (len == 0) {
    in = g_empty;
    out = g_empty;
  }
  const uint8_t* aad_ptr = aad.empty() ? g_empty : aad.data();
  const GcmFns& f = key.fns();
  gcm_context_data ctx;
  alignas(16) uint8_t computed[kGcmMaxTagLen];
  if (iv.size() == kGcmStdIvLen && key.uses_vaes(len)) {
    vaes_gcm_dec(key.vaes(), iv.data(), aad_ptr, aad.size(), in, out, len, computed);
  } else if (iv.size() == kGcmStdIvLen) {
    (mgr->*f.dec)(key.data(), &ctx, out, in, len, iv.data(), aad_ptr, aad.size(), computed,
                  tag_len);
  } else {
    (mgr->*f.init_var_iv)(key.data(), &ctx, iv.data(), iv.size(), aad_ptr, aad.size());
    if (len != 0) (mgr->*f.dec_update)(key.data(), &ctx, out, in, len);
    (mgr->*f.dec_finalize)(key.data(), &ctx, computed, tag_len);
  }
  if (CRYPTO_memcmp(computed, tag, tag_len) != 0) {
    if (len != 0) OPENSSL_cleanse(out, len);
    return false;
  }
  return true;
}

}  // namespace vanish::crypto
