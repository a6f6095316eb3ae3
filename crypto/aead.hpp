// AES-GCM (NIST SP 800-38D): Intel IPsec-MB's direct API, plus our VAES/AVX2 implementation
// (crypto/gcm_vaes.hpp) for 12-byte IVs on CPUs that have VAES and VPCLMULQDQ. The backend is
// chosen per key by GcmKey::set(), by default (gcm_default_backend()):
//  - no VAES: IPsec-MB;
//  - VAES, and IPsec-MB runs its AVX-512 code: "hybrid", vaes-avx2 for texts shorter than
//    kGcmHybridSplit bytes, IPsec-MB from there on. Measured on a Zen 5 (AVX-512, VAES): our
//    code costs about half of IPsec-MB's fixed per-call overhead at 64 B, IPsec-MB's 512-bit
//    loop is 1.3x faster at 1420 B, and the two cross near 512 B (perf/README-bench.md);
//  - VAES without AVX-512 (IPsec-MB then runs 128-bit code only): vaes-avx2.
// The environment variable VANISH_GCM=ipsecmb|vaes|hybrid (read once per process) overrides it.
// Every backend produces identical bytes.
//
// Contracts shared by everything in this header:
//  - No function here allocates, locks or throws on the per-packet path (gcm_seal, gcm_open).
//  - An IMB_MGR is single-threaded state: use the one returned by thread_imb_mgr() on the
//    calling thread (or one that the caller owns exclusively).
//  - Expanded keys (GcmKey) depend on the instruction-set flavour IPsec-MB picked. Every manager
//    made by init_mb_mgr_auto on one machine picks the same one, so a GcmKey prepared on one thread
//    may be used with any other thread's manager.
#pragma once

#include <intel-ipsec-mb.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/gcm_vaes.hpp"

namespace vanish::crypto {

enum class AeadAlg : uint8_t { kAes128Gcm, kAes192Gcm, kAes256Gcm };

// Key length in bytes for `alg` (16, 24 or 32).
constexpr size_t aead_key_len(AeadAlg alg) {
  switch (alg) {
    case AeadAlg::kAes128Gcm:
      return 16;
    case AeadAlg::kAes192Gcm:
      return 24;
    case AeadAlg::kAes256Gcm:
      return 32;
  }
  return 0;
}

// "aes128gcm", "aes192gcm", "aes256gcm".
const char* aead_alg_name(AeadAlg alg);

constexpr size_t kGcmStdIvLen = 12;  // the fast-path IV length (RFC 4106 nonce)
constexpr size_t kGcmMaxTagLen = 16;

// The calling thread's IPsec-MB manager, allocated on first use with alloc_mb_mgr(0) and
// init_mb_mgr_auto(), freed when the thread exits. Returns nullptr only if allocation or
// initialisation failed (then every later call on this thread retries). Cheap after the first
// call (a thread-local load); still, data-plane workers should fetch it once and keep it.
IMB_MGR* thread_imb_mgr();

// IPsec-MB's direct GCM entry points for one key size, as pointers to the members of IMB_MGR
// that hold them. Selected once by GcmKey::set(); the per-packet code calls (mgr->*enc)(...)
// with no switch on the algorithm.
struct GcmFns {
  aes_gcm_enc_dec_t IMB_MGR::*enc = nullptr;  // single shot, 12-byte IV
  aes_gcm_enc_dec_t IMB_MGR::*dec = nullptr;
  aes_gcm_init_var_iv_t IMB_MGR::*init_var_iv = nullptr;  // any IV length >= 1
  aes_gcm_enc_dec_update_t IMB_MGR::*enc_update = nullptr;
  aes_gcm_enc_dec_update_t IMB_MGR::*dec_update = nullptr;
  aes_gcm_enc_dec_finalize_t IMB_MGR::*enc_finalize = nullptr;
  aes_gcm_enc_dec_finalize_t IMB_MGR::*dec_finalize = nullptr;
};

// Which implementation a GcmKey uses for 12-byte IVs. Other IV lengths always use IPsec-MB.
enum class GcmBackend : uint8_t {
  kAuto,     // gcm_default_backend()
  kIpsecMb,  // IPsec-MB only
  kVaes,     // crypto/gcm_vaes (set() fails if the CPU lacks it)
  kHybrid,   // crypto/gcm_vaes below kGcmHybridSplit bytes, IPsec-MB from there (needs VAES)
};
// kHybrid: texts of at least this many bytes go to IPsec-MB.
inline constexpr size_t kGcmHybridSplit = 512;

// The backend kAuto picks on this machine and process (CPUID, then VANISH_GCM, both cached).
GcmBackend gcm_default_backend();
// "vaes-avx2", "ipsec-mb" or "hybrid" (kAuto: the default's name).
const char* gcm_backend_name(GcmBackend backend);

// An expanded AES-GCM key (round keys + GHASH key powers, for IPsec-MB and, with the VAES
// backend, for crypto/gcm_vaes too). Empty until set() succeeds.
// The key material is wiped with OPENSSL_cleanse on destruction, on reset(), before set()
// overwrites it, and in a moved-from object. Not copyable; movable.
class GcmKey {
 public:
  GcmKey() = default;
  ~GcmKey() { reset(); }
  GcmKey(const GcmKey&) = delete;
  GcmKey& operator=(const GcmKey&) = delete;
  GcmKey(GcmKey&& other) noexcept;
  GcmKey& operator=(GcmKey&& other) noexcept;

