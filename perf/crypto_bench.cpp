// vanish-crypto-bench: the single-core "crypto limit" of the ESP transform (crypto/esp.hpp).
//
// For AES-128-GCM and AES-256-GCM (ESN on, 16-byte ICV) and payloads of 64, 256, 512, 1024,
// 1420 bytes and IMIX, it runs EspSa::seal, then EspSa::open, in a loop for about
// `seconds` (default 1) each, over a burst of 32 buffers that stay in cache, and prints
// ns/packet, Mpps and Gbps, then one JSON line per measurement:
//   {"bench":"crypto","op":"seal","alg":"aes128gcm","size":64,"backend":"vaes-avx2",
//    "default":true,"mpps":..,"gbps":..,"ns_per_pkt":..,"mean_mpps":..}
// "backend" is the AES-GCM implementation (GcmBackend, crypto/aead.hpp); "default" marks the
// one vanishd uses on this machine (CPU + VANISH_GCM). With two backends each point is measured
// on both, back to back, followed by a ratio line (vaes-avx2 speed / ipsec-mb speed); where the
// default is "hybrid" (vaes-avx2 below kGcmHybridSplit bytes, IPsec-MB above), it is measured
// as a third.
// Each run is cut into 10 slices; mpps/gbps/ns_per_pkt are the best slice (see Meter),
// mean_mpps the whole run.
// Gbps counts payload bits (the bytes handed to seal / returned by open), not ESP overhead.
// IMIX is the simple 7:4:1 mix of 64, 576 and 1420-byte payloads ("size":"imix").
// open is timed alone: each burst is sealed (untimed) right before it is opened, so every open
// verifies a fresh, in-order packet and moves the replay window like real traffic.
//
// Usage: vanish-crypto-bench [seconds] [--backend both|default|ipsecmb|vaes|hybrid]
//   both (the default when the CPU has VAES): ipsec-mb and vaes-avx2 (and hybrid when that is
//   the default); default: only the backend vanishd would use.
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "crypto/esp.hpp"

namespace {

using vanish::crypto::AeadAlg;
using vanish::crypto::EspSa;
using vanish::crypto::EspSaParams;
using vanish::crypto::EspStatus;
using vanish::crypto::GcmBackend;

using Clock = std::chrono::steady_clock;

constexpr size_t kBurst = 32;
constexpr size_t kBufSize = 2048;
constexpr uint8_t kNextHeader = 17;

struct Size {
  const char* name;  // JSON value of "size" (a number, or "imix" quoted)
  std::vector<size_t> lens;
};

struct Result {
  double ns_per_pkt;
  double mpps;
  double gbps;
};

// Splits a run into kSlices equal slices of timed work. The reported figure is the best slice:
// on a shared machine a slice that lost the core to another process only ever looks slower, so
// the fastest slice is the closest estimate of the limit. The mean over all slices is kept too.
constexpr int kSlices = 10;

struct Meter {
  uint64_t packets = 0, bytes = 0;
  double seconds = 0;
  Result best{1e30, 0, 0};

  void add_slice(uint64_t slice_packets, uint64_t slice_bytes, double slice_seconds) {
    const Result r = make(slice_packets, slice_bytes, slice_seconds);
    if (r.ns_per_pkt < best.ns_per_pkt) best = r;
    packets += slice_packets;
    bytes += slice_bytes;
    seconds += slice_seconds;
  }
  Result mean() const { return make(packets, bytes, seconds); }

  static Result make(uint64_t packets, uint64_t bytes, double seconds) {
    Result r;
    r.ns_per_pkt = seconds * 1e9 / static_cast<double>(packets);
    r.mpps = static_cast<double>(packets) / seconds / 1e6;
    r.gbps = static_cast<double>(bytes) * 8 / seconds / 1e9;
    return r;
  }
};

struct Buffers {
  Buffers() : mem(static_cast<uint8_t*>(std::aligned_alloc(64, kBurst * kBufSize))) {
    for (size_t i = 0; i < kBurst * kBufSize; ++i) mem[i] = static_cast<uint8_t>(i * 131 + 7);
  }
  ~Buffers() { std::free(mem); }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
  uint8_t* operator[](size_t i) { return mem + i * kBufSize; }
  uint8_t* mem;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "vanish-crypto-bench: %s\n", what);
  std::exit(1);
}

// Payload lengths for consecutive bursts: the size's mix repeated to a whole number of bursts
// (IMIX's 12-packet cycle does not divide the burst), so every burst reads kBurst entries.
std::vector<size_t> schedule(const Size& size) {
  std::vector<size_t> s;
  do {
    s.insert(s.end(), size.lens.begin(), size.lens.end());
  } while (s.size() % kBurst != 0);
  return s;
}

