// vanish-peering-bench: cost of bringing up one peer over mTLS on loopback, in one thread (the
// control thread's model: one poll loop drives both ends). Per peer: TCP connect, TLS 1.3
// handshake with EC P-256 certificates from the dev CA (chain + SPIFFE id checks on both sides),
// the Hello exchange and the derivation of every ESP SA (SSL_export_keying_material) plus
// EspSa::init for each (what "SA install" costs before the snapshot publish).
//
//   vanish-peering-bench [--peers N] [--workers W] [--cipher aes-128-gcm|aes-256-gcm]
//
// Prints min / median / p99 / max ms per peer and the total for N peers in sequence; exit 1 if
// the median exceeds the 5 ms budget.
#include <openssl/ssl.h>

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ctl/dev_ca.hpp"
#include "ctl/peering/endpoint.hpp"
#include "ctl/peering/keys.hpp"
#include "crypto/esp.hpp"

using namespace vanish::ctl;
using namespace vanish::ctl::peering;

int main(int argc, char** argv) {
  int peers = 200;
  unsigned workers = 2;
  vanish::crypto::AeadAlg alg = vanish::crypto::AeadAlg::kAes128Gcm;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--peers" && i + 1 < argc) {
      peers = atoi(argv[++i]);
    } else if (a == "--workers" && i + 1 < argc) {
      workers = unsigned(atoi(argv[++i]));
    } else if (a == "--cipher" && i + 1 < argc) {
      std::string c = argv[++i];
      alg = c == "aes-256-gcm" ? vanish::crypto::AeadAlg::kAes256Gcm
                               : vanish::crypto::AeadAlg::kAes128Gcm;
    } else {
      fprintf(stderr, "usage: vanish-peering-bench [--peers N] [--workers W] [--cipher C]\n");
      return 2;
    }
  }
  if (peers < 1 || workers < 1 || workers > kMaxPeerWorkers) return 2;

  const char* id_a = "spiffe://cluster.local/ns/vanish-system/sa/node-a";
  const char* id_b = "spiffe://cluster.local/ns/vanish-system/sa/node-b";
  std::string err;
  PemPair ca, a, b;
  IssueOptions oa, ob;
  oa.spiffe_id = id_a;
  ob.spiffe_id = id_b;
  if (!make_ca({}, &ca, &err) || !issue_cert(ca, oa, &a, &err) || !issue_cert(ca, ob, &b, &err)) {
    fprintf(stderr, "dev CA: %s\n", err.c_str());
    return 2;
  }
  auto tls_a = TlsContext::create({a.cert, a.key, ca.cert}, &err);
  auto tls_b = TlsContext::create({b.cert, b.key, ca.cert}, &err);
  if (!tls_a || !tls_b) {
    fprintf(stderr, "tls: %s\n", err.c_str());
    return 2;
  }
  PeerPolicy pa{"cluster.local", {{id_b, "node-b"}}};
  PeerPolicy pb{"cluster.local", {}};
  PeeringEndpoint ea(*tls_a, pa), eb(*tls_b, pb);
  ea.log = eb.log = [](const std::string& l) { fprintf(stderr, "%s\n", l.c_str()); };
  std::vector<std::shared_ptr<PeerConn>> accepted;
  ea.on_established = [&](const std::shared_ptr<PeerConn>& c) { accepted.push_back(c); };
  if (!ea.listen("127.0.0.1:0", &err)) {
    fprintf(stderr, "listen: %s\n", err.c_str());
    return 2;
  }
  std::string addr = "127.0.0.1:" + std::to_string(ea.port());

  auto cpu_ms = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
  };
  std::vector<double> ms;
  auto t_all = Clock::now();
  double cpu0 = cpu_ms();
  for (int p = 0; p < peers; ++p) {
    auto t0 = Clock::now();
    accepted.clear();
    auto c = eb.connect(addr, id_a, "node-a");
    auto spis_a = allocate_spis(kMaxPeerWorkers, {});
    auto spis_b = allocate_spis(kMaxPeerWorkers, spis_a);
    pv1::Frame fa, fb;
    *fa.mutable_hello() = make_hello("node-a", workers, spis_a, 1, alg);
    *fb.mutable_hello() = make_hello("node-b", workers, spis_b, 2, alg);
    bool sent_a = false, sent_b = false, got_a = false, got_b = false;
    pv1::Frame ra, rb;
    while (!(got_a && got_b)) {
      // Both ends live in this thread: poll without sleeping, so the figure is the work, not
      // poll timeouts of the idle end.
      ea.poll_once(0);
      eb.poll_once(0);
      if (c->done() || Clock::now() - t0 > std::chrono::seconds(5)) {
        fprintf(stderr, "peer %d failed: %s\n", p, refusal_name(c->refusal()));
        return 1;
      }
      if (!sent_b && c->state() == PeerConn::State::kEstablished) sent_b = c->send(fb);
      if (!sent_a && !accepted.empty()) sent_a = accepted[0]->send(fa);
      if (!got_b && sent_b) got_b = c->next_frame(&rb);
      if (!got_a && sent_a) got_a = accepted[0]->next_frame(&ra);
    }
    SaSet sa_a, sa_b;
    if (!check_hello(ra.hello(), "node-b", alg, &err) ||
        !check_hello(rb.hello(), "node-a", alg, &err) ||
        !derive_sas(accepted[0]->ssl(), false, fa.hello(), ra.hello(), &sa_a, &err) ||
        !derive_sas(c->ssl(), true, fb.hello(), rb.hello(), &sa_b, &err)) {
      fprintf(stderr, "peer %d: %s\n", p, err.c_str());
      return 1;
    }
    // "Install": one EspSa per SA, both nodes.
    std::vector<vanish::crypto::EspSa> sas(sa_a.outbound.size() + sa_a.inbound.size() +
                                           sa_b.outbound.size() + sa_b.inbound.size());
    size_t k = 0;
    for (const SaSet* s : {&sa_a, &sa_b}) {
      for (const auto* v : {&s->outbound, &s->inbound}) {
        for (const DerivedSa& d : *v) {
          if (!sas[k++].init(d.params())) return 1;
        }
      }
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    c->close();
    accepted[0]->close();
  }
  double total = std::chrono::duration<double, std::milli>(Clock::now() - t_all).count();
  double cpu = cpu_ms() - cpu0;
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double q) { return ms[std::min(ms.size() - 1, size_t(q * double(ms.size())))]; };
  printf("peering: %d peers in sequence, %u workers per node, %s, both ends in one thread\n", peers,
         workers, cipher_name(alg));
  printf(
      "  per peer (connect + TLS 1.3 mTLS both sides + Hello + %u SAs derived and "
      "initialised): min %.2f ms, median %.2f ms, p99 %.2f ms, max %.2f ms\n",
      4 * workers, ms.front(), pct(0.5), pct(0.99), ms.back());
  printf("  total %.1f ms wall for %d peers (%.2f ms/peer); CPU %.2f ms/peer for both ends\n",
         total, peers, total / peers, cpu / peers);
  printf("  budget (median wall < 5 ms): %s\n", pct(0.5) < 5.0 ? "ok" : "EXCEEDED");
  return pct(0.5) < 5.0 ? 0 : 1;
}