  // Expands `key` for `alg` using the calling thread's manager (and for the VAES backend when
  // `backend` resolves to it). Returns false (and leaves the object empty) if
  // key.size() != aead_key_len(alg), no manager could be had, or kVaes is asked for on a CPU
  // without it.
  bool set(AeadAlg alg, std::span<const uint8_t> key, GcmBackend backend = GcmBackend::kAuto);
  // Wipes the key; valid() becomes false.
  void reset();

  bool valid() const { return valid_; }
  AeadAlg alg() const { return alg_; }
  const gcm_key_data* data() const { return &data_; }
  const GcmFns& fns() const { return fns_; }
  // True if a 12-byte-IV operation on `len` bytes of text goes through crypto/gcm_vaes with
  // vaes(); else IPsec-MB with data().
  bool uses_vaes(size_t len) const { return len < vaes_below_; }
  const VaesGcmKey& vaes() const { return vaes_; }
  // kIpsecMb, kVaes or kHybrid: what 12-byte-IV operations use.
  GcmBackend kind() const {
    return vaes_below_ == 0             ? GcmBackend::kIpsecMb
           : vaes_below_ == kVaesAlways ? GcmBackend::kVaes
                                        : GcmBackend::kHybrid;
  }
  const char* backend() const { return gcm_backend_name(kind()); }

 private:
  gcm_key_data data_{};  // 64-byte aligned by its declaration in intel-ipsec-mb.h
  static constexpr size_t kVaesAlways = ~size_t{0};
  VaesGcmKey vaes_{};  // filled only when vaes_below_ > 0
  GcmFns fns_{};
  size_t vaes_below_ = 0;  // texts shorter than this use vaes_: 0 never, kVaesAlways always
  AeadAlg alg_ = AeadAlg::kAes128Gcm;
  bool valid_ = false;
};

// Single-shot AES-GCM encryption of `len` bytes from `in` to `out` (in == out allowed; partial
// overlap is not) with authentication of `aad`, writing a `tag_len`-byte tag (the leftmost
// bytes of the full tag) to `tag`.
//  - iv: 1 byte or more; 12 bytes takes the single-shot fast path, other lengths the GHASH-derived
//    counter (IMB *_INIT_VAR_IV + update + finalize).
//  - aad: any length (empty allowed). tag_len: 1..16. len may be 0 (then in/out may be null).
// Returns false, doing nothing, for an invalid key, IV length 0, tag_len outside 1..16, a null
// pointer where bytes are needed, or len above the GCM limit (2^36 - 32 bytes).
bool gcm_seal(IMB_MGR* mgr, const GcmKey& key, std::span<const uint8_t> iv,
              std::span<const uint8_t> aad, const uint8_t* in, uint8_t* out, size_t len,
              uint8_t* tag, size_t tag_len);

// Single-shot AES-GCM decryption, the inverse of gcm_seal with the same parameter rules.
// The tag is compared in constant time (CRYPTO_memcmp) over tag_len bytes. Returns false for
// unsupported parameters (out untouched) or when the tag does not match; in the latter case
// `out` has been wiped (zeroed) and must not be used.
bool gcm_open(IMB_MGR* mgr, const GcmKey& key, std::span<const uint8_t> iv,
              std::span<const uint8_t> aad, const uint8_t* in, uint8_t* out, size_t len,
              const uint8_t* tag, size_t tag_len);

}  // namespace vanish::crypto
