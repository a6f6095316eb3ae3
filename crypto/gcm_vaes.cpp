// AES-GCM with VAES + VPCLMULQDQ on ymm registers (two blocks per register). Contracts: see
// gcm_vaes.hpp. This file alone is built with -mavx2 -mvaes -mvpclmulqdq -maes -mpclmul.
//
// GHASH representation. GCM maps bit 7 of byte 0 of a block to the coefficient of x^0. A block
// loaded with its 16 bytes reversed ("byte-reflected") is a 128-bit integer whose bit 127 is the
// coefficient of x^0, bit 0 that of x^127. The 255-bit carry-less product of two such integers
// a, b, read as a reflected 256-bit value, is x * a * b (it lands one bit short of the top), so
// the key powers are stored premultiplied by x^-1: clmul(X, H^k * x^-1) is then exactly X * H^k
// in reflected 256-bit form, reduced modulo x^128 + x^7 + x^2 + x + 1 by two folds of 64 bits
// with the constant 0xC2 << 56 (x + x^2 + x^7, reflected; see reduce()).
//
// Aggregated reduction: n <= 16 consecutive blocks X1..Xn update the hash Y as
//   Y' = (Y ^ X1) * H^n ^ X2 * H^(n-1) ^ ... ^ Xn * H
// with the 256-bit products summed unreduced and one reduction per n blocks.
//
// CTR: counter blocks are kept byte-reflected, so inc32 is a 32-bit add on dword 0 (wrapping
// mod 2^32 as inc32 does) and a byte shuffle turns them back into AES inputs. Data block i uses
// counter 2 + i; E(K, J0) (counter 1) masks the tag.
//
// Main loop: 16 blocks (8 ymm) per iteration; the GHASH of 16 blocks (decrypt: the ciphertext
// being decrypted; encrypt: the previous iteration's output) is interleaved with the AES rounds.
#include "crypto/gcm_vaes.hpp"

#include <cpuid.h>
#include <immintrin.h>
#include <openssl/crypto.h>

#include <cstring>

