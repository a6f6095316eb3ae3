// AES-GCM (NIST SP 800-38D) with VAES + VPCLMULQDQ on 256-bit registers (AVX2, no AVX-512):
// the ESP fast path on CPUs such as AMD Zen 3, where IPsec-MB only has 128-bit code.
//
// Contracts:
//  - Only gcm_vaes.cpp is compiled with -mavx2 -mvaes -mvpclmulqdq -maes -mpclmul. Call
//    vaes_gcm_set_key / vaes_gcm_enc / vaes_gcm_dec only if vaes_gcm_supported() is true.
//  - enc/dec are single shot for a 12-byte IV (J0 = IV || 0x00000001), any AAD length, any text
//    length (0 allowed, then in/out may be null), in == out allowed (partial overlap is not).
//    They always write the full 16-byte tag; callers truncate or compare it (dec does not
//    verify: the caller compares in constant time and wipes the plaintext on mismatch).
//  - No allocation, locks or exceptions; no secret-dependent branches or table lookups.
//  - enc/dec leave no keystream, E(K, J0) or GHASH state behind: before returning they clear the
//    stack their work used and ymm0-15 (about 4-6 ns a call at 64-256 bytes on Zen 5).
//  - VaesGcmKey holds key material: whoever owns one wipes it (GcmKey uses OPENSSL_cleanse).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vanish::crypto {

// An expanded key: AES round keys and the GHASH key powers. Plain data, trivially copyable.
struct alignas(64) VaesGcmKey {
  // Round keys 0..rounds, each stored twice (both 128-bit lanes of a ymm register).
  uint8_t rk[15][32];
  // H^16, H^15, .., H^1 (descending), each multiplied by x^-1 and stored byte-reflected: the
  // operand form the carry-less multiply uses directly (see gcm_vaes.cpp).
  uint8_t hpow[16][16];
  // For Karatsuba: (low qword ^ high qword) of each hpow entry, in both qwords.
  uint8_t hfold[16][16];
  uint32_t rounds;  // 10, 12 or 14; 0 while unset
};

// True if the CPU (and OS) support AVX2, VAES, VPCLMULQDQ, AES-NI and PCLMUL. Cached.
bool vaes_gcm_supported();

// Expands a 16-, 24- or 32-byte AES key. Returns false (key untouched) for other lengths.
bool vaes_gcm_set_key(VaesGcmKey* key, const uint8_t* raw, size_t raw_len);

// Encrypts len bytes in -> out and writes the 16-byte tag over (aad, out).
void vaes_gcm_enc(const VaesGcmKey& key, const uint8_t* iv12, const uint8_t* aad, size_t aad_len,
                  const uint8_t* in, uint8_t* out, size_t len, uint8_t* tag16);

// Decrypts len bytes in -> out and writes the 16-byte tag computed over (aad, in).
void vaes_gcm_dec(const VaesGcmKey& key, const uint8_t* iv12, const uint8_t* aad, size_t aad_len,
                  const uint8_t* in, uint8_t* out, size_t len, uint8_t* tag16);

}  // namespace vanish::crypto
