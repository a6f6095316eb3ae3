#include "ctl/peering/manager.hpp"

#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <random>
#include <unordered_set>

#include "crypto/esp.hpp"
#include "ctl/model.hpp"
#include "ctl/spiffe.hpp"

namespace vanish::ctl::peering {

// One key generation: one TLS connection and the SAs it keyed.
struct PeeringManager::Gen {
  enum class St : uint8_t { kHandshake, kDerived, kInstalling, kInboundLive, kActive, kRetiring };
  uint64_t id = 0;
  std::shared_ptr<PeerConn> conn;
  St st = St::kHandshake;
  bool hello_sent = false;
  bool peer_ready = false;
  bool closing = false;  // we closed it (superseded): its end is not a loss
  bool connect_refused = false;  // failed at TCP connect
  pv1::Hello local;
  std::vector<std::shared_ptr<crypto::EspSa>> out;  // by local worker
  uint16_t sport[dp::kMaxWorkers] = {};
  std::vector<DynamicPeerSas::Inbound> in;
  Clock::time_point created{}, retire_at{};
  std::unordered_set<uint32_t>* spis_in_use = nullptr;  // the manager's; ours leave with us
  ~Gen() {
    if (spis_in_use)
      for (uint32_t spi : local.inbound_spis()) spis_in_use->erase(spi);
  }
};

struct PeeringManager::Peer {
  PeerSpec spec;
  bool dialer = false;
  std::vector<std::unique_ptr<Gen>> gens;  // oldest first
  Gen* active = nullptr;
  Clock::time_point next_dial{};
  uint32_t backoff_ms = 0;
  Clock::time_point rekey_at{};
  Clock::time_point active_since{};
  bool rekey_wanted = false;
  bool rekey_request_sent = false;
  uint64_t peer_boot = 0;
  uint64_t handshakes = 0, rekeys = 0, restarts = 0;
  double last_ms = 0;
  int64_t last_unix = 0;
  std::string last_error;
};

namespace {

std::string stamp_now() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%H:%M:%SZ", &tm);
  return buf;
}

uint64_t random_u64() {
  uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1)
    v = uint64_t(std::time(nullptr));
  return v ? v : 1;
}

// Uniform in [lo, hi].
double jitter(double lo, double hi) {
  static thread_local std::mt19937_64 rng(random_u64());
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

std::string resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

}  // namespace

bool peering_from_config(const config::Config& cfg, const std::string& config_dir,
                         PeeringSettings* s, std::vector<PeerSpec>* peers, std::string* err) {
  if (!cfg.has_peering()) {
    if (err) *err = "the config has no peering block";
    return false;
  }
  const config::Peering& p = cfg.peering();
  *s = PeeringSettings{};
  s->cert_file = resolve(config_dir, p.cert_file());
  s->key_file = resolve(config_dir, p.key_file());
  s->bundle_file = resolve(config_dir, p.bundle_file());
  s->alg = p.cipher() == "aes-256-gcm" ? crypto::AeadAlg::kAes256Gcm : crypto::AeadAlg::kAes128Gcm;
  if (p.has_handshake_timeout_ms()) s->handshake_timeout_ms = int(p.handshake_timeout_ms());
  if (p.has_rekey_seconds()) s->rekey_seconds = p.rekey_seconds();
  if (p.has_rekey_packets()) s->rekey_packets = p.rekey_packets();
  if (p.has_rekey_bytes()) s->rekey_bytes = p.rekey_bytes();
  if (p.has_grace_ms()) s->grace_ms = p.grace_ms();
  s->sa_lifetime_s = p.has_sa_lifetime_seconds() ? p.sa_lifetime_seconds()
                                                 : (s->rekey_seconds ? 2 * s->rekey_seconds : 7200);
  if (p.has_reconnect_max_ms()) s->reconnect_max_ms = p.reconnect_max_ms();
  if (p.has_expiry_warning_hours()) s->expiry_warning_hours = p.expiry_warning_hours();
  s->listen_address = p.listen_address();
  peers->clear();
  for (const config::Node& n : cfg.nodes()) {
    if (n.name() == cfg.this_node()) {
      if (s->listen_address.empty()) s->listen_address = n.management_address();
      SpiffeId id;
      if (parse_spiffe_id(n.spiffe_id(), &id, nullptr)) s->trust_domain = id.trust_domain;
      continue;
    }
    if (n.spiffe_id().empty() || n.management_address().empty()) continue;
    peers->push_back({n.name(), n.spiffe_id(), n.management_address()});
  }
  return true;
}

