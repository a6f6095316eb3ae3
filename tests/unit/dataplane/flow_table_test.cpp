// FlowTable on its own: a reference model (std::unordered_map) under random inserts, erases and
// bulk lookups; keys forced into one home bucket so they overflow into the next buckets; a full
// table; positions reused only after a grace period when there are shared readers.
#include <gtest/gtest.h>
#include <rte_rcu_qsbr.h>

#include <random>
#include <set>
#include <unordered_map>
#include <vector>

#include "dataplane/flow_table.hpp"
#include "tests/unit/dataplane/fixture.hpp"

namespace dp = vanish::dp;

namespace {

// Key i: IPv4 (IPv4-mapped, tagged) unless i % 5 == 4, then IPv6 (compared in full).
dp::FlowKey key_of(uint32_t i, uint8_t zone = dp::kZoneOutbound) {
  dp::FlowKey k{};
  if (i % 5 == 4) {
    k.src[0] = 0xfd;
  } else {
    k.src[10] = k.src[11] = 0xff;
    k.dst[10] = k.dst[11] = 0xff;
  }
  std::memcpy(&k.src[12], &i, 4);
  k.dst[15] = 7;
  k.sport = uint16_t(i * 7919);
  k.dport = 80;
  k.proto = 6;
  k.zone = zone;
  return k;
}

// Keys 0.. whose home bucket (in a table of `capacity`) is `bucket`.
std::vector<dp::FlowKey> keys_homed_at(uint32_t capacity, uint32_t bucket, unsigned n) {
  uint32_t nb = 1;
  while (nb < (capacity + 3) / 4) nb <<= 1;
  std::vector<dp::FlowKey> out;
  for (uint32_t i = 0; out.size() < n; i++) {
    dp::FlowKey k = key_of(i);
    if ((dp::FlowTable::hash(k) & (nb - 1)) == bucket) out.push_back(k);
  }
  return out;
}

std::vector<int32_t> bulk(dp::FlowTable& t, const std::vector<dp::FlowKey>& keys) {
  std::vector<int32_t> out;
  for (size_t at = 0; at < keys.size(); at += dp::kBurstSize) {
    const dp::FlowKey* kp[dp::kBurstSize];
    int32_t idx[dp::kBurstSize];
    unsigned n = unsigned(std::min<size_t>(dp::kBurstSize, keys.size() - at));
    for (unsigned i = 0; i < n; i++) kp[i] = &keys[at + i];
    t.lookup_bulk(kp, n, idx);
    out.insert(out.end(), idx, idx + n);
  }
  return out;
}

}  // namespace

TEST(FlowTable, MatchesAReferenceModelUnderRandomOperations) {
  dp::FlowTable t("ft_model", 1000, SOCKET_ID_ANY);
  ASSERT_TRUE(t.ok());
  std::unordered_map<uint32_t, int32_t> model;  // key id -> position
  std::mt19937 rng(12345);
  unsigned full = 0;
  for (int op = 0; op < 60000; op++) {
    uint32_t id = rng() % 3000;
    dp::FlowKey k = key_of(id);
    auto it = model.find(id);
    switch (rng() % 3) {
      case 0: {  // insert
        int32_t p = t.insert(k);
        if (it != model.end()) {
          ASSERT_EQ(p, it->second) << "inserting a present key returns its position";
        } else if (model.size() == t.capacity()) {
          ASSERT_EQ(p, -1) << "full";
          full++;
        } else {
          ASSERT_GE(p, 0);
          ASSERT_LT(uint32_t(p), t.capacity());
          model[id] = p;
        }
        break;
      }
      case 1:  // erase
        ASSERT_EQ(t.erase(k), it != model.end());
        if (it != model.end()) model.erase(it);
        break;
      default:
        ASSERT_EQ(t.lookup(k), it == model.end() ? -1 : it->second);
    }
    ASSERT_EQ(t.size(), model.size());
  }
  EXPECT_GT(full, 0u) << "the walk reached a full table";
  // Bulk lookups agree with the model for present and absent keys; positions are distinct.
  std::vector<dp::FlowKey> keys;
  for (uint32_t id = 0; id < 3000; id++) keys.push_back(key_of(id));
  std::vector<int32_t> got = bulk(t, keys);
  std::set<int32_t> seen;
  for (uint32_t id = 0; id < 3000; id++) {
    auto it = model.find(id);
    ASSERT_EQ(got[id], it == model.end() ? -1 : it->second) << "key " << id;
    if (got[id] >= 0) {
      EXPECT_TRUE(seen.insert(got[id]).second) << "position used twice";
    }
  }
  // key_at / for_each see exactly the live keys.
  size_t visited = 0;
  t.for_each([&](const dp::FlowKey& k, const dp::FlowEntry&) {
    visited++;
    EXPECT_GE(t.lookup(k), 0);
  });
  EXPECT_EQ(visited, model.size());
  size_t live = 0;
  for (uint32_t p = 0; p < t.positions(); p++) {
    dp::FlowKey k;
    if (t.key_at(p, &k)) {
      live++;
      EXPECT_EQ(t.lookup(k), int32_t(p));
    }
  }
  EXPECT_EQ(live, model.size());
}

