// PeeringManager: the control thread's mTLS peering with every peer appliance of the config, and
// the ESP SAs those handshakes key (the dynamic SAs of compile_snapshot, ctl/compile.hpp).
//
// Life of a key generation (one TLS connection = one generation; docs/peering.md):
//   handshake -> both Hellos -> derived (EspSa objects made from the TLS exporter)
//   -> installing (listed by sas(), compiled into a snapshot) -> inbound live (published(): the
//   data plane can open them; Ready sent) -> active (the peer's Ready arrived: our outbound
//   traffic moves to this generation's SAs) -> retiring (a newer generation became active: its
//   inbound SAs stay grace_ms for packets in flight, then go; Delete sent).
// So nothing is sent on an SA before the receiver can open it, and a rekey loses no packet.
//
// Contract
// - Control thread only; nothing blocks (sockets are non-blocking, merged into the owner's
//   poll via fill_pollfds()/handle()); tick() runs the timers and must be called at least every
//   100 ms.
// - Who connects: of two nodes, the one whose name sorts lower dials (one connection per pair);
//   the other listens and asks for a rekey with RekeyRequest. Rekeys: timer (rekey_seconds,
//   +-10 % jitter), per-SA packet or byte count, sequence space half used, or rekey().
// - A lost connection keeps the SAs: the dialer reconnects with exponential back-off (100 ms up
//   to reconnect_max_ms, jittered), each reconnect a new generation. SAs whose connection is gone
//   expire sa_lifetime_s after their handshake (the peer becomes unreachable: fail closed). A
//   Hello with a new boot_id means the peer restarted: the older generations' inbound SAs go at
//   once.
// - dirty(): the SA set changed; the owner compiles a snapshot (which calls sas()), publishes it
//   and then calls published(). Until published() nothing new is acknowledged to the peer.
// - The certificate, key and bundle files are re-read when they change (checked every second);
//   a bad new set is logged and counted and the old credentials stay. A certificate that expires
//   within expiry_warning_hours is logged and counted (cert_expiry_soon).
// - Keys live only in the EspSa objects (and briefly in DerivedSa, wiped); nothing logs a key.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

// OpenSSL before IPsec-MB (crypto/): ipsec-mb.h defines SHA1 & co. as macros.
#include "ctl/peering/endpoint.hpp"
#include "ctl/peering/keys.hpp"
#include "ctl/peering/tls.hpp"
//
#include "ctl/compile.hpp"
#include "vanish/config.pb.h"
#include "vanish/ctl.pb.h"

namespace vanish::ctl::peering {

struct PeeringSettings {
  std::string cert_file, key_file, bundle_file;  // resolved paths
  crypto::AeadAlg alg = crypto::AeadAlg::kAes128Gcm;
  int handshake_timeout_ms = 2000;
  uint32_t rekey_seconds = 3600;               // 0: no timer
  uint64_t rekey_packets = uint64_t(1) << 32;  // 0: off
  uint64_t rekey_bytes = 0;                    // 0: off
  uint32_t grace_ms = 2000;
  uint32_t sa_lifetime_s = 7200;
  uint32_t reconnect_max_ms = 30000;
  uint32_t expiry_warning_hours = 24;
  std::string listen_address;
  std::string trust_domain;
};

struct PeerSpec {
  std::string node, spiffe_id, address;
};

// The peering settings and peers (every other node with spiffe_id and management_address) of a
// validated config that has a peering block. Relative file paths are taken from `config_dir`.
bool peering_from_config(const config::Config& cfg, const std::string& config_dir,
                         PeeringSettings* settings, std::vector<PeerSpec>* peers, std::string* err);
// Inbound SPIs the config's static SAs use at this node (peering never allocates them).
std::vector<uint32_t> static_inbound_spis(const config::Config& cfg);

struct PeeringStats {
  uint64_t handshakes = 0;          // generations whose Hellos were exchanged
  uint64_t rekeys = 0;              // a generation replaced an older one
  uint64_t peer_restarts = 0;       // new boot ids
  uint64_t sas_expired = 0;         // peers whose SAs reached their lifetime without a connection
  uint64_t protocol_errors = 0;     // bad Hello, unexpected frame, SA init failure
  uint64_t cert_reloads = 0;        // credentials replaced from changed files
  uint64_t cert_reload_errors = 0;  // changed files that did not load (old credentials kept)
  uint64_t cert_expiry_soon = 0;    // warnings about our certificate's expiry
  uint64_t connections_lost = 0;    // established connections that failed
  RefusalCounters refusals{};       // handshakes refused, by reason
};

struct PeerView {
  std::string node, spiffe_id, address;
  std::string connection;  // established | handshake | backoff | down
  bool dialer = false;
  double handshake_ms = 0;  // last: connect (or accept) to SAs installed, this side
  uint64_t handshakes = 0, rekeys = 0, peer_restarts = 0;
  uint32_t generations = 0;  // with SAs installed
  int64_t last_handshake_unix = 0;
  std::string last_error;
  bool reachable = false;  // an active generation with outbound SAs
};

class PeeringManager {
 public:
  using Log = std::function<void(bool error, const std::string& line)>;
  PeeringManager(std::string self, unsigned n_workers, Log log);
  ~PeeringManager();
  PeeringManager(const PeeringManager&) = delete;
  PeeringManager& operator=(const PeeringManager&) = delete;