std::vector<uint32_t> static_inbound_spis(const config::Config& cfg) {
  std::vector<uint32_t> v;
  for (const config::StaticSa& sa : cfg.static_sas())
    if (sa.to_node() == cfg.this_node())
      for (uint32_t k = 0; k < dp::kMaxWorkers; k++) v.push_back(sa.spi_base() + k);
  return v;
}

PeeringManager::PeeringManager(std::string self, unsigned n_workers, Log log)
    : self_(std::move(self)), n_workers_(n_workers), log_(std::move(log)), boot_id_(random_u64()) {}

PeeringManager::~PeeringManager() = default;

bool PeeringManager::load_credentials(std::string* err) {
  auto ctx =
      TlsContext::from_files(settings_.cert_file, settings_.key_file, settings_.bundle_file, err);
  if (!ctx) return false;
  tls_.push_back(std::move(ctx));
  if (tls_.size() > 4) tls_.erase(tls_.begin());  // SSL objects hold their own SSL_CTX reference
  if (endpoint_) endpoint_->set_tls(*tls_.back());
  expiry_warned_ = false;
  check_expiry();
  const std::string* files[3] = {&settings_.cert_file, &settings_.key_file, &settings_.bundle_file};
  for (int i = 0; i < 3; i++) {
    struct stat st {};
    if (stat(files[i]->c_str(), &st) == 0)
      stamps_[i] = {int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                    int64_t(st.st_size), int64_t(st.st_ino)};
  }
  return true;
}

void PeeringManager::check_expiry() {
  if (tls_.empty() || expiry_warned_) return;
  int64_t left = tls_.back()->not_after() - int64_t(std::time(nullptr));
  if (left < int64_t(settings_.expiry_warning_hours) * 3600) {
    expiry_warned_ = true;
    ++stats_.cert_expiry_soon;
    log(true, "peering: certificate " + settings_.cert_file +
                  (left <= 0 ? " has expired"
                             : " expires in " + std::to_string(left / 3600) + " h " +
                                   std::to_string(left % 3600 / 60) + " min") +
                  ": replace it (the new files are picked up without restart)");
  }
}