EspSaParams sa_params(AeadAlg alg, const std::array<uint8_t, 32>& key, GcmBackend backend) {
  EspSaParams p;
  p.backend = backend;
  p.spi = 0x1000;
  p.alg = alg;
  p.key = std::span<const uint8_t>(key.data(), vanish::crypto::aead_key_len(alg));
  p.salt = {1, 2, 3, 4};
  p.esn = true;
  return p;
}

Meter bench_seal(IMB_MGR* mgr, AeadAlg alg, GcmBackend backend, const Size& size, double seconds) {
  std::array<uint8_t, 32> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i + 1);
  EspSa tx;
  if (!tx.init(sa_params(alg, key, backend))) die("EspSa::init failed");
  Buffers bufs;
  const std::vector<size_t> sched = schedule(size);
  size_t sched_pos = 0;

  auto run_burst = [&]() {
    const size_t* lens = &sched[sched_pos];
    sched_pos = (sched_pos + kBurst) % sched.size();
    uint64_t bytes = 0;
    for (size_t i = 0; i < kBurst; ++i) {
      EspStatus st;
      if (tx.seal(mgr, bufs[i], lens[i], kNextHeader, &st) == 0) die("seal failed");
      bytes += lens[i];
    }
    return bytes;
  };

  // Warm up caches and clocks.
  for (int i = 0; i < 1000; ++i) run_burst();

  Meter meter;
  const auto slice = std::chrono::duration<double>(seconds / kSlices);
  for (int sl = 0; sl < kSlices; ++sl) {
    uint64_t packets = 0, bytes = 0;
    const auto start = Clock::now();
    const auto deadline = start + slice;
    auto now = start;
    do {
      for (int i = 0; i < 16; ++i) bytes += run_burst();
      packets += 16 * kBurst;
      now = Clock::now();
    } while (now < deadline);
    meter.add_slice(packets, bytes, std::chrono::duration<double>(now - start).count());
  }
  return meter;
}

Meter bench_open(IMB_MGR* mgr, AeadAlg alg, GcmBackend backend, const Size& size, double seconds) {
  std::array<uint8_t, 32> key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i + 1);
  EspSa tx, rx;
  if (!tx.init(sa_params(alg, key, backend)) || !rx.init(sa_params(alg, key, backend)))
    die("init failed");
  Buffers bufs;
  const std::vector<size_t> sched = schedule(size);
  size_t sched_pos = 0;
  std::array<size_t, kBurst> esp_lens;

  auto seal_burst = [&]() {
    const size_t* lens = &sched[sched_pos];
    sched_pos = (sched_pos + kBurst) % sched.size();
    for (size_t i = 0; i < kBurst; ++i) {
      EspStatus st;
      esp_lens[i] = tx.seal(mgr, bufs[i], lens[i], kNextHeader, &st);
      if (esp_lens[i] == 0) die("seal failed");
    }
  };
  auto open_burst = [&]() {
    uint64_t bytes = 0;
    for (size_t i = 0; i < kBurst; ++i) {
      size_t len;
      uint8_t nh;
      if (rx.open(mgr, bufs[i], esp_lens[i], &len, &nh) != EspStatus::kOk) die("open failed");
      bytes += len;
    }
    return bytes;
  };

  for (int i = 0; i < 1000; ++i) {
    seal_burst();
    open_burst();
  }

  Meter meter;
  const auto slice = std::chrono::duration<double>(seconds / kSlices);
  const auto wall_deadline = Clock::now() + std::chrono::duration<double>(seconds * 4);
  for (int sl = 0; sl < kSlices; ++sl) {
    uint64_t packets = 0, bytes = 0;
    Clock::duration timed{};
    while (timed < slice && Clock::now() < wall_deadline) {
      seal_burst();
      const auto t0 = Clock::now();
      bytes += open_burst();
      timed += Clock::now() - t0;
      packets += kBurst;
    }
    if (packets == 0) break;
    meter.add_slice(packets, bytes, std::chrono::duration<double>(timed).count());
  }
  if (rx.stats().packets != tx.stats().packets) die("not every packet opened");
  return meter;
}

