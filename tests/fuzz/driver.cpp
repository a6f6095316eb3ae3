// Stand-alone fuzz driver for builds without libFuzzer (gcc): runs the target's seeds, files
// given on the command line, and N deterministic mutations of them (bit flips, byte writes,
// truncation, insertion, splicing). The same targets link with -fsanitize=fuzzer under clang.
//   fuzz_x [--runs N] [--seed S] [--write-seeds DIR] [FILE...]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "tests/fuzz/fuzz_target.hpp"

namespace {

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  size_t below(size_t n) { return n ? size_t(next() % n) : 0; }
};

void mutate(Rng& r, std::vector<uint8_t>& v, const std::vector<std::vector<uint8_t>>& pool) {
  int n = 1 + int(r.below(4));
  for (int k = 0; k < n; k++) {
    switch (r.below(6)) {
      case 0:
        if (!v.empty()) v[r.below(v.size())] ^= uint8_t(1u << r.below(8));
        break;
      case 1:
        if (!v.empty()) v[r.below(v.size())] = uint8_t(r.next());
        break;
      case 2:
        if (!v.empty()) v.resize(r.below(v.size()));
        break;
      case 3: {
        size_t at = r.below(v.size() + 1), len = 1 + r.below(16);
        std::vector<uint8_t> ins(len);
        for (auto& b : ins) b = uint8_t(r.next());
        v.insert(v.begin() + long(at), ins.begin(), ins.end());
        break;
      }
      case 4: {  // interesting values at a random place
        static const uint8_t vals[] = {0, 1, 0x7f, 0x80, 0xff, 0x40, 0x45, 0x60, 0x11, 0x06};
        if (!v.empty()) v[r.below(v.size())] = vals[r.below(sizeof vals)];
        break;
      }
      default: {
        const auto& o = pool[r.below(pool.size())];
        if (o.empty() || v.empty()) break;
        size_t from = r.below(o.size()), at = r.below(v.size());
        size_t len = std::min(o.size() - from, v.size() - at);
        std::memcpy(v.data() + at, o.data() + from, len);
        break;
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  long runs = 20000;
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  std::vector<std::vector<uint8_t>> corpus = fuzz_seeds();
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::atol(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 0);
    } else if (a == "--write-seeds" && i + 1 < argc) {
      std::string dir = argv[++i];
      for (size_t k = 0; k < corpus.size(); k++) {
        std::ofstream f(dir + "/seed-" + std::to_string(k), std::ios::binary);
        f.write(reinterpret_cast<const char*>(corpus[k].data()), long(corpus[k].size()));
      }
      std::printf("wrote %zu seeds to %s\n", corpus.size(), dir.c_str());
      return 0;
    } else {
      std::ifstream f(a, std::ios::binary);
      if (!f) {
        std::fprintf(stderr, "cannot read %s\n", a.c_str());
        return 2;
      }
      corpus.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
  }
  if (corpus.empty()) corpus.push_back({});
  for (const auto& c : corpus) LLVMFuzzerTestOneInput(c.data(), c.size());
  Rng r{seed};
  for (long i = 0; i < runs; i++) {
    std::vector<uint8_t> v = corpus[r.below(corpus.size())];
    mutate(r, v, corpus);
    LLVMFuzzerTestOneInput(v.data(), v.size());
  }
  std::printf("fuzz: %zu seeds + %ld mutated inputs, no crash\n", corpus.size(), runs);
  return 0;
}