bool PeeringManager::configure(const PeeringSettings& s, const std::vector<PeerSpec>& peers,
                               std::vector<uint32_t> reserved_spis, std::string* err) {
  bool first = !endpoint_;
  PeeringSettings old = settings_;
  settings_ = s;
  if (first || s.cert_file != old.cert_file || s.key_file != old.key_file ||
      s.bundle_file != old.bundle_file) {
    if (!load_credentials(err)) {
      settings_ = old;
      return false;
    }
  }
  PeerPolicy policy;
  policy.trust_domain = s.trust_domain.empty() ? tls_.back()->trust_domain() : s.trust_domain;
  for (const PeerSpec& p : peers) policy.allowed[p.spiffe_id] = p.node;
  EndpointOptions eo;
  eo.handshake_timeout_ms = s.handshake_timeout_ms;
  if (first) {
    endpoint_ = std::make_unique<PeeringEndpoint>(*tls_.back(), policy, eo);
    endpoint_->log = [this](const std::string& line) { log(true, line); };
    endpoint_->on_established = [this](const std::shared_ptr<PeerConn>& c) { on_established(c); };
    if (!endpoint_->listen(s.listen_address, err)) {
      endpoint_.reset();
      return false;
    }
  } else {
    endpoint_->set_server_policy(policy);
    endpoint_->set_options(eo);
    if (s.listen_address != old.listen_address)
      log(true, "peering: listen_address changes take effect at restart");
  }
  reserved_spis_ = std::move(reserved_spis);
  // Peers: keep the ones still configured (with the same identity), drop the others.
  std::vector<std::unique_ptr<Peer>> next;
  for (const PeerSpec& spec : peers) {
    std::unique_ptr<Peer> p;
    for (auto& q : peers_)
      if (q && q->spec.node == spec.node && q->spec.spiffe_id == spec.spiffe_id) p = std::move(q);
    if (!p) {
      p = std::make_unique<Peer>();
      dirty_ = dirty_ || !first;
    }
    p->spec = spec;
    p->dialer = self_ < spec.node;
    next.push_back(std::move(p));
  }
  for (auto& q : peers_) {
    if (!q) continue;
    log(false, "peering: node " + q->spec.node + " left the config: its SAs go");
    for (auto& g : q->gens)
      if (g->conn) g->conn->close();
    dirty_ = true;
  }
  peers_ = std::move(next);
  installing_.clear();  // the next sas() lists whatever is derived
  for (auto& p : peers_)
    for (auto& g : p->gens)
      if (g->st == Gen::St::kInstalling) g->st = Gen::St::kDerived, dirty_ = true;
  return true;
}

uint16_t PeeringManager::port() const {
  return endpoint_ ? endpoint_->port() : 0;
}

PeeringManager::Peer* PeeringManager::find_peer(const std::string& node) {
  for (auto& p : peers_)
    if (p->spec.node == node) return p.get();
  return nullptr;
}

void PeeringManager::on_established(const std::shared_ptr<PeerConn>& c) {
  if (c->role() == PeerConn::Role::kClient) return;  // its Gen exists since dial()
  Peer* p = find_peer(c->peer().node);
  if (!p) {
    c->close();
    return;
  }
  auto g = std::make_unique<Gen>();
  g->id = next_gen_id_++;
  g->conn = c;
  g->created = Clock::now();
  p->gens.push_back(std::move(g));
}

void PeeringManager::fill_pollfds(std::vector<pollfd>* fds) const {
  if (endpoint_) endpoint_->fill_pollfds(fds);
}

void PeeringManager::handle(const std::vector<pollfd>& fds, size_t first) {
  if (!endpoint_) return;
  endpoint_->handle(fds, first);
  auto now = Clock::now();
  for (auto& p : peers_) drive(*p, now);
}

std::vector<uint32_t> PeeringManager::new_spis() {
  // Random, distinct, >= 256, not reserved (static SAs) and not used by any generation.
  std::vector<uint32_t> out;
  while (out.size() < kMaxPeerWorkers) {
    uint32_t v = uint32_t(random_u64());
    if (v < 256 || spis_in_use_.count(v) ||
        std::find(reserved_spis_.begin(), reserved_spis_.end(), v) != reserved_spis_.end())
      continue;
    spis_in_use_.insert(v);
    out.push_back(v);
  }
  return out;
}

size_t PeeringManager::reachable_peers() const {
  size_t n = 0;
  for (auto& p : peers_) n += p->active && !p->active->out.empty();
  return n;
}