namespace vanish::crypto {

namespace {

constexpr size_t kGroupBytes = 256;  // 16 blocks, one main-loop iteration

inline __m128i bswap_mask128() {
  return _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
inline __m256i bswap_mask256() {
  return _mm256_broadcastsi128_si256(bswap_mask128());
}

// The reduction constant: x + x^2 + x^7 reflected into the high qword (only that one is used).
inline __m128i gf_poly() {
  return _mm_set_epi64x(static_cast<long long>(0xC200000000000000ull), 0);
}

inline __m128i load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
inline void store128(void* p, __m128i v) {
  _mm_storeu_si128(static_cast<__m128i*>(p), v);
}
inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline void store256(void* p, __m256i v) {
  _mm256_storeu_si256(static_cast<__m256i*>(p), v);
}

// Zero-padded load of 0 < n < 16 bytes, in registers: the result is never built from a
// stack copy, whose reload would stall on store forwarding.
inline __m128i load_partial(const uint8_t* p, size_t n) {
  const size_t off = n & 8;
  uint64_t t = 0;
  unsigned sh = 0;
  if ((n & 4) != 0) {
    uint32_t v;
    std::memcpy(&v, p + off, 4);
    t = v;
    sh = 32;
  }
  if ((n & 2) != 0) {
    uint16_t v;
    std::memcpy(&v, p + off + (n & 4), 2);
    t |= uint64_t{v} << sh;
    sh += 16;
  }
  if ((n & 1) != 0) t |= uint64_t{p[off + (n & 6)]} << sh;
  uint64_t lo = t, hi = 0;
  if (off != 0) {
    std::memcpy(&lo, p, 8);
    hi = t;
  }
  return _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
}

// Stores the first 0 < n < 16 bytes of v.
inline void store_partial(uint8_t* p, __m128i v, size_t n) {
  uint64_t t = static_cast<uint64_t>(_mm_cvtsi128_si64(v));
  if ((n & 8) != 0) {
    std::memcpy(p, &t, 8);
    p += 8;
    t = static_cast<uint64_t>(_mm_extract_epi64(v, 1));
  }
  if ((n & 4) != 0) {
    const uint32_t w = static_cast<uint32_t>(t);
    std::memcpy(p, &w, 4);
    p += 4;
    t >>= 32;
  }
  if ((n & 2) != 0) {
    const uint16_t w = static_cast<uint16_t>(t);
    std::memcpy(p, &w, 2);
    p += 2;
    t >>= 16;
  }
  if ((n & 1) != 0) *p = static_cast<uint8_t>(t);
}

// 0xff in bytes 0..n-1, zero above.
inline __m128i byte_mask(size_t n) {
  return _mm_cmpgt_epi8(_mm_set1_epi8(static_cast<char>(n)),
                        _mm_set_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
}

// ---- GHASH -----------------------------------------------------------------------------------

// lo/mi/hi += the schoolbook partial products of x * h (bits [127:0], [191:64], [255:128]).
inline void mul_acc(__m128i x, __m128i h, __m128i& lo, __m128i& mi, __m128i& hi) {
  lo = _mm_xor_si128(lo, _mm_clmulepi64_si128(x, h, 0x00));
  hi = _mm_xor_si128(hi, _mm_clmulepi64_si128(x, h, 0x11));
  mi = _mm_xor_si128(
      mi, _mm_xor_si128(_mm_clmulepi64_si128(x, h, 0x01), _mm_clmulepi64_si128(x, h, 0x10)));
}

// Karatsuba: lo += x.lo * h.lo, hi += x.hi * h.hi, mid += (x.lo ^ x.hi) * (h.lo ^ h.hi) per
// 128-bit lane; hf holds h.lo ^ h.hi. The schoolbook middle term is mid ^ lo ^ hi, summed once.
inline void mul_acc_k(__m256i x, __m256i h, __m256i hf, __m256i& lo, __m256i& mid, __m256i& hi) {
  lo = _mm256_xor_si256(lo, _mm256_clmulepi64_epi128(x, h, 0x00));
  hi = _mm256_xor_si256(hi, _mm256_clmulepi64_epi128(x, h, 0x11));
  const __m256i xf = _mm256_xor_si256(x, _mm256_shuffle_epi32(x, 0x4e));
  mid = _mm256_xor_si256(mid, _mm256_clmulepi64_epi128(xf, hf, 0x00));
}

// Pins the accumulation order: without it GCC reassociates the XOR chains of the interleaved
// GHASH into trees that keep every product live and spill them.
inline void keep_order(__m256i& a, __m256i& b, __m256i& c) {
  asm("" : "+x"(a), "+x"(b), "+x"(c));
}

inline __m128i fold_lanes(__m256i v) {
  return _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// Reduces the reflected 256-bit value (hi << 128) ^ (mi << 64) ^ lo modulo the GCM polynomial.
// In the reflected form the low qword of lo holds the highest-degree terms x^192..x^255. Each
// fold removes 64 such terms: x^(128+m) = x^m * (1 + x + x^2 + x^7) becomes the same qword
// moved up by 128 bits (the "1": a qword swap) plus its carry-less product with 0xC2 << 56
// (x + x^2 + x^7) placed 64 bits up.
inline __m128i reduce(__m128i lo, __m128i mi, __m128i hi) {
  const __m128i poly = gf_poly();
  __m128i t = _mm_clmulepi64_si128(lo, poly, 0x10);
  mi = _mm_xor_si128(mi, _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t));
  t = _mm_clmulepi64_si128(mi, poly, 0x10);
  return _mm_xor_si128(hi, _mm_xor_si128(_mm_shuffle_epi32(mi, 0x4e), t));
}

// a * b for reflected operands where b is premultiplied by x^-1 (see the top of the file).
inline __m128i gf_mul(__m128i a, __m128i b) {
  __m128i lo = _mm_setzero_si128(), mi = lo, hi = lo;
  mul_acc(a, b, lo, mi, hi);
  return reduce(lo, mi, hi);
}

// Absorbs, with one reduction, npre (0 or 1) reflected blocks from pre, then nmem blocks from
// p, then nextra reflected blocks from extra into y. 1 <= npre + nmem + nextra <= 16.
inline __m128i ghash_chunk(const VaesGcmKey& k, __m128i y, const __m128i* pre, size_t npre,
                           const uint8_t* p, size_t nmem, const __m128i* extra, size_t nextra) {
  const size_t n = npre + nmem + nextra;
  const uint8_t* hp = k.hpow[16 - n];  // block i is multiplied by H^(n - i)
  const uint8_t* hf = k.hfold[16 - n];
  __m128i yx = y;  // xored into the first block, then zero
  __m128i lo = _mm_setzero_si128(), mi = lo, hi = lo;
  if (npre != 0) {
    mul_acc(_mm_xor_si128(*pre, yx), load128(hp), lo, mi, hi);
    yx = _mm_setzero_si128();
    hp += 16;
    hf += 16;
  }
  size_t i = 0;
  if (nmem >= 2) {
    const __m256i bs = bswap_mask256();
    __m256i lo2 = _mm256_setzero_si256(), mi2 = lo2, hi2 = lo2;
    __m256i x = _mm256_xor_si256(_mm256_shuffle_epi8(load256(p), bs), _mm256_zextsi128_si256(yx));
    yx = _mm_setzero_si128();
    mul_acc_k(x, load256(hp), load256(hf), lo2, mi2, hi2);
    for (i = 2; i + 2 <= nmem; i += 2) {
      x = _mm256_shuffle_epi8(load256(p + 16 * i), bs);
      mul_acc_k(x, load256(hp + 16 * i), load256(hf + 16 * i), lo2, mi2, hi2);
    }
    lo = _mm_xor_si128(lo, fold_lanes(lo2));
    mi = _mm_xor_si128(mi, fold_lanes(_mm256_xor_si256(mi2, _mm256_xor_si256(lo2, hi2))));
    hi = _mm_xor_si128(hi, fold_lanes(hi2));
  }
  const __m128i bs = bswap_mask128();
  if (i < nmem) {  // odd count: one more block from memory
    __m128i x = _mm_xor_si128(_mm_shuffle_epi8(load128(p + 16 * i), bs), yx);
    yx = _mm_setzero_si128();
    mul_acc(x, load128(hp + 16 * i), lo, mi, hi);
    ++i;
  }
  for (size_t e = 0; e < nextra; ++e, ++i) {
    mul_acc(_mm_xor_si128(extra[e], yx), load128(hp + 16 * i), lo, mi, hi);
    yx = _mm_setzero_si128();
  }
  return reduce(lo, mi, hi);
}

// Absorbs *pre if not null (one reflected block), then nbytes from p with the last partial
// block zero-padded (taken from *partial, reflected, if not null, else loaded from p), then
// *len_block if not null.
inline __m128i ghash_final(const VaesGcmKey& k, __m128i y, const __m128i* pre, const uint8_t* p,
                           size_t nbytes, const __m128i* partial, const __m128i* len_block) {
  size_t npre = pre != nullptr ? 1 : 0;
  size_t nfull = nbytes / 16;
  const size_t rem = nbytes % 16;
  __m128i extra[2];
  size_t nextra = 0;
  if (rem != 0) {
    extra[nextra++] = partial != nullptr
                          ? *partial
                          : _mm_shuffle_epi8(load_partial(p + 16 * nfull, rem), bswap_mask128());
  }
  if (len_block != nullptr) extra[nextra++] = *len_block;
  while (npre + nfull + nextra > 16) {
    const size_t take = nfull < 16 - npre ? nfull : 16 - npre;
    y = ghash_chunk(k, y, pre, npre, p, take, nullptr, 0);
    npre = 0;
    p += 16 * take;
    nfull -= take;
  }
  if (npre + nfull + nextra != 0) y = ghash_chunk(k, y, pre, npre, p, nfull, extra, nextra);
  return y;
}

// ---- AES -------------------------------------------------------------------------------------

template <int NR>
inline __m128i aes_block(const VaesGcmKey& k, __m128i b) {
  b = _mm_xor_si128(b, load128(k.rk[0]));
#pragma GCC unroll 16
  for (int r = 1; r < NR; ++r) b = _mm_aesenc_si128(b, load128(k.rk[r]));
  return _mm_aesenclast_si128(b, load128(k.rk[NR]));
}

inline __m128i aes_block_rt(const VaesGcmKey& k, __m128i b) {
  b = _mm_xor_si128(b, load128(k.rk[0]));
  for (uint32_t r = 1; r < k.rounds; ++r) b = _mm_aesenc_si128(b, load128(k.rk[r]));
  return _mm_aesenclast_si128(b, load128(k.rk[k.rounds]));
}

// S-box applied to each byte of w: AESENCLAST with a zero key is SubBytes(ShiftRows(state)),
// and ShiftRows is the identity on a state whose four columns are equal.
inline uint32_t sub_word(uint32_t w) {
  const __m128i s = _mm_set1_epi32(static_cast<int>(w));
  return static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_aesenclast_si128(s, _mm_setzero_si128())));
}

inline __m128i make_j0(const uint8_t* iv) {
  uint64_t a;
  uint32_t b;
  std::memcpy(&a, iv, 8);
  std::memcpy(&b, iv + 8, 4);
  return _mm_set_epi32(0x01000000, static_cast<int>(b), static_cast<int>(a >> 32),
                       static_cast<int>(a));
}

// 16 blocks of CTR at in/out; with kGhash, also absorbs the 16 blocks at gsrc into y.
template <int NR, bool kGhash>
inline void ctr_group(const VaesGcmKey& k, __m256i& ctr, const uint8_t* in, uint8_t* out,
                      const uint8_t* gsrc, __m128i& y) {
  const __m256i bs = bswap_mask256();
  const __m256i two = _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 2);
  const __m256i rk0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(k.rk[0]));
  __m256i b[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    b[j] = _mm256_xor_si256(_mm256_shuffle_epi8(ctr, bs), rk0);
    ctr = _mm256_add_epi32(ctr, two);
  }
  __m256i lo = _mm256_setzero_si256(), mi = lo, hi = lo;
  const __m256i yx = _mm256_zextsi128_si256(y);
#pragma GCC unroll 16
  for (int r = 1; r < NR; ++r) {
    const __m256i rk = _mm256_load_si256(reinterpret_cast<const __m256i*>(k.rk[r]));
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) b[j] = _mm256_aesenc_epi128(b[j], rk);
    if constexpr (kGhash) {
      if (r <= 8) {
        const int j = r - 1;
        __m256i x = _mm256_shuffle_epi8(load256(gsrc + 32 * j), bs);
        if (j == 0) x = _mm256_xor_si256(x, yx);
        mul_acc_k(x, _mm256_load_si256(reinterpret_cast<const __m256i*>(k.hpow[2 * j])),
                  _mm256_load_si256(reinterpret_cast<const __m256i*>(k.hfold[2 * j])), lo, mi, hi);
        keep_order(lo, mi, hi);
      }
    }
  }
  if constexpr (kGhash) {
    y = reduce(fold_lanes(lo), fold_lanes(_mm256_xor_si256(mi, _mm256_xor_si256(lo, hi))),
               fold_lanes(hi));
  }
  const __m256i rkl = _mm256_load_si256(reinterpret_cast<const __m256i*>(k.rk[NR]));
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) {
    // AESENCLAST(s, rk ^ m) = keystream ^ m.
    store256(out + 32 * j,
             _mm256_aesenclast_epi128(b[j], _mm256_xor_si256(rkl, load256(in + 32 * j))));
  }
}

