// The peering endpoint of the control thread: a listening TCP socket (server role), outgoing
// connections (client role), all PeerConns, driven by one poll() — no thread ever blocks on a
// peer.
//
// Contract
// - listen() binds host:port (port 0: ephemeral, see port()); accepted connections get the
//   server policy (every configured node but this one). connect() dials a peer's
//   management_address and expects exactly that node's SPIFFE id.
// - poll_once(timeout) polls every socket, drives every connection, enforces deadlines, and
//   moves finished connections out: a failed one is counted by refusal, logged once
//   ("peering: refused <addr>: <reason> (<detail>)") and dropped from the endpoint; its
//   shared_ptr stays valid for whoever holds it. on_established runs once per connection whose
//   handshake completed (both roles). A connection that fails after its handshake is not a
//   refusal: it is logged as lost ("peering: connection to node X lost: <reason>") and counted
//   in lost().
// - set_tls() swaps the credentials for connections made after it (certificate rotation);
//   existing connections keep theirs. set_server_policy() likewise for accepted connections.
// - fill_pollfds()/handle() let the owner merge these sockets into its own poll set instead.
#pragma once

#include "ctl/host_port.hpp"

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctl/peering/conn.hpp"

namespace vanish::ctl::peering {

struct EndpointOptions {
  int handshake_timeout_ms = 2000;
  size_t max_handshaking = 256;  // accepted connections still in the handshake; more are closed
};

class PeeringEndpoint {
 public:
  PeeringEndpoint(const TlsContext& tls, PeerPolicy server_policy, EndpointOptions opts = {});
  void set_tls(const TlsContext& tls) { tls_ = &tls; }
  void set_server_policy(PeerPolicy p) { server_policy_ = std::move(p); }
  void set_options(EndpointOptions o) { opts_ = o; }
  ~PeeringEndpoint();

  bool listen(const std::string& host_port, std::string* err);
  uint16_t port() const { return port_; }

  // Starts a client connection to `host_port` expecting `spiffe_id` (node `node`). Returns the
  // connection, which may already have failed (refusal kConnectFailed).
  std::shared_ptr<PeerConn> connect(const std::string& host_port, const std::string& spiffe_id,
                                    const std::string& node);

  int poll_once(int timeout_ms);
  void fill_pollfds(std::vector<pollfd>* fds) const;  // listener first, then connections
  void handle(const std::vector<pollfd>& fds, size_t first);
  // Deadlines and reaping without I/O.
  void tick() { reap(Clock::now()); }

  const std::vector<std::shared_ptr<PeerConn>>& connections() const { return conns_; }
  const RefusalCounters& refusals() const { return refusals_; }
  uint64_t established() const { return established_; }
  uint64_t accepted() const { return accepted_; }
  uint64_t lost() const { return lost_; }

  std::function<void(const std::shared_ptr<PeerConn>&)> on_established;
  std::function<void(const std::string&)> log;  // default: stderr

 private:
  void accept_all();
  void reap(Clock::time_point now);

  const TlsContext* tls_;
  PeerPolicy server_policy_;
  EndpointOptions opts_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<std::shared_ptr<PeerConn>> conns_;
  std::vector<bool> reported_;  // parallel to conns_: on_established ran
  RefusalCounters refusals_{};
  uint64_t established_ = 0;
  uint64_t accepted_ = 0;
  uint64_t lost_ = 0;
};

using ctl::parse_host_port;  // ctl/host_port.hpp

}  // namespace vanish::ctl::peering
