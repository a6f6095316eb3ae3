#include "crypto/replay_window.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace vanish::crypto {

ReplayWindow::ReplayWindow(bool esn, uint32_t size_bits) : esn_(esn) {
  uint64_t bits = (uint64_t{size_bits} + 63) & ~uint64_t{63};
  bits = std::clamp<uint64_t>(bits, kMinBits, kMaxBits);
  size_bits_ = static_cast<uint32_t>(bits);
  // One word more than the window spans, so that the word holding the oldest in-window sequence
  // number and the word holding top never alias; rounded up to a power of two for masking.
  const uint64_t words = std::bit_ceil(bits / 64 + 1);
  word_mask_ = words - 1;
  bits_ = std::make_unique<uint64_t[]>(words);  // zeroed
}

ReplayWindow::Verdict ReplayWindow::check(uint32_t seq_lo, uint64_t* seq_out) const {
  uint64_t seq = seq_lo;
  if (esn_) {
    // RFC 4303 Appendix A2.2, with W = size_bits_, Tl/Th = low/high halves of top_.
    const uint32_t tl = static_cast<uint32_t>(top_);
    const uint32_t th = static_cast<uint32_t>(top_ >> 32);
    const uint32_t bottom = tl - size_bits_ + 1;  // Tl - W + 1, modulo 2^32
    uint32_t seq_hi = th;
    if (tl >= size_bits_ - 1) {
      // Case A: the window lies within one 2^32 subspace. A value below its bottom can only
      // be ahead, in the next subspace.
      if (seq_lo < bottom) {
        if (th == UINT32_MAX) {  // would pass 2^64 - 1: the sender must have rekeyed
          *seq_out = 0;
          return Verdict::kTooOld;
        }
        // Reading it as the next subspace means the sender jumped 2^32 - Tl + Seql ahead. A jump
        // of more than 2^31 (over two billion packets lost in a row) is not plausible: it is an
        // old packet of this subspace, so call it too old instead of failing its ICV later.
        if ((uint64_t{1} << 32) - tl + seq_lo > (uint64_t{1} << 31)) {
          *seq_out = (uint64_t{th} << 32) | seq_lo;
          return Verdict::kTooOld;
        }
        seq_hi = th + 1;
      }
    } else {
      // Case B: the window spans two subspaces. A value at or above the (wrapped) bottom
      // belongs to the previous subspace.
      if (seq_lo >= bottom) {
        if (th == 0) {  // would be negative: left of anything ever valid
          *seq_out = 0;
          return Verdict::kTooOld;
        }
        seq_hi = th - 1;
      }
    }
    seq = (uint64_t{seq_hi} << 32) | seq_lo;
  }
  *seq_out = seq;
  if (seq == 0) return Verdict::kTooOld;
  if (seq > top_) return Verdict::kOk;
  if (top_ - seq >= size_bits_) return Verdict::kTooOld;
  return test(seq) ? Verdict::kReplay : Verdict::kOk;
}

bool ReplayWindow::update(uint64_t seq) {
  if (seq == 0) return false;
  if (!esn_ && seq > UINT32_MAX) return false;
  if (seq > top_) {
    const uint64_t old_word = top_ >> 6;
    const uint64_t diff = (seq >> 6) - old_word;
    if (diff > word_mask_) {
      std::memset(bits_.get(), 0, (word_mask_ + 1) * sizeof(uint64_t));
    } else {
      for (uint64_t i = 1; i <= diff; ++i) bits_[(old_word + i) & word_mask_] = 0;
    }
    top_ = seq;
  } else {
    if (top_ - seq >= size_bits_) return false;
    if (test(seq)) return false;
  }
  bits_[word_of(seq)] |= uint64_t{1} << (seq & 63);
  return true;
}

}  // namespace vanish::crypto
