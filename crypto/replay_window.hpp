// RFC 4303 §3.4.3 anti-replay sliding window, with extended sequence numbers (ESN) inferred as in
// RFC 4303 Appendix A2, except that a value whose reading as the next subspace would be a jump
// of more than 2^31 is an old packet (kTooOld), not a candidate for ICV verification.
//
// The window holds the highest authenticated sequence number (top) and one bit for each of the
// `size_bits` sequence numbers top - size_bits + 1 .. top. Storage is a ring of uint64 words
// (RFC 6479 style): moving the right edge clears whole words, never shifts the bitmap.
//
// Two-phase use, so an unauthenticated packet can never move the window:
//   1. check(seq_lo, &seq)  -- before ICV verification; const.
//   2. update(seq)          -- only after the ICV verified.
// One thread owns a window (no atomics, no locks). check() and update() never allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace vanish::crypto {

class ReplayWindow {
 public:
  static constexpr uint32_t kMinBits = 64;
  static constexpr uint32_t kMaxBits = 1u << 20;
  static constexpr uint32_t kDefaultBits = 4096;

  // size_bits is rounded up to a multiple of 64 and clamped to [kMinBits, kMaxBits].
  // Allocates the bitmap (control-plane only). Starts empty: top() == 0.
  explicit ReplayWindow(bool esn = true, uint32_t size_bits = kDefaultBits);

  ReplayWindow(ReplayWindow&&) noexcept = default;
  ReplayWindow& operator=(ReplayWindow&&) noexcept = default;
  ReplayWindow(const ReplayWindow&) = delete;
  ReplayWindow& operator=(const ReplayWindow&) = delete;

  enum class Verdict : uint8_t {
    kOk,      // not seen yet and inside (or right of) the window
    kReplay,  // already received
    kTooOld,  // left of the window, or not a valid sequence number (0, or past 2^64 - 1)
  };

  // Infers the 64-bit sequence number for the received low 32 bits (with ESN; without it the
  // high bits are 0) and checks it against the window. Writes the inferred number to *seq_out
  // (always, whatever the verdict). Does not modify the window.
  Verdict check(uint32_t seq_lo, uint64_t* seq_out) const;

  // Marks `seq` (as returned by check) received, moving the right edge if seq > top().
  // Call only after the packet's ICV verified. Re-checks: returns false, changing nothing, if
  // seq is 0, already marked, or left of the window.
  bool update(uint64_t seq);

  // Highest authenticated sequence number; 0 before the first update().
  uint64_t top() const { return top_; }
  uint32_t size_bits() const { return size_bits_; }
  bool esn() const { return esn_; }

 private:
  bool test(uint64_t seq) const { return (bits_[word_of(seq)] >> (seq & 63)) & 1; }
  size_t word_of(uint64_t seq) const { return (seq >> 6) & word_mask_; }

  uint64_t top_ = 0;
  std::unique_ptr<uint64_t[]> bits_;  // ring of (word_mask_ + 1) words, a power of two
  uint64_t word_mask_ = 0;
  uint32_t size_bits_ = 0;
  bool esn_ = true;
};

}  // namespace vanish::crypto
