// ControlClient: the client side of vanishd's control socket (ctl/proto/vanish/ctl.proto), used by
// vanishctl. Blocking, one request at a time, every wait bounded by a timeout.
#pragma once

#include <chrono>
#include <string>

#include "ctl/control_frame.hpp"

namespace vanish::ctl {

class ControlClient {
 public:
  ControlClient() = default;
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Connects to the Unix socket at `path`; false with a reason ("cannot connect to PATH: ...").
  bool connect(const std::string& path, std::string* err);
  void close();

  // Sends `req` (its id is set to the next sequence number) and waits for the response with the
  // same id; false with a reason on any I/O error, timeout, or a response that does not decode.
  bool call(v1::Request& req, v1::Response* resp, std::string* err,
            std::chrono::milliseconds timeout = std::chrono::seconds(60));

 private:
  int fd_ = -1;
  uint64_t next_id_ = 1;
};

}  // namespace vanish::ctl
