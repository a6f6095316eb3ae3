// ControlServer: vanishd's control socket, a non-blocking Unix stream socket polled by the control
// thread (no thread of its own). Protocol: ctl/proto/vanish/ctl.proto, framing: control_frame.hpp.
//
// Contract
// - open() creates the socket's directory (mode 0755 if missing), refuses a path where a live
//   server answers or that is not a socket, replaces a stale socket file, binds with mode 0600
//   and listens. close() (and the destructor) closes every connection and unlinks the file.
// - poll(handler, timeout_ms) waits at most timeout_ms (0: does not wait) for socket events,
//   then accepts, reads, calls `handler` once per complete request (synchronously, on the
//   calling thread) and writes the responses. It never blocks on a client otherwise.
// - Bounds: a request body above max_request bytes gets an error response and the connection is
//   closed; each request must arrive completely, and each response be taken by the client, within
//   io_timeout of the previous response (or of accepting), else the connection is closed; past
//   max_connections, a new connection gets an error response and is closed. A frame that is
//   not a Request gets an error response and the connection stays usable. The handler's
//   exceptions become error responses. Nothing a client sends can crash or stall the caller.
// - Independent of DPDK.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ctl/control_frame.hpp"

namespace vanish::ctl {

struct ControlServerOptions {
  std::string path;
  uint32_t max_request = kMaxRequestBytes;
  std::chrono::milliseconds io_timeout{2000};
  unsigned max_connections = 16;
};

struct ControlServerStats {
  uint64_t accepted = 0;
  uint64_t requests = 0;
  uint64_t malformed = 0;  // frames that were not a Request
  uint64_t oversized = 0;  // declared length above max_request
  uint64_t timed_out = 0;  // closed by io_timeout
  uint64_t refused = 0;    // over max_connections
};

class ControlServer {
 public:
  using Handler = std::function<void(const v1::Request&, v1::Response*)>;

  ControlServer();
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  bool open(const ControlServerOptions& opts, std::string* err);
  void close();
  bool is_open() const { return listen_fd_ >= 0; }
  const std::string& path() const { return opts_.path; }

  void poll(const Handler& handler, int timeout_ms = 0);

  size_t connections() const { return conns_.size(); }
  const ControlServerStats& stats() const { return stats_; }

 private:
  struct Conn;
  using Clock = std::chrono::steady_clock;

  void accept_all(Clock::time_point now);
  // false: the connection is to be closed.
  bool on_readable(Conn& c, const Handler& handler, Clock::time_point now);
  bool flush(Conn& c, Clock::time_point now);
  void respond(Conn& c, const v1::Response& r, bool close_after);

  ControlServerOptions opts_;
  int listen_fd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  ControlServerStats stats_;
};

}  // namespace vanish::ctl
