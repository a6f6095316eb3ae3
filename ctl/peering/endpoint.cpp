#include "ctl/peering/endpoint.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/host_port.hpp"

#include <cerrno>
#include <cstring>
#include <iostream>

namespace vanish::ctl::peering {
namespace {

void set_common(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

PeeringEndpoint::PeeringEndpoint(const TlsContext& tls, PeerPolicy server_policy,
                                 EndpointOptions opts)
    : tls_(&tls), server_policy_(std::move(server_policy)), opts_(opts) {
  log = [](const std::string& line) { std::cerr << line << "\n"; };
}

PeeringEndpoint::~PeeringEndpoint() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

bool PeeringEndpoint::listen(const std::string& host_port, std::string* err) {
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!parse_host_port(host_port, &ss, &len)) {
    if (err) *err = "\"" + host_port + "\" is not host:port";
    return false;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 256) != 0) {
    if (err) *err = host_port + ": " + strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  listen_fd_ = fd;
  return true;
}

std::shared_ptr<PeerConn> PeeringEndpoint::connect(const std::string& host_port,
                                                   const std::string& spiffe_id,
                                                   const std::string& node) {
  PeerPolicy policy;
  // The trust domain comes from config (the server policy) when given, else from our own id.
  policy.trust_domain =
      server_policy_.trust_domain.empty() ? tls_->trust_domain() : server_policy_.trust_domain;
  policy.allowed[spiffe_id] = node;
  auto deadline = Clock::now() + std::chrono::milliseconds(opts_.handshake_timeout_ms);
  sockaddr_storage ss;
  socklen_t len = 0;
  int fd = -1;
  bool connecting = false;
  std::string why;
  if (!parse_host_port(host_port, &ss, &len)) {
    why = "bad address " + host_port;
  } else {
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      why = strerror(errno);
    } else {
      set_common(fd);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        if (errno == EINPROGRESS) {
          connecting = true;
        } else {
          why = strerror(errno);
        }
      }
    }
  }
  auto c = std::make_shared<PeerConn>(*tls_, fd, PeerConn::Role::kClient, std::move(policy),
                                      deadline, connecting);
  if (!why.empty()) c->fail(Refusal::kConnectFailed, why);
  conns_.push_back(c);
  reported_.push_back(false);
  reap(Clock::now());
  return c;
}

void PeeringEndpoint::accept_all() {
  for (;;) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error: poll again
    ++accepted_;
    size_t handshaking = 0;
    for (const auto& c : conns_) handshaking += c->state() == PeerConn::State::kHandshake;
    if (handshaking >= opts_.max_handshaking) {
      ::close(fd);
      ++refusals_[size_t(Refusal::kTimeout)];
      continue;
    }
    set_common(fd);
    auto deadline = Clock::now() + std::chrono::milliseconds(opts_.handshake_timeout_ms);
    conns_.push_back(std::make_shared<PeerConn>(*tls_, fd, PeerConn::Role::kServer, server_policy_,
                                                deadline, false));
    reported_.push_back(false);
  }
}

void PeeringEndpoint::fill_pollfds(std::vector<pollfd>* fds) const {
  if (listen_fd_ >= 0) fds->push_back({listen_fd_, POLLIN, 0});
  for (const auto& c : conns_) fds->push_back({c->fd(), c->events(), 0});
}

void PeeringEndpoint::handle(const std::vector<pollfd>& fds, size_t first) {
  auto now = Clock::now();
  size_t i = first;
  size_t n = conns_.size();  // accept_all() appends after these
  bool listener_ready = false;
  if (listen_fd_ >= 0) listener_ready = fds[i++].revents & POLLIN;
  for (size_t k = 0; k < n && i < fds.size(); ++k, ++i) {
    if (fds[i].revents) conns_[k]->on_ready(fds[i].revents, now);
  }
  if (listener_ready) accept_all();
  // Newly accepted sockets: try the handshake at once (the ClientHello is usually there).
  for (size_t k = n; k < conns_.size(); ++k) conns_[k]->on_ready(POLLIN, now);
  reap(now);
}

void PeeringEndpoint::reap(Clock::time_point now) {
  for (size_t k = 0; k < conns_.size();) {
    PeerConn& c = *conns_[k];
    c.on_tick(now);
    if (!reported_[k] && c.was_established()) {
      reported_[k] = true;
      ++established_;
      if (on_established) on_established(conns_[k]);
    }
    if (c.done()) {
      if (c.state() == PeerConn::State::kFailed && c.was_established()) {
        ++lost_;
        if (log)
          log("peering: connection to node " + c.peer().node + " lost: " +
              refusal_name(c.refusal()) + (c.detail().empty() ? "" : " (" + c.detail() + ")"));
      } else if (c.state() == PeerConn::State::kFailed) {
        ++refusals_[size_t(c.refusal())];
        if (log) {
          std::string who = c.peer().node.empty() ? std::string(c.role() == PeerConn::Role::kServer
                                                                    ? "inbound connection"
                                                                    : "outbound connection")
                                                  : "node " + c.peer().node;
          log("peering: refused " + who + ": " + refusal_name(c.refusal()) +
              (c.detail().empty() ? "" : " (" + c.detail() + ")"));
        }
      }
      conns_.erase(conns_.begin() + long(k));
      reported_.erase(reported_.begin() + long(k));
      continue;
    }
    ++k;
  }
}

int PeeringEndpoint::poll_once(int timeout_ms) {
  std::vector<pollfd> fds;
  fill_pollfds(&fds);
  // Never sleep past the nearest deadline by more than 50 ms.
  int t = timeout_ms < 0 || timeout_ms > 50 ? 50 : timeout_ms;
  int n = ::poll(fds.data(), fds.size(), t);
  if (n < 0 && errno != EINTR) return -1;
  if (n < 0) fds.clear();
  for (auto& f : fds) {
    if (n <= 0) f.revents = 0;
  }
  if (fds.empty()) {
    reap(Clock::now());
    return 0;
  }
  handle(fds, 0);
  return n;
}

}  // namespace vanish::ctl::peering