// CTR on 0 < r < 16 bytes with keystream ks. Returns the zero-padded ciphertext block,
// reflected, for GHASH (encrypt: the output; decrypt: the input).
template <bool kEnc>
inline __m128i ctr_partial(const uint8_t* in, uint8_t* out, __m128i ks, size_t r) {
  const __m128i d = load_partial(in, r);
  const __m128i o = _mm_xor_si128(d, ks);
  store_partial(out, o, r);
  const __m128i c = kEnc ? _mm_and_si128(o, byte_mask(r)) : d;
  return _mm_shuffle_epi8(c, bswap_mask128());
}

// CTR over the last 32 * (NY - 1) < nbytes <= 32 * NY bytes (at most 16 blocks). Returns
// ctr_partial()'s block if nbytes is not a multiple of 16 (else an unspecified value).
template <int NR, int NY, bool kEnc>
inline __m128i ctr_tail(const VaesGcmKey& k, __m256i ctr, const uint8_t* in, uint8_t* out,
                        size_t nbytes) {
  const __m256i bs = bswap_mask256();
  const __m256i two = _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 2);
  const __m256i rk0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(k.rk[0]));
  __m256i b[NY];
#pragma GCC unroll 8
  for (int j = 0; j < NY; ++j) {
    b[j] = _mm256_xor_si256(_mm256_shuffle_epi8(ctr, bs), rk0);
    ctr = _mm256_add_epi32(ctr, two);
  }