void PeeringManager::drive(Peer& p, Clock::time_point now) {
  for (size_t i = 0; i < p.gens.size(); i++) {
    Gen& g = *p.gens[i];
    if (!g.conn) continue;
    if (g.conn->state() == PeerConn::State::kEstablished && !g.hello_sent) {
      g.local = make_hello(self_, n_workers_, new_spis(), boot_id_, settings_.alg);
      g.spis_in_use = &spis_in_use_;
      pv1::Frame f;
      *f.mutable_hello() = g.local;
      g.hello_sent = g.conn->send(f);
    }
    pv1::Frame f;
    while (g.conn && g.conn->next_frame(&f)) on_frame(p, g, f, now);
    if (g.conn && g.conn->done()) {
      bool established = g.conn->was_established();
      if (!established || g.st < Gen::St::kActive) {
        g.connect_refused = g.conn->refusal() == Refusal::kConnectFailed;
        if (g.conn->refusal() != Refusal::kNone)
          p.last_error = stamp_now() + " " + refusal_name(g.conn->refusal()) +
                         (g.conn->detail().empty() ? "" : " (" + g.conn->detail() + ")");
      } else if (!g.closing) {
        ++stats_.connections_lost;
        p.last_error = stamp_now() + " connection lost";
      }
      g.conn.reset();
    }
  }
  // Generations that died before they became active take their SAs with them.
  for (size_t i = 0; i < p.gens.size();) {
    Gen& g = *p.gens[i];
    if (!g.conn && g.st < Gen::St::kActive) {
      if (g.st >= Gen::St::kDerived) dirty_ = true;
      installing_.erase(std::remove(installing_.begin(), installing_.end(), &g), installing_.end());
      bool refused = g.connect_refused;
      p.gens.erase(p.gens.begin() + long(i));
      if (p.dialer) schedule_redial(p, now, refused);
      continue;
    }
    i++;
  }
}

void PeeringManager::on_frame(Peer& p, Gen& g, const pv1::Frame& f, Clock::time_point now) {
  switch (f.msg_case()) {
    case pv1::Frame::kHello:
      on_hello(p, g, f.hello(), now);
      break;
    case pv1::Frame::kReady:
      if (g.st < Gen::St::kDerived) {
        ++stats_.protocol_errors;
        g.conn->fail(Refusal::kProtocolError, "Ready before Hello");
        break;
      }
      g.peer_ready = true;
      if (g.st == Gen::St::kInboundLive) activate(p, g, now);
      break;
    case pv1::Frame::kRekeyRequest:
      if (p.dialer)
        want_rekey(p, "requested by " + p.spec.node + ": " + f.rekey_request().reason());
      break;
    case pv1::Frame::kDeleteNotice:
    case pv1::Frame::kRekey:
      break;  // informational
    default:
      ++stats_.protocol_errors;
      g.conn->fail(Refusal::kProtocolError, "unknown peering frame");
  }
}

void PeeringManager::on_hello(Peer& p, Gen& g, const pv1::Hello& h, Clock::time_point now) {
  std::string why;
  if (g.st != Gen::St::kHandshake || !g.hello_sent) {
    why = "unexpected Hello";
  } else if (!check_hello(h, p.spec.node, settings_.alg, &why)) {
  } else {
    SaSet set;
    if (derive_sas(g.conn->ssl(), g.conn->role() == PeerConn::Role::kClient, g.local, h, &set,
                   &why)) {
      for (const DerivedSa& d : set.outbound) {
        auto sa = std::make_shared<crypto::EspSa>();
        if (!sa->init(d.params())) {
          why = "outbound SA init failed";
          break;
        }
        g.sport[g.out.size()] = uint16_t(kUdpSportDeriveBase + d.spi % kUdpSportDeriveSpan);
        g.out.push_back(std::move(sa));
      }
      for (const DerivedSa& d : set.inbound) {
        auto sa = std::make_shared<crypto::EspSa>();
        if (!why.empty() || !sa->init(d.params())) {
          why = why.empty() ? "inbound SA init failed" : why;
          break;
        }
        g.in.push_back({std::move(sa), uint16_t(d.worker)});
      }
    }
  }
  if (!why.empty()) {
    ++stats_.protocol_errors;
    g.out.clear();
    g.in.clear();
    g.conn->fail(Refusal::kBadHello, why);
    return;
  }
  ++stats_.handshakes;
  ++p.handshakes;
  if (p.peer_boot != 0 && h.boot_id() != p.peer_boot) {
    ++stats_.peer_restarts;
    ++p.restarts;
    log(false,
        "peering: node " + p.spec.node + " restarted (new boot id): its older SAs are dropped");
    for (auto& o : p.gens)
      if (o.get() != &g && o->st >= Gen::St::kDerived) o->retire_at = now;
    for (auto& o : p.gens)
      if (o.get() != &g && o->st != Gen::St::kActive) o->st = Gen::St::kRetiring;
  }
  p.peer_boot = h.boot_id();
  g.st = Gen::St::kDerived;
  dirty_ = true;
}

