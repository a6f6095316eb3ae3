#include "ctl/control_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>

namespace vanish::ctl {

namespace {

// Per read, at most this much (a 16 MiB request takes a few ticks, never one long one).
constexpr size_t kReadChunk = 256 * 1024;
constexpr size_t kReadBudgetPerPoll = 4u << 20;

bool make_addr(const std::string& path, sockaddr_un* a, std::string* err) {
  std::memset(a, 0, sizeof(*a));
  a->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a->sun_path)) {
    *err = "control socket path \"" + path + "\" is empty or longer than " +
           std::to_string(sizeof(a->sun_path) - 1) + " bytes";
    return false;
  }
  std::memcpy(a->sun_path, path.data(), path.size());
  return true;
}

// True if something accepts connections at `path` (another vanishd).
bool socket_alive(const sockaddr_un& a) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool alive = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return alive;
}

}  // namespace

struct ControlServer::Conn {
  explicit Conn(int f, uint32_t max_request) : fd(f), rd(max_request) {}
  ~Conn() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
  FrameReader rd;
  std::string out;  // pending response bytes
  size_t out_off = 0;
  bool close_after_write = false;
  Clock::time_point deadline;
};

ControlServer::ControlServer() = default;

ControlServer::~ControlServer() {
  close();
}

bool ControlServer::open(const ControlServerOptions& opts, std::string* err) {
  close();
  sockaddr_un a;
  if (!make_addr(opts.path, &a, err)) return false;
  namespace fs = std::filesystem;
  fs::path dir = fs::path(opts.path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      *err = "cannot create " + dir.string() + ": " + ec.message();
      return false;
    }
  }
  struct stat st;
  if (::lstat(opts.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *err = opts.path + " exists and is not a socket";
      return false;
    }
    if (socket_alive(a)) {
      *err = opts.path + " is in use (another vanishd for this node?)";
      return false;
    }
    ::unlink(opts.path.c_str());  // stale: its server is gone
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  // The mode comes from the umask at bind(): no window in which others may connect.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a));
  int bind_errno = errno;
  ::umask(old);
  if (rc != 0) {
    *err = "bind " + opts.path + ": " + std::strerror(bind_errno);
    ::close(fd);
    return false;
  }
  if (::chmod(opts.path.c_str(), 0600) != 0 || ::listen(fd, 64) != 0) {
    *err = "listen " + opts.path + ": " + std::strerror(errno);
    ::close(fd);
    ::unlink(opts.path.c_str());
    return false;
  }
  opts_ = opts;
  if (opts_.max_connections == 0) opts_.max_connections = 1;
  listen_fd_ = fd;
  return true;
}

void ControlServer::close() {
  conns_.clear();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(opts_.path.c_str());
  }
}

void ControlServer::respond(Conn& c, const v1::Response& r, bool close_after) {
  std::string frame;
  if (!encode_frame(r, &frame)) {
    v1::Response e;
    e.set_id(r.id());
    e.set_error("response cannot be serialized");
    encode_frame(e, &frame);
  }
  c.out.append(frame);
  c.close_after_write = c.close_after_write || close_after;
}

void ControlServer::accept_all(Clock::time_point now) {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an error that the next poll retries
    stats_.accepted++;
    if (conns_.size() >= opts_.max_connections) {
      stats_.refused++;
      v1::Response r;
      r.set_error("too many control connections (" + std::to_string(opts_.max_connections) +
                  "); try again");
      std::string frame;
      encode_frame(r, &frame);
      // Best effort: a fresh socket buffer takes a small frame without blocking.
      (void)!::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<Conn>(fd, opts_.max_request);
    c->deadline = now + opts_.io_timeout;
    conns_.push_back(std::move(c));
  }
}

bool ControlServer::flush(Conn& c, Clock::time_point now) {
  while (c.out_off < c.out.size()) {
    ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out_off += size_t(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  c.out.clear();
  c.out_off = 0;
  if (c.close_after_write) return false;
  c.deadline = now + opts_.io_timeout;  // the next request's time starts now
  return true;
}

bool ControlServer::on_readable(Conn& c, const Handler& handler, Clock::time_point now) {
  char buf[kReadChunk];
  size_t budget = kReadBudgetPerPoll;
  while (budget > 0 && c.out.empty()) {
    size_t want = c.rd.want();
    if (want > sizeof(buf)) want = sizeof(buf);
    ssize_t n = ::recv(c.fd, buf, want, MSG_DONTWAIT);
    if (n == 0) return false;  // peer closed (a truncated frame is dropped with it)
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    budget -= std::min(budget, size_t(n));
    c.rd.feed(buf, size_t(n));
    if (c.rd.state() == FrameReader::State::kTooLarge) {
      stats_.oversized++;
      v1::Response r;
      r.set_error("request of " + std::to_string(c.rd.length()) + " bytes exceeds the limit of " +
                  std::to_string(opts_.max_request) + " bytes");
      respond(c, r, true);
      return flush(c, now);
    }
    if (c.rd.state() != FrameReader::State::kComplete) continue;
    std::string body = c.rd.take();
    v1::Request req;
    v1::Response resp;
    std::string err;
    if (!decode_request(body, &req, &err)) {
      stats_.malformed++;
      resp.set_id(req.id());
      resp.set_error(err);
    } else {
      stats_.requests++;
      try {
        handler(req, &resp);
      } catch (const std::exception& e) {
        resp.Clear();
        resp.set_error(std::string("internal error: ") + e.what());
      }
      resp.set_id(req.id());
    }
    respond(c, resp, false);
    return flush(c, Clock::now());  // the handler may have taken a while
  }
  return true;
}

void ControlServer::poll(const Handler& handler, int timeout_ms) {
  if (listen_fd_ < 0) return;
  std::vector<pollfd> fds;
  fds.reserve(conns_.size() + 1);
  fds.push_back({listen_fd_, POLLIN, 0});
  for (auto& c : conns_) fds.push_back({c->fd, short(c->out.empty() ? POLLIN : POLLOUT), 0});
  int n = ::poll(fds.data(), fds.size(), timeout_ms);
  Clock::time_point now = Clock::now();
  std::vector<bool> keep(conns_.size(), true);
  if (n > 0) {
    for (size_t i = 0; i < conns_.size(); i++) {
      short ev = fds[i + 1].revents;
      if (!ev) continue;
      Conn& c = *conns_[i];
      if (!c.out.empty()) {
        keep[i] = (ev & (POLLERR | POLLNVAL)) ? false : flush(c, now);
      } else {
        keep[i] = on_readable(c, handler, now);  // also sees EOF / errors
      }
    }
  }
  for (size_t i = 0; i < conns_.size(); i++) {
    if (keep[i] && now > conns_[i]->deadline) {
      stats_.timed_out++;
      keep[i] = false;
    }
  }
  size_t j = 0;
  for (size_t i = 0; i < conns_.size(); i++)
    if (keep[i]) conns_[j++] = std::move(conns_[i]);
  conns_.resize(j);
  if (n > 0 && (fds[0].revents & POLLIN)) accept_all(now);
}

}  // namespace vanish::ctl