  // First call: loads the credentials and listens. Later calls (config reloads): peers added or
  // removed, settings updated, credentials re-read if their paths changed. False (nothing
  // changed) with *err when the credentials do not load or the listener cannot bind.
  bool configure(const PeeringSettings& s, const std::vector<PeerSpec>& peers,
                 std::vector<uint32_t> reserved_spis, std::string* err);

  void fill_pollfds(std::vector<pollfd>* fds) const;
  void handle(const std::vector<pollfd>& fds, size_t first);
  void tick();
  // fill_pollfds + poll(timeout_ms) + handle + tick.
  int poll_once(int timeout_ms);

  bool dirty() const { return dirty_; }
  std::shared_ptr<const DynamicSas> sas();
  void published();

  // Starts a rekey with `node` (empty: every peer); returns the peers it was started for.
  std::vector<std::string> rekey(const std::string& node);

  std::vector<PeerView> view() const;
  size_t reachable_peers() const;
  const PeeringStats& stats() const;
  uint16_t port() const;
  uint64_t boot_id() const { return boot_id_; }
  const std::string& self() const { return self_; }

 private:
  struct Gen;
  struct Peer;
  void drive(Peer& p, Clock::time_point now);
  void on_frame(Peer& p, Gen& g, const pv1::Frame& f, Clock::time_point now);
  void on_hello(Peer& p, Gen& g, const pv1::Hello& h, Clock::time_point now);
  void activate(Peer& p, Gen& g, Clock::time_point now);
  void want_rekey(Peer& p, const std::string& why);
  void dial(Peer& p, Clock::time_point now);
  void schedule_redial(Peer& p, Clock::time_point now, bool refused_fast = false);
  bool rekey_due(const Peer& p, Clock::time_point now, std::string* why) const;
  void check_files(Clock::time_point now);
  bool load_credentials(std::string* err);
  void check_expiry();
  std::vector<uint32_t> new_spis();
  void on_established(const std::shared_ptr<PeerConn>& c);
  Peer* find_peer(const std::string& node);
  void log(bool error, const std::string& line) const {
    if (log_) log_(error, line);
  }

  std::string self_;
  unsigned n_workers_;
  Log log_;
  uint64_t boot_id_ = 0;
  uint64_t next_gen_id_ = 1;
  PeeringSettings settings_;
  std::vector<uint32_t> reserved_spis_;
  std::unordered_set<uint32_t> spis_in_use_;      // inbound SPIs of every generation
  std::vector<std::unique_ptr<TlsContext>> tls_;  // newest last; older ones kept for their conns
  std::unique_ptr<PeeringEndpoint> endpoint_;
  std::vector<std::unique_ptr<Peer>> peers_;
  bool dirty_ = false;
  std::vector<Gen*> installing_;  // listed by the last sas(), waiting for published()
  mutable PeeringStats stats_;
  Clock::time_point next_file_check_{};
  struct FileStamp {
    int64_t mtime_ns = 0, size = 0, ino = 0;
    friend bool operator==(const FileStamp&, const FileStamp&) = default;
  };
  FileStamp stamps_[3];
  bool expiry_warned_ = false;
  Clock::time_point next_expiry_check_{};
};

// Adds the peering columns (keying "mtls", connection, last handshake, rekeys, ...) to the rows
// of `vanishctl peers` (filled from the snapshot by the data plane's view).
void annotate_peer_rows(const PeeringManager& m, ctl::v1::PeerRows* rows);
// Prometheus series of peering (vanish_peering_*, vanish_peer_*), appended to `o`.
void append_peering_metrics(const PeeringManager& m, std::string& o);

}  // namespace vanish::ctl::peering