void PeeringManager::activate(Peer& p, Gen& g, Clock::time_point now) {
  Gen* old = p.active;
  g.st = Gen::St::kActive;
  p.active = &g;
  double ms = std::chrono::duration<double, std::milli>(now - g.created).count();
  p.last_ms = ms;
  p.last_unix = int64_t(std::time(nullptr));
  p.active_since = now;
  p.backoff_ms = 0;
  p.next_dial = now;
  p.last_error.clear();  // "since the last successful handshake"
  p.rekey_wanted = false;
  p.rekey_request_sent = false;
  if (settings_.rekey_seconds)
    p.rekey_at = now + std::chrono::milliseconds(
                           int64_t(settings_.rekey_seconds * 1000.0 * jitter(0.9, 1.1)));
  // Older generations retire: no more outbound on them, inbound for grace_ms.
  for (auto& o : p.gens) {
    if (o.get() == &g || o->id > g.id) continue;
    if (o->st == Gen::St::kActive || o->st == Gen::St::kRetiring || o->st >= Gen::St::kDerived) {
      Clock::time_point until = now + std::chrono::milliseconds(settings_.grace_ms);
      if (o->st != Gen::St::kRetiring || o->retire_at > until) o->retire_at = until;
      o->st = Gen::St::kRetiring;
      o->out.clear();
    }
    if (o->conn) {
      o->closing = true;
      o->conn->close();
    }
  }
  if (old) {
    ++p.rekeys;
    ++stats_.rekeys;
  } else {
    log(false, "peering: node " + p.spec.node + " (" + p.spec.spiffe_id +
                   ") established, SAs installed in " +
                   std::to_string(int(ms * 10) / 10.0).substr(0, 6) + " ms");
  }
  dirty_ = true;
}

void PeeringManager::want_rekey(Peer& p, const std::string& why) {
  if (p.dialer) {
    if (!p.rekey_wanted) {
      p.rekey_wanted = true;
      p.next_dial = Clock::now();
    }
    (void)why;
    return;
  }
  if (p.rekey_request_sent || !p.active || !p.active->conn) return;
  pv1::Frame f;
  f.mutable_rekey_request()->set_reason(why);
  p.rekey_request_sent = p.active->conn->send(f);
}

void PeeringManager::schedule_redial(Peer& p, Clock::time_point now, bool refused_fast) {
  // A refused TCP connect (the peer is not listening yet, e.g. still starting) is cheap to
  // retry: its back-off stops at 2 s; other failures go up to reconnect_max_ms.
  uint32_t cap = refused_fast ? std::min<uint32_t>(2000, settings_.reconnect_max_ms)
                              : settings_.reconnect_max_ms;
  p.backoff_ms = p.backoff_ms ? std::min(p.backoff_ms * 2, cap) : 100;
  p.next_dial = now + std::chrono::milliseconds(int64_t(p.backoff_ms * jitter(0.8, 1.2)));
}

void PeeringManager::dial(Peer& p, Clock::time_point now) {
  auto g = std::make_unique<Gen>();
  g->id = next_gen_id_++;
  g->created = now;
  g->conn = endpoint_->connect(p.spec.address, p.spec.spiffe_id, p.spec.node);
  p.gens.push_back(std::move(g));
  p.next_dial = now + std::chrono::hours(24);  // the outcome reschedules
}

