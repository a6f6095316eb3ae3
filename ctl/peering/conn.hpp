// One mutual-TLS peering connection, driven by the control thread's poll() loop.
//
// Contract
// - The socket is non-blocking; no call here blocks. The owner polls fd() for events(), then
//   calls on_ready(revents, now); it calls on_tick(now) at least every few hundred ms so the
//   deadline fires even without I/O.
// - Lifecycle: kConnecting (client TCP connect) -> kHandshake -> kEstablished -> kClosed, or
//   kFailed with refusal() != kNone at any step. The deadline (handshake timeout) covers connect,
//   the TLS handshake and the arrival of the peer's first frame (its Hello): a peer that stalls
//   anywhere before that fails with kTimeout.
// - The peer certificate is checked during the handshake (verify callback): chain against the
//   bundle, then check_peer_identity() against the policy (a client's policy names exactly the
//   node it dials). A refused peer gets a fatal alert; nothing of it is kept but its refusal.
// - After the handshake the connection carries vanish.peering.v1.Frame messages framed like the
//   control socket (4-byte big-endian length, at most kMaxPeeringFrame bytes).
// - ssl() is exposed for key derivation (ctl/peering/keys.hpp) once established.
#pragma once

#include <poll.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "ctl/control_frame.hpp"
#include "ctl/peering/tls.hpp"
#include "vanish/peering.pb.h"

namespace vanish::ctl::peering {

namespace pv1 = vanish::peering::v1;
using Clock = std::chrono::steady_clock;

inline constexpr uint32_t kMaxPeeringFrame = 64u << 10;

class PeerConn {
 public:
  enum class Role : uint8_t { kClient, kServer };
  enum class State : uint8_t { kConnecting, kHandshake, kEstablished, kClosed, kFailed };

  // Takes ownership of `fd` (non-blocking; a client's connect() may be in progress).
  PeerConn(const TlsContext& tls, int fd, Role role, PeerPolicy policy, Clock::time_point deadline,
           bool connecting);
  ~PeerConn();
  PeerConn(const PeerConn&) = delete;
  PeerConn& operator=(const PeerConn&) = delete;

  int fd() const { return fd_; }
  short events() const;
  void on_ready(short revents, Clock::time_point now);
  void on_tick(Clock::time_point now);

  // Queues a frame (established only); false if it does not encode or the connection is down.
  bool send(const pv1::Frame& f);
  // Pops the next received frame.
  bool next_frame(pv1::Frame* f);
  // The first frame arrived (the deadline no longer applies).
  bool got_first_frame() const { return got_first_frame_; }
  // Closes with a refusal of our own (e.g. a bad Hello).
  void fail(Refusal r, std::string detail);
  void close();

  Role role() const { return role_; }
  State state() const { return state_; }
  bool done() const { return state_ == State::kClosed || state_ == State::kFailed; }
  // The handshake completed (also true once closed or failed afterwards).
  bool was_established() const { return was_established_; }
  Refusal refusal() const { return refusal_; }
  const std::string& detail() const { return detail_; }
  const PeerIdentity& peer() const { return peer_; }
  SSL* ssl() const { return ssl_; }
  double handshake_ms() const { return handshake_ms_; }

  // Verify-callback glue (tls.cpp is not involved): index of our ex_data slot.
  static int verify_cb(int preverify_ok, X509_STORE_CTX* store);

 private:
  void drive(Clock::time_point now);
  void handshake(Clock::time_point now);
  void do_read();
  void do_write();
  void ssl_failed(int ret, const char* where);

  SSL* ssl_ = nullptr;
  int fd_ = -1;
  Role role_;
  State state_;
  PeerPolicy policy_;
  Clock::time_point start_;
  Clock::time_point deadline_;
  Refusal refusal_ = Refusal::kNone;
  int verify_error_ = 0;  // first X509_V_ERR_* seen, 0 if none
  Refusal verify_refusal_ = Refusal::kNone;
  std::string detail_;
  PeerIdentity peer_;
  bool want_read_ = true;
  bool want_write_ = false;
  bool got_first_frame_ = false;
  bool was_established_ = false;
  double handshake_ms_ = 0;
  std::string out_;
  FrameReader reader_{kMaxPeeringFrame};
  std::deque<pv1::Frame> in_;
};

}  // namespace vanish::ctl::peering