#pragma GCC unroll 16
  for (int r = 1; r < NR; ++r) {
    const __m256i rk = _mm256_load_si256(reinterpret_cast<const __m256i*>(k.rk[r]));
#pragma GCC unroll 8
    for (int j = 0; j < NY; ++j) b[j] = _mm256_aesenc_epi128(b[j], rk);
  }
  const __m256i rkl = _mm256_load_si256(reinterpret_cast<const __m256i*>(k.rk[NR]));
#pragma GCC unroll 8
  for (int j = 0; j < NY - 1; ++j) {
    store256(out + 32 * j,
             _mm256_aesenclast_epi128(b[j], _mm256_xor_si256(rkl, load256(in + 32 * j))));
  }
  in += 32 * (NY - 1);
  out += 32 * (NY - 1);
  const size_t last = nbytes - 32 * (NY - 1);  // 1..32
  if (last == 32) {
    store256(out, _mm256_aesenclast_epi128(b[NY - 1], _mm256_xor_si256(rkl, load256(in))));
    return _mm_setzero_si128();
  }
  const __m256i ks = _mm256_aesenclast_epi128(b[NY - 1], rkl);
  __m128i ks_part = _mm256_castsi256_si128(ks);
  size_t r = last;
  if (last >= 16) {
    store128(out, _mm_xor_si128(load128(in), ks_part));
    in += 16;
    out += 16;
    r -= 16;
    ks_part = _mm256_extracti128_si256(ks, 1);
  }
  if (r == 0) return _mm_setzero_si128();
  return ctr_partial<kEnc>(in, out, ks_part, r);
}