bool PeeringManager::rekey_due(const Peer& p, Clock::time_point now, std::string* why) const {
  if (!p.active) return false;
  if (settings_.rekey_seconds && now >= p.rekey_at) {
    *why = "timer";
    return true;
  }
  for (const auto& sa : p.active->out) {
    const auto& st = sa->stats();
    if (settings_.rekey_packets && st.packets >= settings_.rekey_packets) {
      *why = "packet count";
      return true;
    }
    if (settings_.rekey_bytes && st.bytes >= settings_.rekey_bytes) {
      *why = "byte count";
      return true;
    }
    if (sa->next_seq() >= (uint64_t(1) << 62) || sa->seq_exhausted()) {
      *why = "sequence space";
      return true;
    }
  }
  return false;
}

int PeeringManager::poll_once(int timeout_ms) {
  std::vector<pollfd> fds;
  fill_pollfds(&fds);
  int n = ::poll(fds.data(), fds.size(), timeout_ms);
  if (n > 0) handle(fds, 0);
  tick();
  return n;
}

void PeeringManager::tick() {
  if (!endpoint_) return;
  endpoint_->tick();
  auto now = Clock::now();
  check_files(now);
  for (auto& pp : peers_) {
    Peer& p = *pp;
    drive(p, now);
    // Retired generations leave after their grace period.
    for (size_t i = 0; i < p.gens.size();) {
      Gen& g = *p.gens[i];
      if (g.st == Gen::St::kRetiring && now >= g.retire_at) {
        if (p.active && p.active->conn && !g.local.inbound_spis().empty()) {
          pv1::Frame f;
          for (uint32_t spi : g.local.inbound_spis()) f.mutable_delete_notice()->add_spis(spi);
          f.mutable_delete_notice()->set_reason("rekeyed");
          p.active->conn->send(f);
        }
        if (g.conn) g.conn->close();
        if (p.active == &g) p.active = nullptr;
        p.gens.erase(p.gens.begin() + long(i));
        dirty_ = true;
        continue;
      }
      i++;
    }
    // Lifetime: SAs without a connection expire (fail closed).
    if (p.active && !p.active->conn &&
        now - p.active_since > std::chrono::seconds(settings_.sa_lifetime_s)) {
      ++stats_.sas_expired;
      log(true, "peering: SAs with node " + p.spec.node +
                    " expired (no connection for their lifetime): the peer is unreachable");
      p.gens.clear();
      p.active = nullptr;
      installing_.clear();
      dirty_ = true;
    }
    std::string why;
    if (rekey_due(p, now, &why)) want_rekey(p, why);
    if (p.dialer) {
      bool pending = false;
      for (auto& g : p.gens) pending = pending || (g->conn && g->st < Gen::St::kActive);
      bool connected = p.active && p.active->conn;
      if (!pending && (!connected || p.rekey_wanted) && now >= p.next_dial) {
        if (!connected && p.active && p.backoff_ms == 0) {
          // The active connection just went away: first retry after a short back-off.
          schedule_redial(p, now);
          continue;
        }
        dial(p, now);
        drive(p, now);
      }
    }
  }
}

void PeeringManager::check_files(Clock::time_point now) {
  if (now < next_file_check_) return;
  next_file_check_ = now + std::chrono::seconds(1);
  if (now >= next_expiry_check_) {
    next_expiry_check_ = now + std::chrono::minutes(10);
    check_expiry();
  }
  const std::string* files[3] = {&settings_.cert_file, &settings_.key_file, &settings_.bundle_file};
  bool changed = false;
  FileStamp cur[3];
  for (int i = 0; i < 3; i++) {
    struct stat st {};
    if (stat(files[i]->c_str(), &st) != 0) return;  // mid-replacement: look again later
    cur[i] = {int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec, int64_t(st.st_size),
              int64_t(st.st_ino)};
    changed = changed || !(cur[i] == stamps_[i]);
  }
  if (!changed) return;
  std::string err;
  if (load_credentials(&err)) {
    ++stats_.cert_reloads;
    log(false, "peering: credentials reloaded from " + settings_.cert_file + " (" +
                   tls_.back()->spiffe_id() + "); new handshakes use them");
  } else {
    for (int i = 0; i < 3; i++) stamps_[i] = cur[i];  // report once per change
    ++stats_.cert_reload_errors;
    log(true, "peering: changed credentials rejected, the old ones stay: " + err);
  }
}

