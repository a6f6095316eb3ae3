#include "crypto/esp.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

namespace vanish::crypto {

namespace {

inline void store_be32(uint8_t* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}

inline void store_be64(uint8_t* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}

inline uint32_t load_be32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}

// Constant-time comparison of two 16-byte tags: no data-dependent branch.
inline bool tag_equal(const uint8_t* a, const uint8_t* b) {
  uint64_t a0, a1, b0, b1;
  std::memcpy(&a0, a, 8);
  std::memcpy(&a1, a + 8, 8);
  std::memcpy(&b0, b, 8);
  std::memcpy(&b1, b + 8, 8);
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// The 12-byte AAD for ESN (RFC 4106 §5): SPI || seq_hi || seq_lo.
inline void make_esn_aad(uint8_t* aad, uint32_t spi_be, uint64_t seq) {
  std::memcpy(aad, &spi_be, 4);
  store_be32(aad + 4, static_cast<uint32_t>(seq >> 32));
  store_be32(aad + 8, static_cast<uint32_t>(seq));
}

constexpr uint8_t kPadBytes[3] = {1, 2, 3};

// nonce[0..12) = salt || explicit IV, written as one 8-byte and one 4-byte store: the AES-GCM
// code loads it the same way, so the loads forward from the stores instead of stalling.
inline void make_nonce(uint8_t* nonce, const std::array<uint8_t, 4>& salt, const uint8_t* iv) {
  uint32_t s;
  uint64_t v;
  std::memcpy(&s, salt.data(), 4);
  std::memcpy(&v, iv, 8);
  const uint64_t lo = uint64_t{s} | (v << 32);
  const uint32_t hi = static_cast<uint32_t>(v >> 32);
  std::memcpy(nonce, &lo, 8);
  std::memcpy(nonce + 8, &hi, 4);
}

}  // namespace

const char* esp_status_name(EspStatus status) {
  switch (status) {
    case EspStatus::kOk:
      return "ok";
    case EspStatus::kTruncated:
      return "truncated";
    case EspStatus::kBadSpi:
      return "bad_spi";
    case EspStatus::kReplay:
      return "replay";
    case EspStatus::kTooOld:
      return "too_old";
    case EspStatus::kBadIcv:
      return "bad_icv";
    case EspStatus::kBadPadding:
      return "bad_padding";
    case EspStatus::kSeqExhausted:
      return "seq_exhausted";
  }
  return "?";
}

bool EspSa::init(const EspSaParams& params) {
  key_.reset();
  enc_ = nullptr;
  dec_ = nullptr;
  if (params.spi == 0) return false;
  if (params.replay_window_bits == 0 && params.esn) return false;  // ESN needs the window
  if (!key_.set(params.alg, params.key, params.backend)) return false;
  enc_ = key_.fns().enc;
  dec_ = key_.fns().dec;
  spi_ = params.spi;
  spi_be_ = __builtin_bswap32(params.spi);
  salt_ = params.salt;
  esn_ = params.esn;
  last_seq_ = 0;
  iv_mask_ = 0;
  if (!params.deterministic_iv && RAND_bytes(reinterpret_cast<unsigned char*>(&iv_mask_), 8) != 1)
    return false;  // no randomness: refuse the SA rather than risk nonce reuse
  seq_limit_ = params.esn ? UINT64_MAX : UINT32_MAX;
  anti_replay_ = params.replay_window_bits != 0;
  rx_top_ = 0;
  window_ = ReplayWindow(params.esn, anti_replay_ ? params.replay_window_bits : 0);
  stats_ = {};
  return true;
}

size_t EspSa::seal(IMB_MGR* mgr, uint8_t* esp, size_t payload_len, uint8_t next_header,
                   EspStatus* status) {
  if (last_seq_ >= seq_limit_) [[unlikely]] {
    ++stats_.seq_exhausted;
    if (status != nullptr) *status = EspStatus::kSeqExhausted;
    return 0;
  }
  const uint64_t seq = ++last_seq_;

  std::memcpy(esp, &spi_be_, 4);
  store_be32(esp + 4, static_cast<uint32_t>(seq));
  store_be64(esp + kEspHeaderLen, seq ^ iv_mask_);

  uint8_t* text = esp + kEspPayloadOffset;
  uint8_t* trailer = text + payload_len;
  const size_t pad = esp_pad_len(payload_len);
  // Always 3 bytes, branch-free: the trailer + ICV span pad + 18 >= 3 bytes, and whatever lies
  // past the padding is overwritten below (pad length, next header, ICV).
  std::memcpy(trailer, kPadBytes, sizeof(kPadBytes));
  trailer[pad] = static_cast<uint8_t>(pad);
  trailer[pad + 1] = next_header;
  const size_t text_len = payload_len + pad + 2;

  alignas(16) uint8_t nonce[16];
  make_nonce(nonce, salt_, esp + kEspHeaderLen);

  alignas(16) uint8_t esn_aad[12];
  const uint8_t* aad = esp;  // SPI || seq_lo, in place
  uint64_t aad_len = 8;
  if (esn_) {
    make_esn_aad(esn_aad, spi_be_, seq);
    aad = esn_aad;
    aad_len = 12;
  }

  if (key_.uses_vaes(text_len)) {
    vaes_gcm_enc(key_.vaes(), nonce, aad, aad_len, text, text, text_len, text + text_len);
  } else {
    gcm_context_data ctx;
    (mgr->*enc_)(key_.data(), &ctx, text, text, text_len, nonce, aad, aad_len, text + text_len,
                 kEspIcvLen);
  }

  ++stats_.packets;
  stats_.bytes += payload_len;
  if (status != nullptr) *status = EspStatus::kOk;
  return kEspPayloadOffset + text_len + kEspIcvLen;
}

EspStatus EspSa::open(IMB_MGR* mgr, uint8_t* esp, size_t esp_len, size_t* payload_len,
                      uint8_t* next_header) {
  if (esp_len < kEspMinLen) [[unlikely]] {
    ++stats_.truncated;
    return EspStatus::kTruncated;
  }
  uint32_t spi_be;
  std::memcpy(&spi_be, esp, 4);
  if (spi_be != spi_be_) [[unlikely]] {
    ++stats_.bad_spi;
    return EspStatus::kBadSpi;
  }

  uint64_t seq = load_be32(esp + 4);  // without ESN (the only mode with anti-replay off)
  if (anti_replay_) [[likely]] {
    switch (window_.check(static_cast<uint32_t>(seq), &seq)) {
      case ReplayWindow::Verdict::kOk:
        break;
      case ReplayWindow::Verdict::kReplay:
        ++stats_.replay;
        return EspStatus::kReplay;
      case ReplayWindow::Verdict::kTooOld:
        ++stats_.too_old;
        return EspStatus::kTooOld;
    }
  } else if (seq == 0) [[unlikely]] {  // never sent (RFC 4303 §3.3.3), window or not
    ++stats_.too_old;
    return EspStatus::kTooOld;
  }

  alignas(16) uint8_t nonce[16];
  make_nonce(nonce, salt_, esp + kEspHeaderLen);

  alignas(16) uint8_t esn_aad[12];
  const uint8_t* aad = esp;
  uint64_t aad_len = 8;
  if (esn_) {
    make_esn_aad(esn_aad, spi_be_, seq);
    aad = esn_aad;
    aad_len = 12;
  }

  uint8_t* text = esp + kEspPayloadOffset;
  const size_t text_len = esp_len - kEspPayloadOffset - kEspIcvLen;
  alignas(16) uint8_t icv[kEspIcvLen];
  if (key_.uses_vaes(text_len)) {
    vaes_gcm_dec(key_.vaes(), nonce, aad, aad_len, text, text, text_len, icv);
  } else {
    gcm_context_data ctx;
    (mgr->*dec_)(key_.data(), &ctx, text, text, text_len, nonce, aad, aad_len, icv, kEspIcvLen);
  }
  if (!tag_equal(icv, text + text_len)) [[unlikely]] {
    OPENSSL_cleanse(text, text_len);
    ++stats_.bad_icv;
    return EspStatus::kBadIcv;
  }

  // Authentic: only now may the window move.
  if (anti_replay_) [[likely]] {
    if (!window_.update(seq)) [[unlikely]] {
      ++stats_.replay;
      return EspStatus::kReplay;
    }
  } else if (seq > rx_top_) {
    rx_top_ = seq;
  }

  const size_t pad = text[text_len - 2];
  if (pad > text_len - 2) [[unlikely]] {
    ++stats_.bad_padding;
    return EspStatus::kBadPadding;
  }
  const uint8_t* pad_bytes = text + text_len - 2 - pad;
  uint8_t diff = 0;
  for (size_t i = 0; i < pad; ++i) diff |= static_cast<uint8_t>(pad_bytes[i] ^ (i + 1));
  if (diff != 0) [[unlikely]] {
    ++stats_.bad_padding;
    return EspStatus::kBadPadding;
  }

  const size_t len = text_len - 2 - pad;
  *payload_len = len;
  *next_header = text[text_len - 1];
  ++stats_.packets;
  stats_.bytes += len;
  return EspStatus::kOk;
}

}  // namespace vanish::crypto