template <int NR, bool kEnc>
inline __m128i ctr_tail_any(const VaesGcmKey& k, __m256i ctr, const uint8_t* in, uint8_t* out,
                            size_t nbytes) {
  switch ((nbytes + 31) / 32) {
    case 1:
      return ctr_tail<NR, 1, kEnc>(k, ctr, in, out, nbytes);
    case 2:
      return ctr_tail<NR, 2, kEnc>(k, ctr, in, out, nbytes);
    case 3:
      return ctr_tail<NR, 3, kEnc>(k, ctr, in, out, nbytes);
    case 4:
      return ctr_tail<NR, 4, kEnc>(k, ctr, in, out, nbytes);
    case 5:
      return ctr_tail<NR, 5, kEnc>(k, ctr, in, out, nbytes);
    case 6:
      return ctr_tail<NR, 6, kEnc>(k, ctr, in, out, nbytes);
    case 7:
      return ctr_tail<NR, 7, kEnc>(k, ctr, in, out, nbytes);
    default:
      return ctr_tail<NR, 8, kEnc>(k, ctr, in, out, nbytes);
  }
}

struct Start {
  __m256i ctr;   // reflected counters 2 and 3 (lanes 0, 1)
  __m128i ej0;   // E(K, J0)
  __m128i y;     // GHASH state after the AAD, unless the AAD is left in `pre`
  __m128i pre;   // the AAD as one reflected block, when has_pre
  __m128i lens;  // reflected length block
  bool has_pre;
};

// Short texts with at most one block of AAD (ESP: 8 or 12 bytes) hash the AAD with the text,
// under the same reduction; otherwise it is hashed here.
template <int NR>
inline Start start(const VaesGcmKey& k, const uint8_t* iv, const uint8_t* aad, size_t aad_len,
                   size_t len) {
  Start s;
  const __m128i j0 = make_j0(iv);
  s.ej0 = aes_block<NR>(k, j0);
  s.ctr = _mm256_add_epi32(_mm256_broadcastsi128_si256(_mm_shuffle_epi8(j0, bswap_mask128())),
                           _mm256_set_epi32(0, 0, 0, 2, 0, 0, 0, 1));
  s.y = _mm_setzero_si128();
  s.has_pre = aad_len != 0 && aad_len <= 16 && len < kGroupBytes;
  if (s.has_pre) {
    s.pre = _mm_shuffle_epi8(aad_len == 16 ? load128(aad) : load_partial(aad, aad_len),
                             bswap_mask128());
  } else {
    s.pre = _mm_setzero_si128();
    s.y = ghash_final(k, s.y, nullptr, aad, aad_len, nullptr, nullptr);
  }
  // Reflected [len(A)]_64 || [len(C)]_64 in bits: the high qword is len(A).
  s.lens = _mm_set_epi64x(static_cast<long long>(uint64_t{aad_len} * 8),
                          static_cast<long long>(uint64_t{len} * 8));
  return s;
}