std::shared_ptr<const DynamicSas> PeeringManager::sas() {
  auto d = std::make_shared<DynamicSas>();
  installing_.clear();
  for (auto& pp : peers_) {
    Peer& p = *pp;
    DynamicPeerSas ps;
    ps.node = p.spec.node;
    if (p.active && p.active->out.size() >= n_workers_) {
      for (unsigned w = 0; w < n_workers_ && w < dp::kMaxWorkers; w++) {
        ps.outbound[w] = p.active->out[w];
        ps.udp_sport[w] = p.active->sport[w];
      }
    }
    for (auto& g : p.gens) {
      if (g->st < Gen::St::kDerived) continue;
      if (g->st == Gen::St::kDerived || g->st == Gen::St::kInstalling) {
        g->st = Gen::St::kInstalling;
        installing_.push_back(g.get());
      }
      for (auto& in : g->in) ps.inbound.push_back(in);
    }
    d->peers.push_back(std::move(ps));
  }
  return d;
}

void PeeringManager::published() {
  dirty_ = false;
  auto now = Clock::now();
  std::vector<Gen*> done;
  done.swap(installing_);
  for (auto& pp : peers_) {
    for (size_t i = 0; i < pp->gens.size(); i++) {
      Gen* g = pp->gens[i].get();
      if (std::find(done.begin(), done.end(), g) == done.end() || g->st != Gen::St::kInstalling)
        continue;
      g->st = Gen::St::kInboundLive;
      pv1::Frame f;
      f.mutable_ready();
      if (g->conn) g->conn->send(f);
      if (g->peer_ready) activate(*pp, *g, now);
    }
  }
}

std::vector<std::string> PeeringManager::rekey(const std::string& node) {
  std::vector<std::string> out;
  for (auto& p : peers_) {
    if (!node.empty() && p->spec.node != node) continue;
    p->rekey_request_sent = false;
    want_rekey(*p, "operator");
    out.push_back(p->spec.node);
  }
  return out;
}

const PeeringStats& PeeringManager::stats() const {
  if (endpoint_) {
    stats_.refusals = endpoint_->refusals();
    stats_.connections_lost = std::max(stats_.connections_lost, endpoint_->lost());
  }
  return stats_;
}

std::vector<PeerView> PeeringManager::view() const {
  std::vector<PeerView> v;
  for (auto& pp : peers_) {
    const Peer& p = *pp;
    PeerView r;
    r.node = p.spec.node;
    r.spiffe_id = p.spec.spiffe_id;
    r.address = p.spec.address;
    r.dialer = p.dialer;
    bool hs = false;
    for (auto& g : p.gens) hs = hs || (g->conn && g->st < Gen::St::kActive);
    if (p.active && p.active->conn)
      r.connection = hs ? "established, rekeying" : "established";
    else if (hs)
      r.connection = "handshake";
    else if (p.dialer && p.next_dial > Clock::now() && p.backoff_ms)
      r.connection = "backoff";
    else
      r.connection = "down";
    r.handshake_ms = p.last_ms;
    r.handshakes = p.handshakes;
    r.rekeys = p.rekeys;
    r.peer_restarts = p.restarts;
    for (auto& g : p.gens) r.generations += g->st >= Gen::St::kInboundLive;
    r.last_handshake_unix = p.last_unix;
    r.last_error = p.last_error;
    r.reachable = p.active && !p.active->out.empty();
    v.push_back(std::move(r));
  }
  return v;
}

