#include "ctl/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vanish::ctl {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : int(left.count());
}

// Waits for `events` on fd until the deadline; false on timeout or poll error.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

ControlClient::~ControlClient() {
  close();
}

void ControlClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool ControlClient::connect(const std::string& path, std::string* err) {
  close();
  sockaddr_un a;
  std::memset(&a, 0, sizeof(a));
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a.sun_path)) {
    *err = "control socket path \"" + path + "\" is empty or too long";
    return false;
  }
  std::memcpy(a.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) {
    *err = "cannot connect to " + path + ": " + std::strerror(errno) +
           (errno == ENOENT || errno == ECONNREFUSED ? " (is vanishd running? --socket PATH)" : "");
    ::close(fd);
    return false;
  }
  fd_ = fd;
  return true;
}

bool ControlClient::call(v1::Request& req, v1::Response* resp, std::string* err,
                         std::chrono::milliseconds timeout) {
  if (fd_ < 0) {
    *err = "not connected";
    return false;
  }
  Clock::time_point deadline = Clock::now() + timeout;
  req.set_id(next_id_++);
  std::string frame;
  if (!encode_frame(req, &frame)) {
    *err = "request cannot be serialized";
    return false;
  }
  if (frame.size() - kFrameHeaderBytes > kMaxRequestBytes) {
    *err = "request of " + std::to_string(frame.size() - kFrameHeaderBytes) +
           " bytes exceeds the control socket's limit of " + std::to_string(kMaxRequestBytes);
    return false;
  }
  size_t off = 0;
  while (off < frame.size()) {
    if (!wait_for(fd_, POLLOUT, deadline)) {
      *err = "timed out sending the request";
      return false;
    }
    ssize_t n = ::send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += size_t(n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      *err = std::string("send: ") + std::strerror(errno);
      return false;
    }
  }
  FrameReader rd(kMaxResponseBytes);
  std::string buf(256 * 1024, '\0');
  while (rd.state() != FrameReader::State::kComplete) {
    if (rd.state() == FrameReader::State::kTooLarge) {
      *err = "response of " + std::to_string(rd.length()) + " bytes is too large";
      return false;
    }
    if (!wait_for(fd_, POLLIN, deadline)) {
      *err = "timed out waiting for vanishd's response";
      return false;
    }
    size_t want = std::min(rd.want(), buf.size());
    ssize_t n = ::recv(fd_, buf.data(), want, MSG_DONTWAIT);
    if (n == 0) {
      *err = "vanishd closed the connection";
      return false;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      *err = std::string("recv: ") + std::strerror(errno);
      return false;
    }
    rd.feed(buf.data(), size_t(n));
  }
  std::string body = rd.take();
  if (!resp->ParseFromString(body)) {
    *err = "malformed response from vanishd";
    return false;
  }
  if (resp->id() != req.id() && resp->id() != 0) {
    *err = "response id " + std::to_string(resp->id()) + " does not match request " +
           std::to_string(req.id());
    return false;
  }
  return true;
}

}  // namespace vanish::ctl