inline void finish(const Start& s, __m128i y, uint8_t* tag) {
  store128(tag, _mm_xor_si128(_mm_shuffle_epi8(y, bswap_mask128()), s.ej0));
}

template <int NR>
[[gnu::noinline]] void enc_impl(const VaesGcmKey& k, const uint8_t* iv, const uint8_t* aad,
                                size_t aad_len, const uint8_t* in, uint8_t* out, size_t len,
                                uint8_t* tag) {
  Start s = start<NR>(k, iv, aad, aad_len, len);
  __m128i y = s.y;
  size_t pos = 0, ghash_from = 0;
  if (len >= kGroupBytes) {
    // The first group has no previous output to hash; every later one hashes its predecessor.
    ctr_group<NR, false>(k, s.ctr, in, out, nullptr, y);
    pos = kGroupBytes;
    while (len - pos >= kGroupBytes) {
      ctr_group<NR, true>(k, s.ctr, in + pos, out + pos, out + pos - kGroupBytes, y);
      pos += kGroupBytes;
    }
    ghash_from = pos - kGroupBytes;
  }
  __m128i last = _mm_setzero_si128();
  if (pos < len) last = ctr_tail_any<NR, true>(k, s.ctr, in + pos, out + pos, len - pos);
  y = ghash_final(k, y, s.has_pre ? &s.pre : nullptr, out + ghash_from, len - ghash_from, &last,
                  &s.lens);
  finish(s, y, tag);
}

template <int NR>
[[gnu::noinline]] void dec_impl(const VaesGcmKey& k, const uint8_t* iv, const uint8_t* aad,
                                size_t aad_len, const uint8_t* in, uint8_t* out, size_t len,
                                uint8_t* tag) {
  Start s = start<NR>(k, iv, aad, aad_len, len);
  __m128i y = s.y;
  size_t pos = 0;
  while (len - pos >= kGroupBytes) {
    ctr_group<NR, true>(k, s.ctr, in + pos, out + pos, in + pos, y);
    pos += kGroupBytes;
  }
  // Hash the rest of the ciphertext before decrypting it (in may equal out).
  y = ghash_final(k, y, s.has_pre ? &s.pre : nullptr, in + pos, len - pos, nullptr, &s.lens);
  if (pos < len) ctr_tail_any<NR, false>(k, s.ctr, in + pos, out + pos, len - pos);
  finish(s, y, tag);
}

// CPUID (SDM vol. 2, CPUID): leaf 1 ECX: PCLMULQDQ bit 1, AES bit 25, OSXSAVE bit 27, AVX bit 28;
// XCR0 bits 1-2: the OS saves XMM and YMM state; leaf 7.0 EBX: AVX2 bit 5; ECX: VAES bit 9,
// VPCLMULQDQ bit 10. (Not __builtin_cpu_supports: clang 14 knows neither "vaes" nor
// "vpclmulqdq".)
bool detect() {
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  constexpr unsigned kLeaf1 = (1u << 1) | (1u << 25) | (1u << 27) | (1u << 28);
  if ((c & kLeaf1) != kLeaf1) return false;
  unsigned xcr0_lo, xcr0_hi;
  asm volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 6u) != 6u) return false;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  return (b & (1u << 5)) != 0 && (c & (1u << 9)) != 0 && (c & (1u << 10)) != 0;
}

}  // namespace

bool vaes_gcm_supported() {
  static const bool supported = detect();
  return supported;
}

