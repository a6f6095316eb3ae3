// AES-GCM through IPsec-MB: Wycheproof vectors, cross-checks against OpenSSL, parameter checks.
#include "crypto/aead.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <thread>

#include "tests/unit/crypto/test_util.hpp"

namespace vanish::crypto {
namespace {

using testing::Bytes;
using testing::from_hex;
using testing::pattern;

bool alg_for_key_len(size_t len, AeadAlg* alg) {
  switch (len) {
    case 16:
      *alg = AeadAlg::kAes128Gcm;
      return true;
    case 24:
      *alg = AeadAlg::kAes192Gcm;
      return true;
    case 32:
      *alg = AeadAlg::kAes256Gcm;
      return true;
  }
  return false;
}

TEST(CryptoAead, Wycheproof) {
  const std::string path = testing::testdata_dir() + "/wycheproof/aes_gcm_test.json";
  std::ifstream f(path);
  ASSERT_TRUE(f.good()) << "cannot open " << path << " (set VANISH_TESTDATA)";
  const nlohmann::json doc = nlohmann::json::parse(f);
  const int number_of_tests = doc.at("numberOfTests").get<int>();

  IMB_MGR* mgr = thread_imb_mgr();
  ASSERT_NE(mgr, nullptr);

  int run = 0, skipped = 0, valid = 0, invalid = 0, acceptable = 0, rejected_by_params = 0;
  for (const auto& group : doc.at("testGroups")) {
    for (const auto& t : group.at("tests")) {
      const int id = t.at("tcId").get<int>();
      const auto [key, iv, aad, msg, ct, tag, result] = testing::wycheproof_gcm_row(t);
      SCOPED_TRACE("tcId " + std::to_string(id) + " " + t.at("comment").get<std::string>());

      AeadAlg alg;
      if (!alg_for_key_len(key.size(), &alg)) {
        std::printf("skip tcId %d: key length %zu is not an AES key size\n", id, key.size());
        ++skipped;
        continue;
      }
      if (tag.empty() || tag.size() > kGcmMaxTagLen || ct.size() != msg.size()) {
        std::printf("skip tcId %d: tag length %zu / ct length %zu not representable\n", id,
                    tag.size(), ct.size());
        ++skipped;
        continue;
      }
      ++run;
      GcmKey k;
      ASSERT_TRUE(k.set(alg, key));

      Bytes out(msg.size() + 1, 0xee);
      Bytes out_tag(tag.size(), 0);
      if (iv.empty()) {
        // GCM is undefined for an empty IV: both directions must refuse it.
        EXPECT_NE(result, "valid");
        EXPECT_FALSE(gcm_seal(mgr, k, iv, aad, msg.data(), out.data(), msg.size(), out_tag.data(),
                              out_tag.size()));
        EXPECT_FALSE(
            gcm_open(mgr, k, iv, aad, ct.data(), out.data(), ct.size(), tag.data(), tag.size()));
        ++rejected_by_params;
        if (result == "invalid") ++invalid;
        continue;
      }

      if (result == "valid") {
        ++valid;
        ASSERT_TRUE(gcm_seal(mgr, k, iv, aad, msg.data(), out.data(), msg.size(), out_tag.data(),
                             out_tag.size()));
        EXPECT_EQ(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(msg.size())), ct);
        EXPECT_EQ(out[msg.size()], 0xee) << "wrote past the end";
        EXPECT_EQ(out_tag, tag);
        ASSERT_TRUE(
            gcm_open(mgr, k, iv, aad, ct.data(), out.data(), ct.size(), tag.data(), tag.size()));
        EXPECT_EQ(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(ct.size())), msg);
        // In place, both ways.
        Bytes buf = msg;
        ASSERT_TRUE(gcm_seal(mgr, k, iv, aad, buf.data(), buf.data(), buf.size(), out_tag.data(),
                             out_tag.size()));
        EXPECT_EQ(buf, ct);
        ASSERT_TRUE(
            gcm_open(mgr, k, iv, aad, buf.data(), buf.data(), buf.size(), tag.data(), tag.size()));
        EXPECT_EQ(buf, msg);
      } else if (result == "invalid") {
        ++invalid;
        EXPECT_FALSE(
            gcm_open(mgr, k, iv, aad, ct.data(), out.data(), ct.size(), tag.data(), tag.size()));
        for (size_t i = 0; i < ct.size(); ++i) ASSERT_EQ(out[i], 0) << "not wiped at " << i;
      } else {
        ++acceptable;
        ASSERT_TRUE(gcm_seal(mgr, k, iv, aad, msg.data(), out.data(), msg.size(), out_tag.data(),
                             out_tag.size()));
        Bytes back(msg.size() + 1);
        EXPECT_TRUE(gcm_open(mgr, k, iv, aad, out.data(), back.data(), msg.size(), out_tag.data(),
                             out_tag.size()));
        back.resize(msg.size());
        EXPECT_EQ(back, msg);
      }
    }
  }
  std::printf(
      "wycheproof aes_gcm: %d of %d vectors run (%d valid, %d invalid, %d acceptable; %d of them "
      "rejected by the parameter check), %d skipped\n",
      run, number_of_tests, valid, invalid, acceptable, rejected_by_params, skipped);
  EXPECT_EQ(run, number_of_tests - skipped);
  EXPECT_EQ(skipped, 0);
  EXPECT_EQ(valid + invalid + acceptable, run);
}

