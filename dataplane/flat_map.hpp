// FlatMap: an immutable-after-build open-addressing hash map for data-plane lookups.
// Contract: built once by the control thread (insert/emplace), then only read (find) by any
// number of workers concurrently. Power-of-two capacity at <= 50% load, linear probing; a lookup
// touches one or two cache lines. Keys must be trivially copyable and equality comparable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace vanish {

template <typename K, typename V, typename Hash = std::hash<K>>
class FlatMap {
 public:
  FlatMap() { rebuild(8); }
  explicit FlatMap(size_t expected) { rebuild(capacity_for(expected)); }

  // Inserts or replaces. Returns false if the key was already present (value is replaced).
  bool insert(const K& k, const V& v) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    size_t i = index(k);
    while (slots_[i].used) {
      if (slots_[i].key == k) {
        slots_[i].value = v;
        return false;
      }
      i = (i + 1) & mask_;
    }
    slots_[i].used = true;
    slots_[i].key = k;
    slots_[i].value = v;
    size_++;
    return true;
  }

  const V* find(const K& k) const {
    size_t i = index(k);
    while (slots_[i].used) {
      if (slots_[i].key == k) return &slots_[i].value;
      i = (i + 1) & mask_;
    }
    return nullptr;
  }
  V* find(const K& k) { return const_cast<V*>(static_cast<const FlatMap*>(this)->find(k)); }

  // Hint the cache about the slot of k (used in two-phase burst loops).
  void prefetch(const K& k) const { __builtin_prefetch(&slots_[index(k)]); }

  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

  template <typename F>
  void for_each(F&& f) const {
    for (const auto& s : slots_)
      if (s.used) f(s.key, s.value);
  }

 private:
  struct Slot {
    K key{};
    V value{};
    bool used = false;
  };
  static size_t capacity_for(size_t n) {
    size_t c = 8;
    while (c < n * 2) c <<= 1;
    return c;
  }
  size_t index(const K& k) const { return Hash{}(k)&mask_; }
  void rebuild(size_t cap) {
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    rebuild(old.size() * 2);
    for (auto& s : old)
      if (s.used) insert(s.key, s.value);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Hash for small integer keys (SPIs, ids): a multiplicative mix so sequential values spread.
struct IntHash {
  size_t operator()(uint32_t v) const {
    uint64_t h = uint64_t(v) * 0x9E3779B97F4A7C15ull;
    return size_t(h ^ (h >> 32));
  }
};

}  // namespace vanish
