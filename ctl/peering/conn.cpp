#include "ctl/peering/conn.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vanish::ctl::peering {
namespace {

Refusal from_verify_error(int e) {
  switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return Refusal::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return Refusal::kNotYetValid;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return Refusal::kUnknownCa;
    default:
      return Refusal::kBadCertificate;
  }
}

// Classifies the error queue after SSL_ERROR_SSL.
Refusal from_ssl_error(unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return Refusal::kProtocolError;
  int r = ERR_GET_REASON(e);
  switch (r) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
      return Refusal::kNotTls13;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return Refusal::kNoCertificate;
    default:
      break;
  }
  if (r >= SSL_AD_REASON_OFFSET) return Refusal::kPeerAlert;  // SSL_R_*_ALERT_*: peer's alert
  return Refusal::kProtocolError;
}

}  // namespace

PeerConn::PeerConn(const TlsContext& tls, int fd, Role role, PeerPolicy policy,
                   Clock::time_point deadline, bool connecting)
    : fd_(fd),
      role_(role),
      state_(connecting ? State::kConnecting : State::kHandshake),
      policy_(std::move(policy)),
      start_(Clock::now()),
      deadline_(deadline) {
  ssl_ = SSL_new(tls.get());
  if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) {
    fail(Refusal::kProtocolError, "SSL_new failed");
    return;
  }
  SSL_set_app_data(ssl_, this);
  SSL_set_verify(ssl_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, &PeerConn::verify_cb);
  if (role_ == Role::kClient) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
  want_write_ = connecting || role_ == Role::kClient;
  want_read_ = !connecting;
}

PeerConn::~PeerConn() {
  if (ssl_) SSL_free(ssl_);
  if (fd_ >= 0) ::close(fd_);
}

int PeerConn::verify_cb(int preverify_ok, X509_STORE_CTX* store) {
  SSL* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = ssl ? static_cast<PeerConn*>(SSL_get_app_data(ssl)) : nullptr;
  if (!self) return 0;
  if (!preverify_ok) {
    if (self->verify_error_ == 0) self->verify_error_ = X509_STORE_CTX_get_error(store);
    return 0;
  }
  if (X509_STORE_CTX_get_error_depth(store) != 0) return 1;
  std::string detail;
  Refusal r = check_peer_identity(X509_STORE_CTX_get_current_cert(store), self->policy_,
                                  &self->peer_, &detail);
  if (r != Refusal::kNone) {
    self->verify_refusal_ = r;
    self->detail_ = detail;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

short PeerConn::events() const {
  if (done()) return 0;
  short ev = 0;
  if (want_read_) ev |= POLLIN;
  if (want_write_ || (state_ == State::kEstablished && !out_.empty())) ev |= POLLOUT;
  return ev;
}

void PeerConn::fail(Refusal r, std::string detail) {
  if (done()) return;
  state_ = State::kFailed;
  refusal_ = r;
  if (!detail.empty()) detail_ = std::move(detail);
  ERR_clear_error();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    if (ssl_) SSL_set_fd(ssl_, -1);
  }
}

void PeerConn::close() {
  if (done()) return;
  if (state_ == State::kEstablished && ssl_) SSL_shutdown(ssl_);  // best effort, non-blocking
  state_ = State::kClosed;
  ERR_clear_error();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void PeerConn::on_tick(Clock::time_point now) {
  if (done()) return;
  if (!got_first_frame_ && now >= deadline_) {
    fail(Refusal::kTimeout, state_ == State::kEstablished ? "no Hello" : "");
  }
}

void PeerConn::on_ready(short revents, Clock::time_point now) {
  if (done()) return;
  if (state_ == State::kConnecting) {
    if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr != 0) {
      fail(Refusal::kConnectFailed, strerror(soerr));
      return;
    }
    state_ = State::kHandshake;
  }
  drive(now);
  on_tick(now);
}

void PeerConn::drive(Clock::time_point now) {
  if (state_ == State::kHandshake) handshake(now);
  if (state_ == State::kEstablished) {
    do_write();
    if (!done()) do_read();
    if (!done()) do_write();
  }
}

void PeerConn::ssl_failed(int ret, const char* where) {
  int e = SSL_get_error(ssl_, ret);
  if (e == SSL_ERROR_WANT_READ) {
    want_read_ = true;
    want_write_ = false;
    return;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    want_write_ = true;
    want_read_ = false;
    return;
  }
  if (verify_refusal_ != Refusal::kNone) {
    fail(verify_refusal_, detail_);
  } else if (verify_error_ != 0) {
    fail(from_verify_error(verify_error_), X509_verify_cert_error_string(verify_error_));
  } else if (e == SSL_ERROR_ZERO_RETURN) {
    if (state_ == State::kEstablished) {
      close();
    } else {
      fail(Refusal::kClosed, where);
    }
  } else if (e == SSL_ERROR_SYSCALL) {
    int err = errno;
    unsigned long q = ERR_peek_last_error();
    if (q != 0) {
      fail(from_ssl_error(q), ERR_reason_error_string(q) ? ERR_reason_error_string(q) : where);
    } else if (state_ == State::kEstablished && got_first_frame_) {
      close();  // EOF or reset after a working session
    } else {
      fail(Refusal::kClosed, err ? strerror(err) : "EOF");
    }
  } else {
    unsigned long q = ERR_peek_last_error();
    const char* why = ERR_reason_error_string(q);
    fail(from_ssl_error(q), why ? why : where);
  }
}

void PeerConn::handshake(Clock::time_point now) {
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret != 1) {
    ssl_failed(ret, "handshake");
    return;
  }
  if (SSL_version(ssl_) != TLS1_3_VERSION) {
    fail(Refusal::kNotTls13, SSL_get_version(ssl_));
    return;
  }
  // The verify callback already accepted the leaf; recompute the identity from the session's
  // peer certificate so peer_ never depends on callback ordering.
  X509* leaf = SSL_get0_peer_certificate(ssl_);
  std::string detail;
  Refusal r = check_peer_identity(leaf, policy_, &peer_, &detail);
  if (r != Refusal::kNone) {
    fail(r, detail);
    return;
  }
  state_ = State::kEstablished;
  was_established_ = true;
  handshake_ms_ = std::chrono::duration<double, std::milli>(now - start_).count();
  want_read_ = true;
  want_write_ = false;
}

