// ESP (RFC 4303) with AES-GCM (RFC 4106), transport-agnostic: it transforms the bytes from the ESP
// header to the ICV and knows nothing about IP, UDP or mbufs.
//
// Packet layout (offsets from the ESP header):
//   0  SPI (4, big-endian)
//   4  sequence number, low 32 bits (4, big-endian)
//   8  explicit IV = the full 64-bit sequence number (8, big-endian)
//  16  payload | padding 1,2,3.. | pad length (1) | next header (1)    <- encrypted
//   .. ICV (16)
// Nonce = 4-byte salt || explicit IV. AAD = SPI || seq_lo without ESN (8 bytes),
// SPI || seq_hi || seq_lo with ESN (12 bytes, RFC 4106 §5).
//
// AES-GCM runs on the SA key's backend (GcmKey::backend(): VAES/AVX2 or IPsec-MB, see aead.hpp);
// the IPsec-MB manager passed to seal()/open() is used only by the latter.
//
// One EspSa belongs to one thread (its sequence counter, replay window and counters are plain
// fields). seal() and open() do not allocate, lock or throw.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/aead.hpp"
#include "crypto/replay_window.hpp"

namespace vanish::crypto {

struct EspSaParams {
  uint32_t spi = 0;  // 0 is reserved (RFC 4303 §2.1) and rejected by init()
  AeadAlg alg = AeadAlg::kAes128Gcm;
  std::span<const uint8_t> key;   // 16, 24 or 32 bytes per alg; copied (expanded) by init()
  std::array<uint8_t, 4> salt{};  // RFC 4106 §8.1: the last 4 bytes of the keying material
  bool esn = true;                // 64-bit extended sequence numbers
  // Anti-replay window (see ReplayWindow for rounding). 0 turns the anti-replay service off
  // (RFC 4303 §3.4.3 lets the receiver choose): open() then accepts a sequence number seen
  // before. Only without ESN: ESN's high bits are inferred from the window (RFC 4303 App. A),
  // so init() refuses 0 together with esn.
  uint32_t replay_window_bits = ReplayWindow::kDefaultBits;
  // The explicit IV is the sequence number XOR a random 64-bit mask drawn by init(): unique per
  // packet within the SA (a bijection of the counter) and, with overwhelming probability, never
  // repeated by a later instance of the same static key (a restarted sender). Tests that need
  // byte-exact output set this to IV = sequence number.
  bool deterministic_iv = false;
  // AES-GCM implementation (aead.hpp); kAuto follows the CPU and VANISH_GCM. Tests and benchmarks
  // pin one; init() fails for kVaes on a CPU without it.
  GcmBackend backend = GcmBackend::kAuto;
};

constexpr size_t kEspHeaderLen = 8;  // SPI + sequence number
constexpr size_t kEspIvLen = 8;
constexpr size_t kEspIcvLen = 16;
constexpr size_t kEspTrailerMax = 3 + 2;  // padding this implementation adds + pad length + NH
constexpr size_t kEspPayloadOffset = kEspHeaderLen + kEspIvLen;    // 16
constexpr size_t kEspMinLen = kEspPayloadOffset + 2 + kEspIcvLen;  // 34: empty payload
constexpr uint8_t kEspNextHeaderNone = 59;                         // IPv6-NoNxt (dummy)

// Padding seal() adds after a payload of `payload_len` bytes: 0..3, so that
// payload + padding + 2 is a multiple of 4.
constexpr size_t esp_pad_len(size_t payload_len) {
  return (4 - ((payload_len + 2) & 3)) & 3;
}

// Bytes ESP adds around a payload of `payload_len` bytes (header + IV + padding + 2 + ICV).
constexpr size_t esp_overhead(size_t payload_len) {
  return kEspPayloadOffset + esp_pad_len(payload_len) + 2 + kEspIcvLen;
}

enum class EspStatus : uint8_t {
  kOk,
  kTruncated,     // shorter than kEspMinLen
  kBadSpi,        // SPI differs from this SA's
  kReplay,        // sequence number already received
  kTooOld,        // sequence number left of the replay window (or invalid, e.g. 0)
  kBadIcv,        // authentication failed
  kBadPadding,    // authenticated, but pad length or pad bytes are wrong
  kSeqExhausted,  // outbound: sequence space used up, the SA must be rekeyed
};

// Stable lower-case name for counters and logs, e.g. "bad_icv".
const char* esp_status_name(EspStatus status);

class EspSa {
 public:
  EspSa() = default;
  EspSa(EspSa&&) noexcept = default;
  EspSa& operator=(EspSa&&) noexcept = default;