// IPsec-MB against OpenSSL over IV lengths (fast path and GHASH-derived counter), AAD and
// plaintext lengths around block boundaries, every tag length and all key sizes.
TEST(CryptoAead, MatchesOpenSsl) {
  IMB_MGR* mgr = thread_imb_mgr();
  ASSERT_NE(mgr, nullptr);
  const AeadAlg algs[] = {AeadAlg::kAes128Gcm, AeadAlg::kAes192Gcm, AeadAlg::kAes256Gcm};
  const size_t iv_lens[] = {1, 8, 12, 13, 16, 60, 128};
  const size_t aad_lens[] = {0, 1, 8, 12, 16, 17, 33};
  const size_t pt_lens[] = {0, 1, 15, 16, 17, 63, 64, 255, 256, 1500};
  uint32_t seed = 1;
  int cases = 0;
  for (AeadAlg alg : algs) {
    const Bytes key = pattern(aead_key_len(alg), seed++);
    GcmKey k;
    ASSERT_TRUE(k.set(alg, key));
    EXPECT_EQ(k.alg(), alg);
    for (size_t iv_len : iv_lens) {
      for (size_t aad_len : aad_lens) {
        for (size_t pt_len : pt_lens) {
          const size_t tag_len = 1 + (seed % 16);
          const Bytes iv = pattern(iv_len, seed++);
          const Bytes aad = pattern(aad_len, seed++);
          const Bytes pt = pattern(pt_len, seed++);
          SCOPED_TRACE(std::string(aead_alg_name(alg)) + " iv " + std::to_string(iv_len) + " aad " +
                       std::to_string(aad_len) + " pt " + std::to_string(pt_len) + " tag " +
                       std::to_string(tag_len));
          const Bytes expect = testing::ossl_gcm_seal(key, iv, aad, pt, tag_len);
          ASSERT_EQ(expect.size(), pt_len + tag_len);

          Bytes ct(pt_len);
          Bytes tag(tag_len);
          ASSERT_TRUE(gcm_seal(mgr, k, iv, aad, pt.data(), ct.data(), pt_len, tag.data(), tag_len));
          Bytes got = ct;
          got.insert(got.end(), tag.begin(), tag.end());
          ASSERT_EQ(got, expect);

          Bytes back(pt_len);
          ASSERT_TRUE(
              gcm_open(mgr, k, iv, aad, ct.data(), back.data(), pt_len, tag.data(), tag_len));
          ASSERT_EQ(back, pt);

          // Any flipped tag bit is rejected.
          tag[seed % tag_len] ^= static_cast<uint8_t>(1u << (seed % 8));
          ASSERT_FALSE(
              gcm_open(mgr, k, iv, aad, ct.data(), back.data(), pt_len, tag.data(), tag_len));
          ASSERT_TRUE(std::all_of(back.begin(), back.end(), [](uint8_t b) { return b == 0; }));
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 3 * 7 * 7 * 10);
}

TEST(CryptoAead, RejectsBadParameters) {
  IMB_MGR* mgr = thread_imb_mgr();
  ASSERT_NE(mgr, nullptr);
  GcmKey k;
  const Bytes key16 = pattern(16, 7);
  EXPECT_FALSE(k.set(AeadAlg::kAes256Gcm, key16));
  EXPECT_FALSE(k.valid());
  EXPECT_FALSE(k.set(AeadAlg::kAes128Gcm, std::span<const uint8_t>()));

  const Bytes iv = pattern(12, 1);
  uint8_t buf[32] = {};
  uint8_t tag[16] = {};
  // Not set yet.
  EXPECT_FALSE(gcm_seal(mgr, k, iv, {}, buf, buf, sizeof(buf), tag, 16));
  ASSERT_TRUE(k.set(AeadAlg::kAes128Gcm, key16));
  EXPECT_TRUE(k.valid());
  EXPECT_FALSE(gcm_seal(nullptr, k, iv, {}, buf, buf, sizeof(buf), tag, 16));
  EXPECT_FALSE(gcm_seal(mgr, k, {}, {}, buf, buf, sizeof(buf), tag, 16));
  EXPECT_FALSE(gcm_seal(mgr, k, iv, {}, buf, buf, sizeof(buf), tag, 0));
  EXPECT_FALSE(gcm_seal(mgr, k, iv, {}, buf, buf, sizeof(buf), tag, 17));
  EXPECT_FALSE(gcm_seal(mgr, k, iv, {}, nullptr, buf, sizeof(buf), tag, 16));
  EXPECT_FALSE(gcm_seal(mgr, k, iv, {}, buf, buf, sizeof(buf), nullptr, 16));
  EXPECT_FALSE(gcm_open(mgr, k, iv, {}, buf, buf, sizeof(buf), tag, 0));
  EXPECT_FALSE(gcm_open(mgr, k, {}, {}, buf, buf, sizeof(buf), tag, 16));
  EXPECT_FALSE(gcm_open(mgr, k, iv, {}, buf, nullptr, sizeof(buf), tag, 16));
  // Empty plaintext with null buffers is fine: GMAC over the AAD only.
  const Bytes aad = pattern(20, 2);
  EXPECT_TRUE(gcm_seal(mgr, k, iv, aad, nullptr, nullptr, 0, tag, 16));
  EXPECT_TRUE(gcm_open(mgr, k, iv, aad, nullptr, nullptr, 0, tag, 16));
  const Bytes expect = testing::ossl_gcm_seal(key16, iv, aad, {}, 16);
  EXPECT_EQ(Bytes(tag, tag + 16), expect);
}

TEST(CryptoAead, KeyMoveAndReset) {
  IMB_MGR* mgr = thread_imb_mgr();
  const Bytes key = pattern(32, 3);
  const Bytes iv = pattern(12, 4);
  const Bytes pt = pattern(100, 5);
  GcmKey a;
  ASSERT_TRUE(a.set(AeadAlg::kAes256Gcm, key));
  GcmKey b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  const auto* raw = reinterpret_cast<const uint8_t*>(a.data());
  EXPECT_TRUE(std::all_of(raw, raw + sizeof(gcm_key_data), [](uint8_t v) { return v == 0; }));
  ASSERT_TRUE(b.valid());
  EXPECT_EQ(b.alg(), AeadAlg::kAes256Gcm);
  Bytes ct(pt.size());
  uint8_t tag[16];
  ASSERT_TRUE(gcm_seal(mgr, b, iv, {}, pt.data(), ct.data(), pt.size(), tag, 16));
  Bytes expect = testing::ossl_gcm_seal(key, iv, {}, pt, 16);
  ct.insert(ct.end(), tag, tag + 16);
  EXPECT_EQ(ct, expect);

  GcmKey c;
  c = std::move(b);
  EXPECT_TRUE(c.valid());
  EXPECT_FALSE(b.valid());  // NOLINT(bugprone-use-after-move)
  c.reset();
  EXPECT_FALSE(c.valid());
  raw = reinterpret_cast<const uint8_t*>(c.data());
  EXPECT_TRUE(std::all_of(raw, raw + sizeof(gcm_key_data), [](uint8_t v) { return v == 0; }));
  EXPECT_FALSE(gcm_seal(mgr, c, iv, {}, pt.data(), ct.data(), pt.size(), tag, 16));
}

// One manager per thread; a key expanded on one thread works with another thread's manager.
TEST(CryptoAead, ThreadManagers) {
  IMB_MGR* main_mgr = thread_imb_mgr();
  ASSERT_NE(main_mgr, nullptr);
  EXPECT_EQ(thread_imb_mgr(), main_mgr);
  const Bytes key = pattern(16, 9);
  const Bytes iv = pattern(12, 10);
  const Bytes pt = pattern(77, 11);
  GcmKey k;
  ASSERT_TRUE(k.set(AeadAlg::kAes128Gcm, key));
  Bytes ct(pt.size());
  uint8_t tag[16];
  ASSERT_TRUE(gcm_seal(main_mgr, k, iv, {}, pt.data(), ct.data(), pt.size(), tag, 16));

  IMB_MGR* other = nullptr;
  bool opened = false;
  Bytes back(pt.size());
  std::thread t([&] {
    other = thread_imb_mgr();
    opened = gcm_open(other, k, iv, {}, ct.data(), back.data(), ct.size(), tag, 16);
  });
  t.join();
  EXPECT_NE(other, nullptr);
  EXPECT_NE(other, main_mgr);
  EXPECT_TRUE(opened);
  EXPECT_EQ(back, pt);
}

}  // namespace
}  // namespace vanish::crypto