bool PeerConn::send(const pv1::Frame& f) {
  if (state_ != State::kEstablished) return false;
  std::string buf;
  if (!encode_frame(f, &buf) || buf.size() > kMaxPeeringFrame + kFrameHeaderBytes) return false;
  out_ += buf;
  do_write();
  return !done();
}

bool PeerConn::next_frame(pv1::Frame* f) {
  if (in_.empty()) return false;
  *f = std::move(in_.front());
  in_.pop_front();
  return true;
}

void PeerConn::do_write() {
  while (!out_.empty() && !done()) {
    ERR_clear_error();
    int n = SSL_write(ssl_, out_.data(), int(std::min<size_t>(out_.size(), 1 << 20)));
    if (n <= 0) {
      ssl_failed(n, "write");
      if (!done()) want_read_ = true;  // keep reading while the write waits
      return;
    }
    out_.erase(0, size_t(n));
  }
  want_write_ = false;
  want_read_ = true;
}

void PeerConn::do_read() {
  char buf[16384];
  for (int rounds = 0; rounds < 64 && !done(); ++rounds) {
    size_t want = reader_.want();
    ERR_clear_error();
    int n = SSL_read(ssl_, buf, int(std::min(want, sizeof buf)));
    if (n <= 0) {
      ssl_failed(n, "read");
      if (!done()) want_read_ = true;
      return;
    }
    size_t used = 0;
    while (used < size_t(n)) {
      used += reader_.feed(buf + used, size_t(n) - used);
      if (reader_.state() == FrameReader::State::kTooLarge) {
        fail(Refusal::kProtocolError, "peering frame too large");
        return;
      }
      if (reader_.state() == FrameReader::State::kComplete) {
        pv1::Frame f;
        std::string body = reader_.take();
        if (!f.ParseFromString(body) || f.msg_case() == pv1::Frame::MSG_NOT_SET) {
          fail(Refusal::kProtocolError, "not a vanish.peering.v1.Frame");
          return;
        }
        in_.push_back(std::move(f));
        got_first_frame_ = true;
      }
    }
  }
}

}  // namespace vanish::ctl::peering
