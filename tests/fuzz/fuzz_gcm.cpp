// Fuzz target: AES-GCM, the VAES/AVX2 backend (crypto/gcm_vaes.hpp) against IPsec-MB on the
// same key, IV, AAD and text, both directions, in place and out of place, plus a tampered open.
// Input: [key size % 3][tag length][key 16/24/32][IV 12][AAD length][AAD][text...].
// Aborts on any difference. Without VAES on the CPU only the IPsec-MB round trip runs.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "crypto/aead.hpp"
#include "tests/fuzz/fuzz_target.hpp"

namespace {

using vanish::crypto::AeadAlg;
using vanish::crypto::GcmBackend;
using vanish::crypto::GcmKey;

void check(bool ok) {
  if (!ok) std::abort();
}

std::vector<uint8_t> seed(uint8_t ksel, uint8_t tag_len, size_t aad_len, size_t text_len) {
  std::vector<uint8_t> v = {ksel, tag_len};
  const size_t key_len = 16 + 8 * (ksel % 3);
  for (size_t i = 0; i < key_len + 12; ++i) v.push_back(static_cast<uint8_t>(i * 37 + 11));
  v.push_back(static_cast<uint8_t>(aad_len));
  for (size_t i = 0; i < aad_len + text_len; ++i) v.push_back(static_cast<uint8_t>(i * 101 + 3));
  return v;
}

}  // namespace

std::vector<std::vector<uint8_t>> fuzz_seeds() {
  return {seed(0, 16, 12, 68),  seed(2, 16, 8, 1424), seed(1, 12, 0, 0),
          seed(0, 16, 13, 255), seed(2, 1, 33, 257),  seed(0, 16, 12, 4000)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const AeadAlg alg = static_cast<AeadAlg>(data[0] % 3);
  const size_t tag_len = 1 + data[1] % 16;
  const size_t key_len = vanish::crypto::aead_key_len(alg);
  size_t pos = 2;
  if (size < pos + key_len + 12 + 1) return 0;
  const uint8_t* key = data + pos;
  pos += key_len;
  const uint8_t* iv = data + pos;
  pos += 12;
  size_t aad_len = data[pos++];
  if (aad_len > size - pos) aad_len = size - pos;
  const std::span<const uint8_t> aad(data + pos, aad_len);
  pos += aad_len;
  const uint8_t* text = data + pos;
  const size_t len = size - pos;

  IMB_MGR* mgr = vanish::crypto::thread_imb_mgr();
  check(mgr != nullptr);
  GcmKey m;
  check(m.set(alg, {key, key_len}, GcmBackend::kIpsecMb));
  std::vector<uint8_t> c1(len + 1), t1(tag_len), b1(len + 1);
  check(vanish::crypto::gcm_seal(mgr, m, {iv, 12}, aad, text, c1.data(), len, t1.data(), tag_len));
  check(vanish::crypto::gcm_open(mgr, m, {iv, 12}, aad, c1.data(), b1.data(), len, t1.data(),
                                 tag_len));
  check(len == 0 || std::memcmp(b1.data(), text, len) == 0);
  if (!vanish::crypto::vaes_gcm_supported()) return 0;

  GcmKey v;
  check(v.set(alg, {key, key_len}, GcmBackend::kVaes));
  std::vector<uint8_t> c2(text, text + len), t2(tag_len);
  c2.push_back(0);
  check(vanish::crypto::gcm_seal(mgr, v, {iv, 12}, aad, c2.data(), c2.data(), len, t2.data(),
                                 tag_len));  // in place
  check(std::memcmp(c1.data(), c2.data(), len) == 0 && t1 == t2);
  std::vector<uint8_t> b2(len + 1);
  check(vanish::crypto::gcm_open(mgr, v, {iv, 12}, aad, c1.data(), b2.data(), len, t1.data(),
                                 tag_len));
  check(len == 0 || std::memcmp(b2.data(), text, len) == 0);

  // Tamper with one bit of ciphertext or tag: both backends give the same verdict, reject for
  // tags of 8 bytes or more (a shorter one may collide by chance), and wipe when they reject.
  const size_t bits = (len + tag_len) * 8;
  const size_t bit = (len * 131 + tag_len * 7 + aad_len) % bits;
  uint8_t* target = bit / 8 < len ? &c1[bit / 8] : &t1[bit / 8 - len];
  *target ^= static_cast<uint8_t>(1u << (bit % 8));
  const bool ok_v = vanish::crypto::gcm_open(mgr, v, {iv, 12}, aad, c1.data(), b2.data(), len,
                                             t1.data(), tag_len);
  const bool ok_m = vanish::crypto::gcm_open(mgr, m, {iv, 12}, aad, c1.data(), b1.data(), len,
                                             t1.data(), tag_len);
  check(ok_v == ok_m);
  check(!ok_v || tag_len < 8);
  if (!ok_v) {
    for (size_t i = 0; i < len; ++i) check(b1[i] == 0 && b2[i] == 0);
  }
  return 0;
}