void annotate_peer_rows(const PeeringManager& m, ctl::v1::PeerRows* rows) {
  std::vector<PeerView> views = m.view();
  int64_t now = int64_t(std::time(nullptr));
  for (auto& r : *rows->mutable_rows()) {
    for (const PeerView& v : views) {
      if (v.node != r.name()) continue;
      r.set_keying("mtls");
      r.set_connection(v.connection);
      r.set_handshake_ms(v.handshake_ms);
      r.set_handshakes(v.handshakes);
      r.set_generations(v.generations);
      r.set_last_error(v.last_error);
      r.set_dialer(v.dialer);
      r.set_peer_restarts(v.peer_restarts);
      r.set_rekeys(v.rekeys);
      r.set_management_address(v.address);
      if (v.last_handshake_unix)
        r.set_last_handshake(std::to_string(now - v.last_handshake_unix) + "s ago");
    }
  }
}

void append_peering_metrics(const PeeringManager& m, std::string& o) {
  auto esc = [](const std::string& v) {
    std::string r;
    for (char c : v) {
      if (c == '\\' || c == '"') r += '\\';
      if (c == '\n') {
        r += "\\n";
        continue;
      }
      r += c;
    }
    return r;
  };
  auto head = [&](const char* name, const char* type, const char* help) {
    o += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto one = [&](const char* name, const char* type, const char* help, uint64_t v) {
    head(name, type, help);
    o += std::string(name) + " " + std::to_string(v) + "\n";
  };
  const PeeringStats& s = m.stats();
  one("vanish_peering_handshakes_total", "counter",
      "mTLS peering handshakes that keyed SAs (first, rekeys, reconnects)", s.handshakes);
  one("vanish_peering_rekeys_total", "counter", "SA generations replaced by a newer one", s.rekeys);
  one("vanish_peering_peer_restarts_total", "counter", "peers seen with a new boot id",
      s.peer_restarts);
  one("vanish_peering_connections_lost_total", "counter",
      "established peering connections that failed", s.connections_lost);
  one("vanish_peering_sas_expired_total", "counter",
      "peers whose SAs reached their lifetime without a connection", s.sas_expired);
  one("vanish_peering_protocol_errors_total", "counter",
      "bad Hellos, unexpected frames, SA initialisation failures", s.protocol_errors);
  one("vanish_peering_cert_reloads_total", "counter", "credentials reloaded from changed files",
      s.cert_reloads);
  one("vanish_peering_cert_reload_errors_total", "counter",
      "changed credential files that did not load (old ones kept)", s.cert_reload_errors);
  one("vanish_peering_cert_expiry_soon_total", "counter",
      "warnings that this node's certificate expires soon", s.cert_expiry_soon);
  head("vanish_peering_refusals_total", "counter", "peering handshakes refused, by reason");
  for (size_t r = 1; r < kRefusalCount; r++)
    o += std::string("vanish_peering_refusals_total{reason=\"") + refusal_name(Refusal(r)) +
         "\"} " + std::to_string(s.refusals[r]) + "\n";
  std::vector<PeerView> views = m.view();
  head("vanish_peer_connected", "gauge", "1 while the peering connection to the peer is up");
  for (auto& v : views)
    o += "vanish_peer_connected{peer=\"" + esc(v.node) + "\"} " +
         (v.connection.rfind("established", 0) == 0 ? "1" : "0") + "\n";
  head("vanish_peer_handshake_ms", "gauge",
       "the last handshake with the peer: connect or accept to SAs installed (ms)");
  for (auto& v : views) {
    char b[64];
    std::snprintf(b, sizeof b, "%.3f", v.handshake_ms);
    o += "vanish_peer_handshake_ms{peer=\"" + esc(v.node) + "\"} " + b + "\n";
  }
  head("vanish_peer_rekeys_total", "counter", "SA generations replaced, per peer");
  for (auto& v : views)
    o +=
        "vanish_peer_rekeys_total{peer=\"" + esc(v.node) + "\"} " + std::to_string(v.rekeys) + "\n";
  head("vanish_peer_sa_generations", "gauge",
       "key generations with SAs installed (1 steady, more during a rekey)");
  for (auto& v : views)
    o += "vanish_peer_sa_generations{peer=\"" + esc(v.node) + "\"} " +
         std::to_string(v.generations) + "\n";
}

}  // namespace vanish::ctl::peering