TEST(FlowTable, KeysThatOverflowTheirHomeBucketAreFoundAndRemoved) {
  // 20 keys with one home bucket: 7 fit, 13 go to the next buckets.
  constexpr uint32_t kCap = 256;
  std::vector<dp::FlowKey> keys = keys_homed_at(kCap, 5, 20);
  // Keys homed at the next bucket, inserted after: they find their home full of overflow.
  std::vector<dp::FlowKey> next = keys_homed_at(kCap, 6, 4);
  dp::FlowTable t("ft_overflow", kCap, SOCKET_ID_ANY);
  ASSERT_TRUE(t.ok());
  std::vector<int32_t> pos;
  for (auto& k : keys) pos.push_back(t.insert(k));
  for (auto& k : next) pos.push_back(t.insert(k));
  std::vector<dp::FlowKey> all = keys;
  all.insert(all.end(), next.begin(), next.end());
  for (size_t i = 0; i < all.size(); i++) {
    ASSERT_GE(pos[i], 0);
    EXPECT_EQ(t.lookup(all[i]), pos[i]) << i;
  }
  EXPECT_EQ(bulk(t, all), pos);
  // Erase the ones in the home bucket: the overflowed ones stay reachable.
  for (int i = 0; i < 7; i++) EXPECT_TRUE(t.erase(keys[i]));
  for (int i = 0; i < 7; i++) EXPECT_EQ(t.lookup(keys[i]), -1);
  for (size_t i = 7; i < all.size(); i++) EXPECT_EQ(t.lookup(all[i]), pos[i]) << i;
  // Re-inserting fills the holes; everything is still found once.
  for (int i = 0; i < 7; i++) pos[i] = t.insert(keys[i]);
  std::set<int32_t> distinct(pos.begin(), pos.end());
  EXPECT_EQ(distinct.size(), pos.size());
  EXPECT_EQ(bulk(t, all), pos);
  // Erase everything: nothing is left, and an absent key homed there is a miss.
  for (auto& k : all) EXPECT_TRUE(t.erase(k));
  EXPECT_EQ(t.size(), 0u);
  for (auto& k : all) EXPECT_EQ(t.lookup(k), -1);
  EXPECT_FALSE(t.erase(all[0]));
}

TEST(FlowTable, AFullTableRefusesNewKeysAndTakesThemAfterAnErase) {
  dp::FlowTable t("ft_full", 64, SOCKET_ID_ANY);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t.capacity(), 64u);
  for (uint32_t i = 0; i < 64; i++) ASSERT_GE(t.insert(key_of(i)), 0);
  EXPECT_EQ(t.insert(key_of(1000)), -1);
  EXPECT_EQ(t.insert(key_of(3)), t.lookup(key_of(3))) << "a present key is not a new one";
  int32_t p = t.lookup(key_of(10));
  EXPECT_TRUE(t.erase(key_of(10)));
  EXPECT_EQ(t.insert(key_of(1000)), p) << "the freed position is reused (no readers)";
}

TEST(FlowTable, SameKeyInAnotherZoneIsAnotherFlow) {
  dp::FlowTable t("ft_zone", 64, SOCKET_ID_ANY);
  int32_t a = t.insert(key_of(1, dp::kZoneOutbound));
  int32_t b = t.insert(key_of(1, dp::kZoneInbound));
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_NE(a, b);
  EXPECT_TRUE(t.erase(key_of(1, dp::kZoneOutbound)));
  EXPECT_EQ(t.lookup(key_of(1, dp::kZoneInbound)), b);
}

TEST(FlowTable, SharedReadersDelayReuseInBatches) {
  vanish::test::TestQsbr qsbr(2, 1);
  ASSERT_TRUE(qsbr.ok());
  rte_rcu_qsbr* v = qsbr.get();
  {
    dp::FlowTable t("ft_rcu", 300, SOCKET_ID_ANY, v);
    ASSERT_TRUE(t.ok());
    for (uint32_t i = 0; i < 300; i++) ASSERT_GE(t.insert(key_of(i)), 0);
    // 200 erases: several batches (64 each and a partial one), none reusable yet.
    for (uint32_t i = 0; i < 200; i++) ASSERT_TRUE(t.erase(key_of(i)));
    EXPECT_EQ(t.lookup_shared(key_of(5)), -1);
    EXPECT_EQ(t.lookup_shared(key_of(250)), t.lookup(key_of(250)));
    EXPECT_EQ(t.insert(key_of(1000)), -1) << "reader 1 may still hold every erased position";
    rte_rcu_qsbr_quiescent(v, 1);
    std::set<int32_t> got;
    for (uint32_t i = 0; i < 200; i++) {
      int32_t p = t.insert(key_of(1000 + i));
      ASSERT_GE(p, 0) << i;
      EXPECT_TRUE(got.insert(p).second);
    }
    EXPECT_EQ(t.insert(key_of(5000)), -1);
    EXPECT_EQ(t.size(), 300u);
  }
}