  // (Re)initialises the SA: key, salt, SPI, ESN mode, an empty replay window, next_seq() == 1,
  // zeroed counters. Returns false (SA left unusable) for SPI 0, a key length that does not
  // fit the algorithm, or replay_window_bits 0 with esn. Control-plane only (allocates the
  // replay window).
  bool init(const EspSaParams& params);

  bool valid() const { return key_.valid(); }
  uint32_t spi() const { return spi_; }
  bool esn() const { return esn_; }
  bool anti_replay() const { return anti_replay_; }
  AeadAlg alg() const { return key_.alg(); }
  const char* backend() const { return key_.backend(); }

  // Outbound. `esp` points at where the ESP header goes; the payload (the bytes to protect) is
  // already at esp + kEspPayloadOffset, payload_len bytes long, and the buffer has room for
  // esp_pad_len(payload_len) + 2 + kEspIcvLen (at most kEspTrailerMax + kEspIcvLen) more bytes
  // after it; seal() writes nothing past that. Writes SPI, sequence number, IV, padding,
  // pad length and next header, encrypts in place and appends the ICV.
  // Returns the ESP length (header .. ICV) == payload_len + esp_overhead(payload_len) with
  // *status = kOk, or 0 with *status = kSeqExhausted once the sequence space is used up
  // (2^64 - 1 packets with ESN, 2^32 - 1 without): the SA must then be replaced, it never wraps.
  // `status` may be null. Requires valid().
  size_t seal(IMB_MGR* mgr, uint8_t* esp, size_t payload_len, uint8_t next_header,
              EspStatus* status);

  // Inbound. esp .. esp + esp_len spans ESP header .. ICV. Checks the SPI, checks the replay
  // window (without changing it; skipped when anti_replay() is off), verifies the ICV while
  // decrypting in place, only then marks the sequence number received, and finally checks the
  // padding. On kOk the payload is at esp + kEspPayloadOffset, *payload_len bytes, and *next_header
  // is set. On any other status *payload_len and *next_header are untouched and the packet must be
  // dropped; its bytes are untouched for kTruncated, kBadSpi, kReplay and kTooOld found before
  // decryption, wiped (the encrypted part zeroed) for kBadIcv, and decrypted for kBadPadding.
  // Requires valid().
  EspStatus open(IMB_MGR* mgr, uint8_t* esp, size_t esp_len, size_t* payload_len,
                 uint8_t* next_header);

  // The sequence number the next seal() will use. 0 (with ESN) or 2^32 (without) once exhausted.
  uint64_t next_seq() const { return last_seq_ + 1; }
  bool seq_exhausted() const { return last_seq_ >= seq_limit_; }
  // Moves the outbound counter (tests; resuming a counter). seq 0 marks the SA exhausted.
  void set_next_seq(uint64_t seq) { last_seq_ = seq - 1; }

  // Highest authenticated sequence number received (also tracked with anti-replay off).
  uint64_t replay_top() const { return anti_replay_ ? window_.top() : rx_top_; }
  const ReplayWindow& replay_window() const { return window_; }

  // Counters, owned by the thread that uses this SA (plain fields, no atomics).
  // packets/bytes count successful seal() and open() calls and their payload bytes.
  struct Stats {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t replay = 0;
    uint64_t too_old = 0;
    uint64_t bad_icv = 0;
    uint64_t bad_padding = 0;
    uint64_t truncated = 0;
    uint64_t bad_spi = 0;
    uint64_t seq_exhausted = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  // Hot fields first: the key (64-byte aligned) then what seal/open read per packet.
  GcmKey key_;
  aes_gcm_enc_dec_t IMB_MGR::*enc_ = nullptr;  // bound at init() for the key size
  aes_gcm_enc_dec_t IMB_MGR::*dec_ = nullptr;
  uint64_t last_seq_ = 0;  // last sequence number sent; 0 = none yet
  uint64_t iv_mask_ = 0;   // explicit IV = sequence number ^ iv_mask_
  uint64_t seq_limit_ = 0;
  uint32_t spi_ = 0;
  uint32_t spi_be_ = 0;  // spi_ in network byte order, as it sits in the header
  std::array<uint8_t, 4> salt_{};
  bool esn_ = true;
  bool anti_replay_ = true;
  uint64_t rx_top_ = 0;  // replay_top() when anti-replay is off
  ReplayWindow window_;
  Stats stats_;
};

}  // namespace vanish::crypto
