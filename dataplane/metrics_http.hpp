// MetricsHttp: a tiny HTTP/1.1 responder for Prometheus scrapes, polled from the control loop.
//
// Contract
// - Non-blocking sockets, polled by poll() without waiting; it never blocks the control thread
//   (and the workers never see it: the page is rendered from counters they only write).
// - Bounded: at most max_clients connections (more are accepted and closed at once), a request
//   head of at most max_request bytes, and a deadline per connection (timeout_ms from accept to
//   the last byte of the response): slow or garbage clients are cut off.
// - GET/HEAD /metrics and /stats/prometheus (ztunnel's path) answer the page; other paths 404,
//   other methods 405, a malformed or oversized head 400/431. One request per connection
//   (Connection: close).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vanish::dp {

class MetricsHttp {
 public:
  struct Options {
    unsigned max_clients = 4;
    size_t max_request = 8192;
    std::chrono::milliseconds timeout{2000};
  };
  MetricsHttp() = default;
  explicit MetricsHttp(Options o) : opt_(o) {}
  ~MetricsHttp();
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  // addr: "HOST:PORT" or "[IPv6]:PORT" (port 0: any; see port()).
  bool open(const std::string& addr, std::string* err);
  bool is_open() const { return listen_fd_ >= 0; }
  uint16_t port() const { return port_; }

  // Accepts, reads, answers and times out without waiting. render() builds the page.
  void poll(const std::function<std::string()>& render);

  uint64_t served() const { return served_; }
  uint64_t rejected() const { return rejected_; }  // over the limit, bad requests, timeouts

 private:
  struct Client {
    int fd = -1;
    std::chrono::steady_clock::time_point deadline;
    std::string in, out;
    size_t sent = 0;
    bool responding = false;
  };
  void respond(Client& c, const std::function<std::string()>& render);
  void close_client(size_t i);

  Options opt_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<Client> clients_;
  uint64_t served_ = 0, rejected_ = 0;
};

}  // namespace vanish::dp