TEST(FlowTable, Ipv4KeysCarryATagAndIpv6KeysCompareInFull) {
  dp::FlowKey v4 = key_of(42);  // 42 % 5 != 4: IPv4
  dp::FlowTag t;
  ASSERT_TRUE(dp::FlowTag::of(v4, &t));
  EXPECT_NE(t.rest & dp::FlowTag::kValid, 0u) << "a valid tag is never zero";
  // Any byte of the key changes the tag, except for keys that have none.
  for (size_t byte = 12; byte < sizeof(dp::FlowKey); byte++) {
    if (byte >= 16 && byte < 28) continue;  // dst bytes 0..11: the IPv4-mapped prefix
    dp::FlowKey k = v4;
    reinterpret_cast<uint8_t*>(&k)[byte] ^= 0x01;
    dp::FlowTag u;
    if (dp::FlowTag::of(k, &u)) {
      EXPECT_FALSE(u == t) << "byte " << byte;
    }
  }
  dp::FlowKey v6 = v4;
  v6.src[10] = 0;  // no longer IPv4-mapped
  EXPECT_FALSE(dp::FlowTag::of(v6, &t));

  dp::FlowTable tb("ft_tag", 256, SOCKET_ID_ANY);
  int32_t p4 = tb.insert(v4), p6 = tb.insert(v6);
  ASSERT_GE(p4, 0);
  ASSERT_GE(p6, 0);
  EXPECT_NE(tb.entry(p4).tag.rest, 0u);
  EXPECT_EQ(tb.entry(p6).tag.rest, 0u);
  EXPECT_EQ(bulk(tb, {v4, v6}), (std::vector<int32_t>{p4, p6}));
  // reset() keeps the tag; assigning a whole entry clears it, and lookups still find the key
  // (full compare), only slower.
  tb.entry(p4).packets = 9;
  dp::FlowEntry& e = tb.reset(p4);
  EXPECT_EQ(e.packets, 0u);
  EXPECT_NE(e.tag.rest, 0u);
  tb.entry(p4) = dp::FlowEntry{};
  EXPECT_EQ(bulk(tb, {v4, v6}), (std::vector<int32_t>{p4, p6}));
  // An IPv4 packet key never matches an IPv6 entry (and the reverse) by tag.
  dp::FlowKey other = key_of(43);  // IPv4, not in the table
  EXPECT_EQ(bulk(tb, {other}), (std::vector<int32_t>{-1}));
}

// last_seen is a 32-bit stamp of TSC >> kSeenShift: idle_ticks() must never read longer than the
// real idle time (a flow would age early, or show an idle time beyond its age), must fall short by
// less than two units, and must survive the stamp's wrap.
TEST(FlowEntry, IdleTicksIsALowerBoundWithinTwoUnitsAcrossTheWrap) {
  constexpr uint64_t unit = uint64_t(1) << dp::FlowEntry::kSeenShift;
  const uint64_t wrap = uint64_t(1) << (32 + dp::FlowEntry::kSeenShift);
  std::mt19937_64 rng(7);
  dp::FlowEntry e{};
  for (int i = 0; i < 20000; i++) {
    // Last packets anywhere, including just before the stamp wraps; idle times from 0 to hours.
    const uint64_t last = i % 4 == 0 ? wrap - 1 - rng() % (4 * unit) : rng() % (wrap * 8);
    const uint64_t idle = i % 3 == 0 ? rng() % (8 * unit) : rng() % (uint64_t(1) << 44);
    e.touch(last);
    const uint64_t got = e.idle_ticks(last + idle);
    ASSERT_LE(got, idle) << "last " << last << " idle " << idle;
    ASSERT_LT(idle - got, 2 * unit) << "last " << last << " idle " << idle;
  }
  e.touch(5 * unit + 3);
  EXPECT_EQ(e.idle_ticks(5 * unit + 3), 0u) << "no time has passed";
  EXPECT_EQ(e.idle_ticks(6 * unit), 0u) << "less than a unit can read as none";
}

// Aging goes by idle_ticks(): a flow past the idle timeout goes, one short of it by more than two
// units stays.
TEST(FlowTable, AgingRemovesOnlyFlowsIdleLongerThanTheTimeout) {
  constexpr uint64_t unit = uint64_t(1) << dp::FlowEntry::kSeenShift;
  dp::FlowTable t("ft_age", 64, SOCKET_ID_ANY);
  ASSERT_TRUE(t.ok());
  const uint64_t now = uint64_t(1) << 45, timeout = 1000 * unit;
  const int32_t old_flow = t.insert(key_of(1)), recent = t.insert(key_of(2));
  ASSERT_GE(old_flow, 0);
  ASSERT_GE(recent, 0);
  t.entry(old_flow).touch(now - timeout - 3 * unit);
  t.entry(recent).touch(now - timeout + 3 * unit);
  EXPECT_EQ(t.age(now, timeout, 64), 1u);
  EXPECT_EQ(t.lookup(key_of(1)), -1);
  EXPECT_EQ(t.lookup(key_of(2)), recent);
}
