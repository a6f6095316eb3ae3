// RFC 4303 anti-replay window with ESN inference (Appendix A2).
#include "crypto/replay_window.hpp"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace vanish::crypto {
namespace {

using Verdict = ReplayWindow::Verdict;

// check() then, if OK, update(): what a receiver does for an authentic packet.
Verdict accept(ReplayWindow& w, uint32_t seq_lo, uint64_t* seq_out = nullptr) {
  uint64_t seq = 0;
  const Verdict v = w.check(seq_lo, &seq);
  if (seq_out != nullptr) *seq_out = seq;
  if (v == Verdict::kOk) {
    EXPECT_TRUE(w.update(seq));
  }
  return v;
}

TEST(CryptoReplayWindow, SizeRounding) {
  EXPECT_EQ(ReplayWindow().size_bits(), 4096u);
  EXPECT_TRUE(ReplayWindow().esn());
  EXPECT_EQ(ReplayWindow(false, 1024).size_bits(), 1024u);
  EXPECT_EQ(ReplayWindow(false, 1000).size_bits(), 1024u);
  EXPECT_EQ(ReplayWindow(false, 1).size_bits(), ReplayWindow::kMinBits);
  EXPECT_EQ(ReplayWindow(false, UINT32_MAX).size_bits(), ReplayWindow::kMaxBits);
}

TEST(CryptoReplayWindow, InOrderAndDuplicates) {
  for (bool esn : {false, true}) {
    ReplayWindow w(esn, 1024);
    EXPECT_EQ(w.top(), 0u);
    for (uint32_t s = 1; s <= 5000; ++s) {
      uint64_t seq;
      ASSERT_EQ(accept(w, s, &seq), Verdict::kOk) << s;
      EXPECT_EQ(seq, s);
      EXPECT_EQ(w.top(), s);
      ASSERT_EQ(w.check(s, &seq), Verdict::kReplay) << s;
      EXPECT_FALSE(w.update(s));
    }
    // Everything inside the window is a replay, everything left of it too old.
    uint64_t seq;
    for (uint32_t s = 5000 - 1023; s <= 5000; ++s) ASSERT_EQ(w.check(s, &seq), Verdict::kReplay);
    for (uint32_t s = 1; s < 5000 - 1023; ++s) {
      // With ESN, RFC 4303 A2.2 would read a low half left of the window as the next 2^32
      // subspace; a forward jump of more than 2^31 is implausible, so it is too old as well.
      ASSERT_EQ(w.check(s, &seq), Verdict::kTooOld);
    }
  }
}

TEST(CryptoReplayWindow, ZeroIsNeverValid) {
  ReplayWindow plain(false, 1024);
  uint64_t seq;
  EXPECT_EQ(plain.check(0, &seq), Verdict::kTooOld);
  EXPECT_FALSE(plain.update(0));
  ReplayWindow esn(true, 1024);
  EXPECT_EQ(esn.check(0, &seq), Verdict::kTooOld);
  EXPECT_EQ(seq, 0u);
  EXPECT_FALSE(esn.update(0));
}

TEST(CryptoReplayWindow, ReorderedWithinWindow) {
  ReplayWindow w(true, 1024);
  // Odd numbers first, then the evens in reverse: all accepted once.
  for (uint32_t s = 1; s <= 1023; s += 2) ASSERT_EQ(accept(w, s), Verdict::kOk);
  EXPECT_EQ(w.top(), 1023u);
  for (uint32_t s = 1022; s >= 2; s -= 2) ASSERT_EQ(accept(w, s), Verdict::kOk) << s;
  for (uint32_t s = 1; s <= 1023; ++s) {
    uint64_t seq;
    ASSERT_EQ(w.check(s, &seq), Verdict::kReplay) << s;
  }
}

TEST(CryptoReplayWindow, EdgeExactly) {
  for (uint32_t size : {1024u, 4096u, 1088u}) {
    ReplayWindow w(false, size);
    const uint32_t top = 100000;
    ASSERT_EQ(accept(w, top), Verdict::kOk);
    uint64_t seq;
    // The window is top - size + 1 .. top: exactly `size` numbers.
    EXPECT_EQ(w.check(top - size + 1, &seq), Verdict::kOk) << size;
    EXPECT_EQ(w.check(top - size, &seq), Verdict::kTooOld) << size;
    EXPECT_FALSE(w.update(top - size));
    EXPECT_TRUE(w.update(top - size + 1));
    EXPECT_EQ(w.check(top - size + 1, &seq), Verdict::kReplay);
    // Moving the edge by one pushes the oldest out.
    ASSERT_EQ(accept(w, top + 1), Verdict::kOk);
    EXPECT_EQ(w.check(top - size + 1, &seq), Verdict::kTooOld);
    EXPECT_EQ(w.check(top - size + 2, &seq), Verdict::kOk);
  }
}

TEST(CryptoReplayWindow, BigJumpsClearStaleBits) {
  ReplayWindow w(false, 1024);
  for (uint32_t s = 1; s <= 2048; ++s) ASSERT_EQ(accept(w, s), Verdict::kOk);
  uint64_t seq;
  // Jump by less than a window: numbers between the old and the new top are fresh.
  ASSERT_EQ(accept(w, 2048 + 500), Verdict::kOk);
  for (uint32_t s = 2049; s < 2548; ++s) ASSERT_EQ(w.check(s, &seq), Verdict::kOk) << s;
  for (uint32_t s = 2548 - 1023; s <= 2048; ++s) ASSERT_EQ(w.check(s, &seq), Verdict::kReplay);
  // Jumps of exactly a window, of the whole bitmap ring and far beyond.
  for (uint32_t jump : {1024u, 2048u, 4096u, 8192u, 1000000u, 123457u}) {
    const uint32_t base = static_cast<uint32_t>(w.top());
    ASSERT_EQ(accept(w, base + jump), Verdict::kOk);
    for (uint32_t back = 1; back < 1024; ++back) {
      const uint32_t s = base + jump - back;
      const Verdict expect = (s == base) ? Verdict::kReplay : Verdict::kOk;
      ASSERT_EQ(w.check(s, &seq), expect) << "jump " << jump << " back " << back;
    }
    ASSERT_EQ(w.check(base + jump - 1024, &seq), Verdict::kTooOld);
  }
}

// Randomised model check against a std::set of everything accepted.
TEST(CryptoReplayWindow, MatchesModel) {
  for (bool esn : {false, true}) {
    ReplayWindow w(esn, 1024);
    std::set<uint64_t> seen;
    uint64_t top = 0;
    uint32_t x = 12345;
    for (int i = 0; i < 200000; ++i) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      // Mostly near the top, sometimes far ahead or far back.
      int64_t delta;
      switch (x % 16) {
        case 0:
          delta = static_cast<int64_t>(x % 5000);
          break;
        case 1:
          delta = -static_cast<int64_t>(x % 3000);
          break;
        default:
          delta = static_cast<int64_t>(x % 80) - 60;
      }
      const int64_t s = static_cast<int64_t>(top) + delta;
      if (s <= 0) continue;
      const uint64_t seq = static_cast<uint64_t>(s);
      Verdict expect;
      uint64_t expect_seq = seq;
      if (seq > top) {
        expect = Verdict::kOk;
      } else if (top - seq >= 1024) {
        // Left of the window: too old (with ESN too, see InOrderAndDuplicates).
        expect = Verdict::kTooOld;
      } else {
        expect = seen.count(seq) ? Verdict::kReplay : Verdict::kOk;
      }
      uint64_t got_seq;
      ASSERT_EQ(w.check(static_cast<uint32_t>(seq), &got_seq), expect) << i << " seq " << seq;
      ASSERT_EQ(got_seq, expect_seq);
      if (expect == Verdict::kOk && expect_seq == seq &&
          (x & 0x100) != 0) {  // some packets fail their ICV
        ASSERT_TRUE(w.update(seq));
        seen.insert(seq);
        top = std::max(top, seq);
      }
      ASSERT_EQ(w.top(), top);
    }
  }
}