bool vaes_gcm_set_key(VaesGcmKey* key, const uint8_t* raw, size_t raw_len) {
  if (raw_len != 16 && raw_len != 24 && raw_len != 32) return false;
  // FIPS 197 key expansion on 32-bit words (little-endian loads: byte 0 is the low byte).
  const size_t nk = raw_len / 4;
  const size_t nr = nk + 6;
  uint32_t w[60];
  std::memcpy(w, raw, raw_len);
  uint32_t rcon = 1;
  for (size_t i = nk; i < 4 * (nr + 1); ++i) {
    uint32_t t = w[i - 1];
    if (i % nk == 0) {
      t = sub_word((t >> 8) | (t << 24)) ^ rcon;  // SubWord(RotWord(t)) ^ Rcon
      rcon = ((rcon << 1) ^ ((rcon & 0x80) != 0 ? 0x1b : 0)) & 0xff;
    } else if (nk > 6 && i % nk == 4) {
      t = sub_word(t);
    }
    w[i] = w[i - nk] ^ t;
  }
  for (size_t r = 0; r <= nr; ++r) {
    std::memcpy(key->rk[r], &w[4 * r], 16);
    std::memcpy(key->rk[r] + 16, &w[4 * r], 16);
  }
  for (size_t r = nr + 1; r < 15; ++r) std::memset(key->rk[r], 0, 32);
  key->rounds = static_cast<uint32_t>(nr);
  OPENSSL_cleanse(w, sizeof(w));

  // H = E(K, 0^128), reflected, times x^-1: a left shift by one of the reflected value, with
  // the bit shifted out (the x^0 coefficient) folded back as x^-1 = x^127 + x^6 + x + 1.
  const __m128i h = _mm_shuffle_epi8(aes_block_rt(*key, _mm_setzero_si128()), bswap_mask128());
  uint64_t lo = static_cast<uint64_t>(_mm_cvtsi128_si64(h));
  uint64_t hi = static_cast<uint64_t>(_mm_extract_epi64(h, 1));
  const uint64_t mask = 0 - (hi >> 63);
  hi = (hi << 1) | (lo >> 63);
  lo <<= 1;
  hi ^= 0xC200000000000000ull & mask;
  lo ^= 1 & mask;
  const __m128i h1 = _mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo));
  __m128i p = h1;
  store128(key->hpow[15], p);
  for (int i = 14; i >= 0; --i) {
    p = gf_mul(p, h1);
    store128(key->hpow[i], p);
  }
  for (int i = 0; i < 16; ++i) {
    const __m128i h = load128(key->hpow[i]);
    const __m128i f = _mm_xor_si128(h, _mm_shuffle_epi32(h, 0x4e));
    store128(key->hfold[i], f);
  }
  return true;
}

namespace {

// What enc_impl/dec_impl leave behind: the compiler spills keystream blocks, counters and
// E(K, J0) (with a tag, E(K, J0) gives away GHASH_H of that message: enough of them recover H,
// and with H anyone forges tags) to their frame, and the last ones stay in ymm0-15. Both are
// cleared before returning to the caller, as IPsec-MB's SAFE_DATA build does for its own code.
// The impls are kept out of line and scrub_stack() is called from the frame that called them, so
// its buffer lies over theirs: with the helpers they call, under 400 bytes deep (-fstack-usage:
// enc_impl 288, ghash_final 64, ctr_group 8, plus return addresses); kScrubBytes covers that.
// CryptoGcmVaes.SpilledSecretsAreScrubbed checks it. With the calls it takes, 4-6 ns a call.
constexpr size_t kScrubBytes = 512;

[[gnu::noinline]] void scrub_stack() {
  volatile __m256i area[kScrubBytes / 32];  // volatile: the stores are not dead to the optimizer
  const __m256i z = _mm256_setzero_si256();
  for (auto& v : area) v = z;
}

inline void scrub() {
  scrub_stack();
  _mm256_zeroall();
}

}  // namespace

void vaes_gcm_enc(const VaesGcmKey& key, const uint8_t* iv12, const uint8_t* aad, size_t aad_len,
                  const uint8_t* in, uint8_t* out, size_t len, uint8_t* tag16) {
  switch (key.rounds) {
    case 10:
      enc_impl<10>(key, iv12, aad, aad_len, in, out, len, tag16);
      break;
    case 12:
      enc_impl<12>(key, iv12, aad, aad_len, in, out, len, tag16);
      break;
    case 14:
      enc_impl<14>(key, iv12, aad, aad_len, in, out, len, tag16);
      break;
  }
  scrub();
}

void vaes_gcm_dec(const VaesGcmKey& key, const uint8_t* iv12, const uint8_t* aad, size_t aad_len,
                  const uint8_t* in, uint8_t* out, size_t len, uint8_t* tag16) {
  switch (key.rounds) {
    case 10:
      dec_impl<10>(key, iv12, aad, aad_len, in, out, len, tag16);
      break;
    case 12:
      dec_impl<12>(key, iv12, aad, aad_len, in, out, len, tag16);
      break;
    case 14:
      dec_impl<14>(key, iv12, aad, aad_len, in, out, len, tag16);
      break;
  }
  scrub();
}

}  // namespace vanish::crypto
