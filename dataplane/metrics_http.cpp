#include "dataplane/metrics_http.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "ctl/host_port.hpp"
#include <cstring>

namespace vanish::dp {

namespace {

std::string reply(const char* status, const char* type, const std::string& body, bool head) {
  std::string r = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                  "\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nConnection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

MetricsHttp::~MetricsHttp() {
  for (auto& c : clients_) ::close(c.fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

bool MetricsHttp::open(const std::string& addr, std::string* err) {
  sockaddr_storage ss;
  socklen_t len;
  if (!ctl::parse_host_port(addr, &ss, &len, true)) {
    *err = "bad address \"" + addr + "\" (HOST:PORT or [IPv6]:PORT)";
    return false;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 16) != 0) {
    *err = "cannot listen on " + addr + ": " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  sockaddr_storage got;
  socklen_t gl = sizeof got;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&got), &gl);
  port_ = ntohs(got.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&got)->sin_port
                                         : reinterpret_cast<sockaddr_in6*>(&got)->sin6_port);
  listen_fd_ = fd;
  return true;
}

void MetricsHttp::close_client(size_t i) {
  ::close(clients_[i].fd);
  clients_[i] = std::move(clients_.back());
  clients_.pop_back();
}

void MetricsHttp::respond(Client& c, const std::function<std::string()>& render) {
  c.responding = true;
  size_t eol = c.in.find("\r\n");
  std::string line = c.in.substr(0, eol);
  size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1 || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    rejected_++;
    c.out = reply("400 Bad Request", "text/plain", "bad request\n", false);
    return;
  }
  std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  size_t q = target.find('?');
  std::string path = target.substr(0, q);
  bool head = method == "HEAD";
  if (method != "GET" && !head) {
    rejected_++;
    c.out = reply("405 Method Not Allowed", "text/plain", "GET or HEAD\n", false);
  } else if (path == "/metrics" || path == "/stats/prometheus") {
    served_++;
    c.out = reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(), head);
  } else if (path == "/") {
    c.out = reply("200 OK", "text/plain", "vanishd metrics: /metrics\n", head);
  } else {
    c.out = reply("404 Not Found", "text/plain", "not found (try /metrics)\n", head);
  }
}

void MetricsHttp::poll(const std::function<std::string()>& render) {
  if (listen_fd_ < 0) return;
  auto now = std::chrono::steady_clock::now();
  // Accept what is waiting (bounded per tick); over the limit: close at once.
  for (int n = 0; n < 16; n++) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    if (clients_.size() >= opt_.max_clients) {
      rejected_++;
      ::close(fd);
      continue;
    }
    Client c;
    c.fd = fd;
    c.deadline = now + opt_.timeout;
    clients_.push_back(std::move(c));
  }
  for (size_t i = 0; i < clients_.size();) {
    Client& c = clients_[i];
    bool done = false;
    if (!c.responding) {
      char buf[2048];
      for (;;) {
        ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
        if (r > 0) {
          c.in.append(buf, size_t(r));
          if (c.in.size() > opt_.max_request) break;
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) done = true;
        break;
      }
      if (c.in.size() > opt_.max_request) {
        rejected_++;
        c.responding = true;
        c.out = reply("431 Request Header Fields Too Large", "text/plain", "too large\n", false);
        done = false;
      } else if (c.in.find("\r\n\r\n") != std::string::npos ||
                 c.in.find("\n\n") != std::string::npos) {
        respond(c, render);
        done = false;
      }
    }
    if (c.responding && !done) {
      while (c.sent < c.out.size()) {
        ssize_t w = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (w > 0) {
          c.sent += size_t(w);
          continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        done = true;
        break;
      }
      if (c.sent >= c.out.size()) done = true;
    }
    if (!done && now > c.deadline) {
      rejected_++;  // slow client: cut off
      done = true;
    }
    if (done) {
      if (c.responding && c.sent >= c.out.size()) ::shutdown(c.fd, SHUT_WR);
      close_client(i);
    } else {
      i++;
    }
  }
}

}  // namespace vanish::dp