// A packet whose ICV fails is checked but never updated: the window must not move.
TEST(CryptoReplayWindow, CheckDoesNotModify) {
  ReplayWindow w(true, 1024);
  ASSERT_EQ(accept(w, 10), Verdict::kOk);
  uint64_t seq;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(w.check(1u << 30, &seq), Verdict::kOk);  // far ahead, forged
    EXPECT_EQ(w.check(9, &seq), Verdict::kOk);
  }
  EXPECT_EQ(w.top(), 10u);
  EXPECT_EQ(w.check(9, &seq), Verdict::kOk);
  EXPECT_EQ(w.check(10, &seq), Verdict::kReplay);
  // The forged far-ahead packet did not push 9 out of the window.
  EXPECT_EQ(accept(w, 9), Verdict::kOk);
}

TEST(CryptoReplayWindow, EsnWrapOfLow32Bits) {
  ReplayWindow w(true, 4096);
  // Bring top to just below 2^32 by big (authentic) jumps of less than 2^31.
  ASSERT_EQ(accept(w, 0x80000000u), Verdict::kOk);
  ASSERT_EQ(accept(w, 0xFFFFFF00u), Verdict::kOk);
  for (uint32_t s = 0xFFFFFF01u; s != 0; ++s) ASSERT_EQ(accept(w, s), Verdict::kOk);
  EXPECT_EQ(w.top(), 0xFFFFFFFFull);
  // Small low halves now mean the next 2^32 subspace.
  uint64_t seq;
  ASSERT_EQ(w.check(0, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0x100000000ull);
  ASSERT_EQ(w.check(5, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0x100000005ull);
  ASSERT_EQ(accept(w, 0, &seq), Verdict::kOk);
  EXPECT_EQ(w.top(), 0x100000000ull);
  ASSERT_EQ(accept(w, 3), Verdict::kOk);
  EXPECT_EQ(w.top(), 0x100000003ull);
  // Case B of A2.2: a late packet from the previous subspace, still in the window.
  ASSERT_EQ(w.check(0xFFFFFFF0u, &seq), Verdict::kReplay);
  EXPECT_EQ(seq, 0xFFFFFFF0ull);
  ASSERT_EQ(w.check(0xFFFFF800u, &seq), Verdict::kOk);  // in the window, not seen
  EXPECT_EQ(seq, 0xFFFFF800ull);
  ASSERT_EQ(accept(w, 2), Verdict::kOk);  // reordered in the new subspace
  ASSERT_EQ(w.check(2, &seq), Verdict::kReplay);
  EXPECT_EQ(seq, 0x100000002ull);
  // Window bottom is top - 4095 = 0xFFFFF004 (in the previous subspace).
  EXPECT_EQ(w.check(0xFFFFF004u, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0xFFFFF004ull);
  // Just below the bottom reads as the current subspace, far ahead (only the ICV can tell).
  EXPECT_EQ(w.check(0xFFFFF003u, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0x1FFFFF003ull);
  // Once top is a window past the subspace start (case A), large low halves are ahead.
  ASSERT_EQ(accept(w, 100000), Verdict::kOk);
  ASSERT_EQ(w.check(0xFFFFFFF0u, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0x1FFFFFFF0ull);
}

TEST(CryptoReplayWindow, EsnCaseAAhead) {
  ReplayWindow w(true, 1024);
  ASSERT_EQ(accept(w, 0xC0000000u), Verdict::kOk);
  uint64_t seq;
  // Below the window bottom means the next subspace when that is a jump of at most 2^31.
  ASSERT_EQ(w.check(0x10, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0x100000010ull);
  ASSERT_EQ(w.check(0x40000000u, &seq), Verdict::kOk);  // exactly 2^31 ahead
  EXPECT_EQ(seq, 0x140000000ull);
  ASSERT_EQ(w.check(0x40000001u, &seq), Verdict::kTooOld);  // more: an old packet of this one
  EXPECT_EQ(seq, 0x40000001ull);
  ASSERT_EQ(w.check(0xC0000000u - 1023, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0xC0000000ull - 1023);
  ASSERT_EQ(w.check(0xC0000000u - 1024, &seq), Verdict::kTooOld);  // just left of the window
  EXPECT_EQ(seq, 0xC0000000ull - 1024);
}

TEST(CryptoReplayWindow, EsnStartsInSubspaceZero) {
  ReplayWindow w(true, 1024);
  uint64_t seq;
  // With top = 0 (case B, high half 0) nothing can be in a previous subspace.
  EXPECT_EQ(w.check(0xFFFFFFFFu, &seq), Verdict::kTooOld);
  EXPECT_EQ(w.check(0xFFFFFC01u, &seq), Verdict::kTooOld);
  EXPECT_EQ(w.check(0xFFFFFC00u, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0xFFFFFC00ull);
  EXPECT_EQ(w.check(1, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 1u);
}

TEST(CryptoReplayWindow, NonEsnHasNoHighBits) {
  ReplayWindow w(false, 1024);
  ASSERT_EQ(accept(w, 0xFFFFFFF0u), Verdict::kOk);
  uint64_t seq;
  // No wrap without ESN: a small number is simply too old.
  EXPECT_EQ(w.check(5, &seq), Verdict::kTooOld);
  EXPECT_EQ(seq, 5u);
  ASSERT_EQ(accept(w, 0xFFFFFFFFu), Verdict::kOk);
  EXPECT_EQ(w.top(), 0xFFFFFFFFull);
  EXPECT_FALSE(w.update(0x100000000ull));
}

TEST(CryptoReplayWindow, EsnEndOfSequenceSpace) {
  ReplayWindow w(true, 1024);
  // Walk top to the last subspace by authentic jumps of less than 2^31 each.
  uint64_t seq;
  uint64_t target = 0xFFFFFFFF00000010ull;
  // Drive it directly: update() accepts any authentic number ahead.
  ASSERT_TRUE(w.update(target));
  ASSERT_EQ(w.check(0x20, &seq), Verdict::kOk);
  EXPECT_EQ(seq, 0xFFFFFFFF00000020ull);
  ASSERT_TRUE(w.update(0xFFFFFFFF80000000ull));
  // A low half below the bottom would be 2^64 or more: impossible, rejected.
  EXPECT_EQ(w.check(0x10, &seq), Verdict::kTooOld);
  EXPECT_EQ(w.check(0xFFFFFFFFu, &seq), Verdict::kOk);
  EXPECT_EQ(seq, UINT64_MAX);
  EXPECT_TRUE(w.update(UINT64_MAX));
  EXPECT_EQ(w.check(0xFFFFFFFFu, &seq), Verdict::kReplay);
}

}  // namespace
}  // namespace vanish::crypto