void report(const char* op, AeadAlg alg, GcmBackend backend, const Size& size, const Meter& m,
            std::vector<std::string>* json) {
  const Result& r = m.best;
  const Result mean = m.mean();
  const char* be = vanish::crypto::gcm_backend_name(backend);
  const bool is_default = backend == vanish::crypto::gcm_default_backend();
  std::printf("%-4s  %-9s  %-9s  %5s B  %8.1f ns/pkt  %7.3f Mpps  %7.3f Gbps   (mean %7.3f Mpps)\n",
              op, vanish::crypto::aead_alg_name(alg), be, size.name, r.ns_per_pkt, r.mpps, r.gbps,
              mean.mpps);
  const bool numeric = size.name[0] >= '0' && size.name[0] <= '9';
  char line[384];
  std::snprintf(line, sizeof(line),
                "{\"bench\":\"crypto\",\"op\":\"%s\",\"alg\":\"%s\",\"size\":%s%s%s,"
                "\"backend\":\"%s\",\"default\":%s,"
                "\"mpps\":%.4f,\"gbps\":%.4f,\"ns_per_pkt\":%.2f,\"mean_mpps\":%.4f}",
                op, vanish::crypto::aead_alg_name(alg), numeric ? "" : "\"", size.name,
                numeric ? "" : "\"", be, is_default ? "true" : "false", r.mpps, r.gbps,
                r.ns_per_pkt, mean.mpps);
  json->push_back(line);
}

[[noreturn]] void usage() {
  die("usage: vanish-crypto-bench [seconds] [--backend both|default|ipsecmb|vaes|hybrid]");
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.0;
  const bool have_vaes = vanish::crypto::vaes_gcm_supported();
  std::string which = have_vaes ? "both" : "ipsecmb";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--backend" && i + 1 < argc) {
      which = argv[++i];
    } else if (a.rfind("--backend=", 0) == 0) {
      which = a.substr(10);
    } else {
      seconds = std::atof(argv[i]);
      if (!(seconds > 0)) usage();
    }
  }
  std::vector<GcmBackend> backends;
  if (which == "both") {
    backends.push_back(GcmBackend::kIpsecMb);
    if (have_vaes) backends.push_back(GcmBackend::kVaes);
    if (vanish::crypto::gcm_default_backend() == GcmBackend::kHybrid)
      backends.push_back(GcmBackend::kHybrid);
  } else if (which == "default") {
    backends.push_back(vanish::crypto::gcm_default_backend());
  } else if (which == "ipsecmb") {
    backends.push_back(GcmBackend::kIpsecMb);
  } else if (which == "vaes") {
    if (!have_vaes) die("this CPU lacks AVX2/VAES/VPCLMULQDQ: no vaes-avx2 backend");
    backends.push_back(GcmBackend::kVaes);
  } else if (which == "hybrid") {
    if (!have_vaes) die("this CPU lacks AVX2/VAES/VPCLMULQDQ: no hybrid backend");
    backends.push_back(GcmBackend::kHybrid);
  } else {
    usage();
  }

  IMB_MGR* mgr = vanish::crypto::thread_imb_mgr();
  if (mgr == nullptr) die("cannot allocate an IPsec-MB manager");
  std::printf(
      "vanish-crypto-bench: IPsec-MB %s, default GCM backend %s, ESP AES-GCM (ESN, 16-byte ICV), "
      "one core, burst %zu, %.2f s per point; Gbps = payload bits\n",
      imb_get_version_str(), vanish::crypto::gcm_backend_name(GcmBackend::kAuto), kBurst, seconds);

  std::vector<Size> sizes = {{"64", {64}},     {"256", {256}},   {"512", {512}},
                             {"1024", {1024}}, {"1420", {1420}}, {"imix", {}}};
  for (int i = 0; i < 7; ++i) sizes.back().lens.push_back(64);
  for (int i = 0; i < 4; ++i) sizes.back().lens.push_back(576);
  sizes.back().lens.push_back(1420);

  std::vector<std::string> json;
  for (AeadAlg alg : {AeadAlg::kAes128Gcm, AeadAlg::kAes256Gcm}) {
    for (const char* op : {"seal", "open"}) {
      const bool seal = op[0] == 's';
      for (const Size& size : sizes) {
        std::vector<double> ns;
        for (GcmBackend b : backends) {
          const Meter m = seal ? bench_seal(mgr, alg, b, size, seconds)
                               : bench_open(mgr, alg, b, size, seconds);
          report(op, alg, b, size, m, &json);
          ns.push_back(m.best.ns_per_pkt);
        }
        if (ns.size() >= 2) {
          std::printf("%-4s  %-9s  %-9s  %5s B  ratio vaes-avx2 / ipsec-mb speed: %.2fx\n", op,
                      vanish::crypto::aead_alg_name(alg), "ratio", size.name, ns[0] / ns[1]);
        }
      }
    }
  }
  for (const std::string& line : json) std::printf("%s\n", line.c_str());
  return 0;
}
