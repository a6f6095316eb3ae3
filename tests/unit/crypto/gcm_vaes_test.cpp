// The VAES/AVX2 AES-GCM backend (crypto/gcm_vaes.hpp) through GcmKey / gcm_seal / gcm_open and
// EspSa: Wycheproof vectors, differential against OpenSSL over every length up to 1100 bytes and
// larger ones, AAD lengths, key sizes, in place and out of place at unaligned offsets, tampering,
// and byte equality with the IPsec-MB backend. Skipped on CPUs without VAES/VPCLMULQDQ/AVX2.
#include "crypto/gcm_vaes.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <random>

#include "crypto/aead.hpp"
#include "crypto/esp.hpp"
#include "tests/unit/crypto/test_util.hpp"

namespace vanish::crypto {
namespace {

using testing::Bytes;
using testing::from_hex;
using testing::pattern;

#define SKIP_WITHOUT_VAES() \
  if (!vaes_gcm_supported()) GTEST_SKIP() << "CPU lacks AVX2/VAES/VPCLMULQDQ"

constexpr AeadAlg kAlgs[] = {AeadAlg::kAes128Gcm, AeadAlg::kAes192Gcm, AeadAlg::kAes256Gcm};

AeadAlg alg_for(size_t key_len) {
  return key_len == 16   ? AeadAlg::kAes128Gcm
         : key_len == 24 ? AeadAlg::kAes192Gcm
                         : AeadAlg::kAes256Gcm;
}

bool all_zero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

TEST(CryptoGcmVaes, BackendSelection) {
  SKIP_WITHOUT_VAES();
  const Bytes key = pattern(16, 1);
  GcmKey v, m, a;
  ASSERT_TRUE(v.set(AeadAlg::kAes128Gcm, key, GcmBackend::kVaes));
  ASSERT_TRUE(m.set(AeadAlg::kAes128Gcm, key, GcmBackend::kIpsecMb));
  ASSERT_TRUE(a.set(AeadAlg::kAes128Gcm, key));
  EXPECT_TRUE(v.uses_vaes(0) && v.uses_vaes(1420) && v.uses_vaes(65535));
  EXPECT_STREQ(v.backend(), "vaes-avx2");
  EXPECT_FALSE(m.uses_vaes(0) || m.uses_vaes(64));
  EXPECT_STREQ(m.backend(), "ipsec-mb");
  EXPECT_STREQ(a.backend(), gcm_backend_name(GcmBackend::kAuto));
  EXPECT_EQ(a.kind(), gcm_default_backend());
  // The default: hybrid exactly where IPsec-MB runs its AVX-512 code (unless VANISH_GCM says).
  if (std::getenv("VANISH_GCM") == nullptr) {
    EXPECT_EQ(gcm_default_backend() == GcmBackend::kHybrid,
              thread_imb_mgr()->used_arch == IMB_ARCH_AVX512);
  }
  GcmKey h;
  ASSERT_TRUE(h.set(AeadAlg::kAes128Gcm, key, GcmBackend::kHybrid));
  EXPECT_STREQ(h.backend(), "hybrid");
  EXPECT_TRUE(h.uses_vaes(0));
  EXPECT_TRUE(h.uses_vaes(kGcmHybridSplit - 1));
  EXPECT_FALSE(h.uses_vaes(kGcmHybridSplit));
  EXPECT_FALSE(h.uses_vaes(1420));
  EXPECT_EQ(VaesGcmKey{}.rounds, 0u);
  VaesGcmKey raw{};
  EXPECT_FALSE(vaes_gcm_set_key(&raw, key.data(), 15));
  EXPECT_FALSE(vaes_gcm_set_key(&raw, key.data(), 0));
  EXPECT_EQ(raw.rounds, 0u);
}

TEST(CryptoGcmVaes, MoveAndResetCoverKeyMaterial) {
  SKIP_WITHOUT_VAES();
  const Bytes key = pattern(32, 2);
  GcmKey a;
  ASSERT_TRUE(a.set(AeadAlg::kAes256Gcm, key, GcmBackend::kVaes));
  EXPECT_EQ(a.vaes().rounds, 14u);
  const VaesGcmKey copy = a.vaes();
  GcmKey b(std::move(a));
  EXPECT_TRUE(b.uses_vaes(64));
  EXPECT_EQ(std::memcmp(&b.vaes(), &copy, sizeof(copy)), 0);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_FALSE(a.uses_vaes(64));
  EXPECT_TRUE(all_zero(reinterpret_cast<const uint8_t*>(&a.vaes()), sizeof(VaesGcmKey)));
  GcmKey c;
  c = std::move(b);
  EXPECT_TRUE(c.uses_vaes(64));
  EXPECT_TRUE(all_zero(reinterpret_cast<const uint8_t*>(&b.vaes()), sizeof(VaesGcmKey)));
  // The moved key still works.
  const Bytes iv = pattern(12, 3), pt = pattern(100, 4);
  Bytes ct(pt.size()), tag(16);
  ASSERT_TRUE(
      gcm_seal(thread_imb_mgr(), c, iv, {}, pt.data(), ct.data(), pt.size(), tag.data(), 16));
  Bytes got = ct;
  got.insert(got.end(), tag.begin(), tag.end());
  EXPECT_EQ(got, testing::ossl_gcm_seal(key, iv, {}, pt));
  // Re-setting to IPsec-MB clears the VAES key.
  ASSERT_TRUE(c.set(AeadAlg::kAes128Gcm, pattern(16, 5), GcmBackend::kIpsecMb));
  EXPECT_FALSE(c.uses_vaes(64));
  EXPECT_TRUE(all_zero(reinterpret_cast<const uint8_t*>(&c.vaes()), sizeof(VaesGcmKey)));
  c.reset();
  EXPECT_TRUE(all_zero(reinterpret_cast<const uint8_t*>(&c.vaes()), sizeof(VaesGcmKey)));
}

// Every Wycheproof AES-GCM vector with a 12-byte IV, through the VAES backend.
TEST(CryptoGcmVaes, Wycheproof) {
  SKIP_WITHOUT_VAES();
  const std::string path = testing::testdata_dir() + "/wycheproof/aes_gcm_test.json";
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << "cannot open " << path << " (set VANISH_TESTDATA)";
  const nlohmann::json doc = nlohmann::json::parse(f);
  IMB_MGR* mgr = thread_imb_mgr();
  ASSERT_NE(mgr, nullptr);
  int run = 0, valid = 0, invalid = 0;
  for (const auto& group : doc.at("testGroups")) {
    for (const auto& t : group.at("tests")) {
      const auto [key, iv, aad, msg, ct, tag, result] = testing::wycheproof_gcm_row(t);
      if (iv.size() != 12 || (key.size() != 16 && key.size() != 24 && key.size() != 32) ||
          tag.empty() || tag.size() > 16 || ct.size() != msg.size()) {
        continue;
      }
      SCOPED_TRACE("tcId " + std::to_string(t.at("tcId").get<int>()));
      ++run;
      GcmKey k;
      ASSERT_TRUE(k.set(alg_for(key.size()), key, GcmBackend::kVaes));
      // The raw entry point computes the full tag; Wycheproof tags may be truncated.
      Bytes out(msg.size() + 1, 0xee);
      uint8_t full[16];
      vaes_gcm_enc(k.vaes(), iv.data(), aad.data(), aad.size(), msg.data(), out.data(), msg.size(),
                   full);
      if (result == "valid") {
        ++valid;
        EXPECT_EQ(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(msg.size())), ct);
        EXPECT_EQ(out[msg.size()], 0xee);
        EXPECT_EQ(Bytes(full, full + tag.size()), tag);
        Bytes back(ct.size());
        ASSERT_TRUE(
            gcm_open(mgr, k, iv, aad, ct.data(), back.data(), ct.size(), tag.data(), tag.size()));
        EXPECT_EQ(back, msg);
        Bytes buf = ct;  // in place
        ASSERT_TRUE(
            gcm_open(mgr, k, iv, aad, buf.data(), buf.data(), buf.size(), tag.data(), tag.size()));
        EXPECT_EQ(buf, msg);
      } else if (result == "invalid") {
        ++invalid;
        Bytes back(ct.size(), 0xee);
        EXPECT_FALSE(
            gcm_open(mgr, k, iv, aad, ct.data(), back.data(), ct.size(), tag.data(), tag.size()));
        EXPECT_TRUE(all_zero(back.data(), back.size()));
      }
    }
  }
  std::printf(
      "wycheproof aes_gcm via vaes-avx2: %d vectors with 12-byte IVs (%d valid, %d invalid)\n", run,
      valid, invalid);
  EXPECT_GT(run, 100);
  EXPECT_GT(invalid, 10);
}

// Differential against OpenSSL: every text length 0..1100 and some large ones, AAD lengths
// around block boundaries, three key sizes, in place and out of place at random offsets, with
// guard bytes around the output.
TEST(CryptoGcmVaes, MatchesOpenSslAllLengths) {
  SKIP_WITHOUT_VAES();
  IMB_MGR* mgr = thread_imb_mgr();
  ASSERT_NE(mgr, nullptr);
  std::vector<size_t> lens;
  for (size_t n = 0; n <= 1100; ++n) lens.push_back(n);
  for (size_t n : {1420, 1500, 4096, 9000}) lens.push_back(n);
  const size_t aad_lens[] = {0, 8, 12, 13, 16, 17, 20, 33, 100};
  std::mt19937 rng(42);
  constexpr size_t kGuard = 64;
  Bytes inbuf(9000 + 2 * kGuard + 64), outbuf(9000 + 2 * kGuard + 64);
  int cases = 0;
  for (AeadAlg alg : kAlgs) {
    const Bytes key = pattern(aead_key_len(alg), static_cast<uint32_t>(alg) + 100);
    GcmKey k;
    ASSERT_TRUE(k.set(alg, key, GcmBackend::kVaes));
    for (size_t len : lens) {
      for (size_t aad_len : aad_lens) {
        const uint32_t seed = static_cast<uint32_t>(len * 131 + aad_len * 7 + 1);
        const Bytes iv = pattern(12, seed);
        const Bytes aad = pattern(aad_len, seed + 1);
        const Bytes pt = pattern(len, seed + 2);
        const Bytes expect = testing::ossl_gcm_seal(key, iv, aad, pt);
        ASSERT_EQ(expect.size(), len + 16);
        for (bool in_place : {false, true}) {
          SCOPED_TRACE(std::string(aead_alg_name(alg)) + " len " + std::to_string(len) + " aad " +
                       std::to_string(aad_len) + (in_place ? " in place" : ""));
          const size_t in_off = kGuard + rng() % 64, out_off = kGuard + rng() % 64;
          std::fill(inbuf.begin(), inbuf.end(), 0xa5);
          std::fill(outbuf.begin(), outbuf.end(), 0x5a);
          uint8_t* src = inbuf.data() + in_off;
          uint8_t* dst = in_place ? src : outbuf.data() + out_off;
          std::copy(pt.begin(), pt.end(), src);
          uint8_t tag[16];
          ASSERT_TRUE(gcm_seal(mgr, k, iv, aad, src, dst, len, tag, 16));
          ASSERT_TRUE(
              std::equal(expect.begin(), expect.begin() + static_cast<std::ptrdiff_t>(len), dst));
          ASSERT_TRUE(std::equal(tag, tag + 16, expect.begin() + static_cast<std::ptrdiff_t>(len)));
          const Bytes& guarded = in_place ? inbuf : outbuf;
          const size_t off = in_place ? in_off : out_off;
          const uint8_t fill = in_place ? 0xa5 : 0x5a;
          ASSERT_TRUE(std::all_of(guarded.begin(),
                                  guarded.begin() + static_cast<std::ptrdiff_t>(off),
                                  [&](uint8_t b) { return b == fill; }));
          ASSERT_TRUE(std::all_of(guarded.begin() + static_cast<std::ptrdiff_t>(off + len),
                                  guarded.end(), [&](uint8_t b) { return b == fill; }));
          if (!in_place) {
            ASSERT_TRUE(std::equal(pt.begin(), pt.end(), src)) << "input modified";
          }
          // Open back (dst holds the ciphertext): out of place into the other buffer, or in place.
          uint8_t* back = src;
          if (!in_place) std::fill(src, src + len, 0);
          ASSERT_TRUE(gcm_open(mgr, k, iv, aad, dst, back, len, tag, 16));
          ASSERT_TRUE(std::equal(pt.begin(), pt.end(), back));
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, static_cast<int>(3 * lens.size() * std::size(aad_lens) * 2));
}

// Flipping any of several bits in ciphertext, tag or AAD makes open fail and wipes the output.
TEST(CryptoGcmVaes, TamperingRejected) {
  SKIP_WITHOUT_VAES();
  IMB_MGR* mgr = thread_imb_mgr();
  for (AeadAlg alg : kAlgs) {
    const Bytes key = pattern(aead_key_len(alg), 200);
    GcmKey k;
    ASSERT_TRUE(k.set(alg, key, GcmBackend::kVaes));
    for (size_t len : {1, 15, 16, 17, 68, 255, 256, 257, 511, 1424, 9000}) {
      for (size_t aad_len : {0, 8, 12, 33}) {
        const Bytes iv = pattern(12, static_cast<uint32_t>(len));
        Bytes aad = pattern(aad_len, 201);
        const Bytes pt = pattern(len, 202);
        Bytes ct(len), tag(16);
        ASSERT_TRUE(gcm_seal(mgr, k, iv, aad, pt.data(), ct.data(), len, tag.data(), 16));
        auto rejects = [&](const char* what, size_t where) {
          Bytes buf = ct;
          EXPECT_FALSE(gcm_open(mgr, k, iv, aad, buf.data(), buf.data(), len, tag.data(), 16))
              << what << " " << where << " len " << len << " aad " << aad_len;
          EXPECT_TRUE(all_zero(buf.data(), buf.size())) << "not wiped";
        };
        for (size_t bit : {size_t{0}, size_t{7}, len * 4 + 3, len * 8 - 1}) {
          if (bit >= len * 8) continue;
          ct[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
          rejects("ct bit", bit);
          ct[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        }
        for (size_t bit : {0, 63, 64, 127}) {
          tag[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
          rejects("tag bit", bit);
          tag[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        }
        for (size_t bit : {size_t{0}, aad_len * 8 - 1}) {
          if (aad_len == 0) continue;
          aad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
          rejects("aad bit", bit);
          aad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        }
        // Truncated tags are compared over their length only; a wrong IV fails.
        Bytes buf = ct;
        EXPECT_TRUE(gcm_open(mgr, k, iv, aad, buf.data(), buf.data(), len, tag.data(), 8));
        EXPECT_EQ(buf, pt);
        Bytes iv2 = iv;
        iv2[11] ^= 1;
        buf = ct;
        EXPECT_FALSE(gcm_open(mgr, k, iv2, aad, buf.data(), buf.data(), len, tag.data(), 16));
      }
    }
  }
}

// The two GcmKey backends produce identical bytes (ciphertext and every tag length).
TEST(CryptoGcmVaes, BackendsAgree) {
  SKIP_WITHOUT_VAES();
  IMB_MGR* mgr = thread_imb_mgr();
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    const AeadAlg alg = kAlgs[rng() % 3];
    const Bytes key = pattern(aead_key_len(alg), rng());
    GcmKey v, m, h;
    ASSERT_TRUE(v.set(alg, key, GcmBackend::kVaes));
    ASSERT_TRUE(m.set(alg, key, GcmBackend::kIpsecMb));
    ASSERT_TRUE(h.set(alg, key, GcmBackend::kHybrid));
    const size_t len = i < 1000   ? rng() % 600
                       : i < 2000 ? kGcmHybridSplit - 8 + rng() % 16  // either side of the split
                                  : rng() % 9100;
    const size_t tag_len = 1 + rng() % 16;
    const Bytes iv = pattern(12, rng());
    const Bytes aad = pattern(rng() % 40, rng());
    const Bytes pt = pattern(len, rng());
    Bytes c1(len), c2(len), t1(tag_len), t2(tag_len);
    ASSERT_TRUE(gcm_seal(mgr, v, iv, aad, pt.data(), c1.data(), len, t1.data(), tag_len));
    ASSERT_TRUE(gcm_seal(mgr, m, iv, aad, pt.data(), c2.data(), len, t2.data(), tag_len));
    ASSERT_EQ(c1, c2) << "len " << len;
    ASSERT_EQ(t1, t2) << "len " << len;
    Bytes c3(len), t3(tag_len);
    ASSERT_TRUE(gcm_seal(mgr, h, iv, aad, pt.data(), c3.data(), len, t3.data(), tag_len));
    ASSERT_EQ(c3, c2) << "hybrid, len " << len;
    ASSERT_EQ(t3, t2) << "hybrid, len " << len;
    Bytes b3(len);
    ASSERT_TRUE(gcm_open(mgr, h, iv, aad, c1.data(), b3.data(), len, t1.data(), tag_len));
    ASSERT_EQ(b3, pt);
    Bytes b1(len), b2(len);
    ASSERT_TRUE(gcm_open(mgr, v, iv, aad, c2.data(), b1.data(), len, t2.data(), tag_len));
    ASSERT_TRUE(gcm_open(mgr, m, iv, aad, c1.data(), b2.data(), len, t1.data(), tag_len));
    ASSERT_EQ(b1, pt);
    ASSERT_EQ(b2, pt);
  }
  // Other IV lengths use IPsec-MB on both keys.
  const Bytes key = pattern(16, 9), iv = pattern(16, 10), pt = pattern(300, 11);
  GcmKey v;
  ASSERT_TRUE(v.set(AeadAlg::kAes128Gcm, key, GcmBackend::kVaes));
  Bytes ct(pt.size()), tag(16);
  ASSERT_TRUE(gcm_seal(mgr, v, iv, {}, pt.data(), ct.data(), pt.size(), tag.data(), 16));
  ct.insert(ct.end(), tag.begin(), tag.end());
  EXPECT_EQ(ct, testing::ossl_gcm_seal(key, iv, {}, pt));
}

// EspSa: packets sealed on one backend open on the other, byte-identical, ESN on and off.
TEST(CryptoGcmVaes, EspBackendsInterop) {
  SKIP_WITHOUT_VAES();
  IMB_MGR* mgr = thread_imb_mgr();
  for (AeadAlg alg : kAlgs) {
    for (bool esn : {false, true}) {
      const Bytes key = pattern(aead_key_len(alg), 300);
      EspSaParams p;
      p.spi = 0x4242;
      p.alg = alg;
      p.key = key;
      p.salt = {9, 8, 7, 6};
      p.esn = esn;
      p.deterministic_iv = true;
      EspSa tv, tm, rv, rm, th, rh;
      p.backend = GcmBackend::kVaes;
      ASSERT_TRUE(tv.init(p));
      ASSERT_TRUE(rv.init(p));
      EXPECT_STREQ(tv.backend(), "vaes-avx2");
      p.backend = GcmBackend::kIpsecMb;
      ASSERT_TRUE(tm.init(p));
      ASSERT_TRUE(rm.init(p));
      EXPECT_STREQ(tm.backend(), "ipsec-mb");
      p.backend = GcmBackend::kHybrid;  // crosses kGcmHybridSplit within the loop below
      ASSERT_TRUE(th.init(p));
      ASSERT_TRUE(rh.init(p));
      EXPECT_STREQ(th.backend(), "hybrid");
      for (size_t len = 0; len <= 1600; len += (len < 300 ? 1 : 37)) {
        const Bytes payload = pattern(len, static_cast<uint32_t>(len));
        Bytes a(len + 64), b(len + 64);
        std::copy(payload.begin(), payload.end(), a.begin() + kEspPayloadOffset);
        std::copy(payload.begin(), payload.end(), b.begin() + kEspPayloadOffset);
        EspStatus st;
        const size_t na = tv.seal(mgr, a.data(), len, 17, &st);
        const size_t nb = tm.seal(mgr, b.data(), len, 17, &st);
        ASSERT_EQ(na, nb);
        ASSERT_EQ(a, b) << "len " << len;
        Bytes h(len + 64);
        std::copy(payload.begin(), payload.end(), h.begin() + kEspPayloadOffset);
        ASSERT_EQ(th.seal(mgr, h.data(), len, 17, &st), na);
        ASSERT_EQ(h, a) << "hybrid, len " << len;
        size_t plen = 0;
        uint8_t nh = 0;
        ASSERT_EQ(rm.open(mgr, a.data(), na, &plen, &nh), EspStatus::kOk);
        ASSERT_EQ(plen, len);
        ASSERT_EQ(rv.open(mgr, b.data(), nb, &plen, &nh), EspStatus::kOk);
        ASSERT_TRUE(std::equal(payload.begin(), payload.end(), b.begin() + kEspPayloadOffset));
        ASSERT_EQ(rh.open(mgr, h.data(), na, &plen, &nh), EspStatus::kOk);
        ASSERT_EQ(plen, len);
        ASSERT_TRUE(std::equal(payload.begin(), payload.end(), h.begin() + kEspPayloadOffset));
      }
      // A tampered packet: VAES open reports kBadIcv and wipes the encrypted part.
      Bytes c(200 + 64);
      EspStatus st;
      const size_t n = tv.seal(mgr, c.data(), 200, 17, &st);
      c[kEspPayloadOffset + 50] ^= 4;
      size_t plen = 0;
      uint8_t nh = 0;
      ASSERT_EQ(rv.open(mgr, c.data(), n, &plen, &nh), EspStatus::kBadIcv);
      EXPECT_TRUE(all_zero(c.data() + kEspPayloadOffset, n - kEspPayloadOffset - kEspIcvLen));
    }
  }
}

// The stack a call to vaes_gcm_enc/dec used, as the next call from the same frame finds it:
// probe_stack() lays its own frame over the one the previous noinline call had. (Unused under
// ASan, whose fake stack the probe cannot see: the tests below skip there.)
constexpr size_t kProbeBytes = 4096;

[[gnu::noinline, maybe_unused]] void probe_stack(Bytes* dump) {
  alignas(64) uint8_t area[kProbeBytes];
  asm volatile("" : "=m"(area));  // "written" here: the compiler keeps whatever the stack held
  dump->assign(area, area + kProbeBytes);
}

// Zeroes the probe's range first, so what a probe finds was left by the call in between (and not
// by, say, OpenSSL computing the expected values).
[[gnu::noinline, maybe_unused]] void clear_stack() {
  alignas(64) volatile uint8_t area[kProbeBytes + 256];
  for (auto& b : area) b = 0;
  asm volatile("" : : "r"(area) : "memory");
}

[[gnu::noinline, maybe_unused]] void leave_marker(const uint8_t* marker) {
  alignas(64) volatile uint8_t area[256];
  for (size_t i = 0; i < 16; ++i) area[128 + i] = marker[i];
  asm volatile("" : : "r"(area) : "memory");
}

[[gnu::noinline, maybe_unused]] void seal_direct(const VaesGcmKey& k, const uint8_t* iv,
                                                 const Bytes& aad, const Bytes& pt, Bytes* ct,
                                                 uint8_t* tag) {
  vaes_gcm_enc(k, iv, aad.data(), aad.size(), pt.data(), ct->data(), pt.size(), tag);
}

[[gnu::noinline, maybe_unused]] void open_direct(const VaesGcmKey& k, const uint8_t* iv,
                                                 const Bytes& aad, const Bytes& ct, Bytes* pt,
                                                 uint8_t* tag) {
  vaes_gcm_dec(k, iv, aad.data(), aad.size(), ct.data(), pt->data(), ct.size(), tag);
}

// In the byte order given or reversed (GHASH code keeps its values byte-reflected).
[[maybe_unused]] bool contains(const Bytes& hay, const uint8_t* needle16) {
  uint8_t rev[16];
  std::reverse_copy(needle16, needle16 + 16, rev);
  for (size_t i = 0; i + 16 <= hay.size(); ++i) {
    auto at = hay.begin() + static_cast<std::ptrdiff_t>(i);
    if (std::equal(needle16, needle16 + 16, at) || std::equal(rev, rev + 16, at)) return true;
  }
  return false;
}

// E(K, J0) for AES-128 and a 12-byte IV (J0 = IV || 0^31 || 1), with OpenSSL's ECB.
[[maybe_unused]] bool tag_mask(const Bytes& key, const Bytes& iv, uint8_t* ej0) {
  uint8_t j0[16] = {};
  std::copy(iv.begin(), iv.end(), j0);
  j0[15] = 1;
  EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
  int n = 0;
  const bool ok = EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), nullptr, key.data(), nullptr) == 1 &&
                  EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
                  EVP_EncryptUpdate(c, ej0, &n, j0, 16) == 1 && n == 16;
  EVP_CIPHER_CTX_free(c);
  return ok;
}

// The compiler spills keystream blocks and E(K, J0) (the tag mask: with tags, enough of them give
// away H) to the stack; enc/dec clear their frames before returning. Probed the way an attacker
// with a stack read would see it: every 16-byte window of what the next call finds there.
TEST(CryptoGcmVaes, SpilledSecretsAreScrubbed) {
  SKIP_WITHOUT_VAES();
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan moves locals to its fake stack: the probe sees another memory";
#else
  // The probe works: a callee's local is visible to it.
  const Bytes marker = pattern(16, 7);
  clear_stack();
  leave_marker(marker.data());
  Bytes dump;
  probe_stack(&dump);
  ASSERT_TRUE(contains(dump, marker.data())) << "the probe does not overlap a callee's frame";

  const Bytes key = pattern(16, 1), iv = pattern(12, 2), aad = pattern(12, 3);
  VaesGcmKey k;
  ASSERT_TRUE(vaes_gcm_set_key(&k, key.data(), key.size()));
  uint8_t ej0[16];
  ASSERT_TRUE(tag_mask(key, iv, ej0));
  for (size_t len : {40, 100, 300, 520, 1000, 1420}) {
    SCOPED_TRACE("len " + std::to_string(len));
    const Bytes pt = pattern(len, static_cast<uint32_t>(len));
    Bytes ct(len), back(len);
    uint8_t tag[16], tag2[16];
    // The keystream of every block: plaintext ^ ciphertext.
    std::vector<std::array<uint8_t, 16> > ks;
    clear_stack();
    seal_direct(k, iv.data(), aad, pt, &ct, tag);
    probe_stack(&dump);
    for (size_t b = 0; b + 16 <= len; b += 16) {
      std::array<uint8_t, 16> x;
      for (size_t i = 0; i < 16; ++i) x[i] = pt[b + i] ^ ct[b + i];
      ks.push_back(x);
    }
    EXPECT_FALSE(contains(dump, ej0)) << "E(K, J0) left on the stack by enc";
    for (const auto& x : ks) EXPECT_FALSE(contains(dump, x.data())) << "keystream left by enc";
    clear_stack();
    open_direct(k, iv.data(), aad, ct, &back, tag2);
    probe_stack(&dump);
    ASSERT_EQ(back, pt);
    EXPECT_FALSE(contains(dump, ej0)) << "E(K, J0) left on the stack by dec";
    for (const auto& x : ks) EXPECT_FALSE(contains(dump, x.data())) << "keystream left by dec";
  }
#endif
}

[[gnu::noinline, maybe_unused]] void seal_aead(IMB_MGR* mgr, const GcmKey& k, const Bytes& iv,
                                               const Bytes& aad, const Bytes& pt, Bytes* ct,
                                               uint8_t* tag) {
  ASSERT_TRUE(gcm_seal(mgr, k, iv, aad, pt.data(), ct->data(), pt.size(), tag, 16));
}

[[gnu::noinline, maybe_unused]] void open_aead(IMB_MGR* mgr, const GcmKey& k, const Bytes& iv,
                                               const Bytes& aad, const Bytes& ct, Bytes* pt,
                                               const uint8_t* tag) {
  ASSERT_TRUE(gcm_open(mgr, k, iv, aad, ct.data(), pt->data(), ct.size(), tag, 16));
}

// The same through gcm_seal / gcm_open with each backend: IPsec-MB's context (the caller's, on
// its stack) ends holding GHASH_H(A, C) = tag ^ E(K, J0), from which H can be solved for.
TEST(CryptoGcmVaes, AeadCallsLeaveNoGhashStateOnTheStack) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan moves locals to its fake stack: the probe sees another memory";
#else
  IMB_MGR* mgr = thread_imb_mgr();
  ASSERT_NE(mgr, nullptr);
  const Bytes key = pattern(16, 11), iv = pattern(12, 12), aad = pattern(12, 13);
  uint8_t ej0[16];
  ASSERT_TRUE(tag_mask(key, iv, ej0));
  std::vector<GcmBackend> backends{GcmBackend::kIpsecMb};
  if (vaes_gcm_supported()) backends.push_back(GcmBackend::kVaes);
  for (GcmBackend be : backends) {
    GcmKey k;
    ASSERT_TRUE(k.set(AeadAlg::kAes128Gcm, key, be));
    for (size_t len : {40, 300, 1420}) {
      SCOPED_TRACE(std::string(k.backend()) + " len " + std::to_string(len));
      const Bytes pt = pattern(len, static_cast<uint32_t>(len) + 5);
      Bytes ct(len), back(len), dump;
      uint8_t tag[16], s[16];
      clear_stack();
      seal_aead(mgr, k, iv, aad, pt, &ct, tag);
      probe_stack(&dump);
      for (size_t i = 0; i < 16; ++i) s[i] = tag[i] ^ ej0[i];  // GHASH_H(A, C)
      EXPECT_FALSE(contains(dump, ej0)) << "E(K, J0) left by seal";
      EXPECT_FALSE(contains(dump, s)) << "GHASH_H(A, C) left by seal";
      clear_stack();
      open_aead(mgr, k, iv, aad, ct, &back, tag);
      probe_stack(&dump);
      ASSERT_EQ(back, pt);
      EXPECT_FALSE(contains(dump, ej0)) << "E(K, J0) left by open";
      EXPECT_FALSE(contains(dump, s)) << "GHASH_H(A, C) left by open";
    }
  }
#endif
}

}  // namespace
}  // namespace vanish::crypto
