// Framing of the control-socket protocol (ctl/proto/vanish/ctl.proto): a 4-byte big-endian length,
// then that many bytes of a serialized message.
//
// Contract
// - FrameReader splits a byte stream into frame bodies incrementally. It never consumes more
//   bytes than the current frame needs (want()), so a caller that reads at most want() bytes
//   per read never buffers past a frame boundary. A declared length above the limit puts it in
//   kTooLarge before any body byte is buffered (nothing is allocated for it).
// - decode_request() accepts exactly one serialized vanish.ctl.v1.Request with a command set; it
//   never throws, whatever the bytes.
// - No I/O, no DPDK.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "vanish/ctl.pb.h"

namespace vanish::ctl {

inline constexpr size_t kFrameHeaderBytes = 4;
inline constexpr uint32_t kMaxRequestBytes = 16u << 20;  // 16 MiB
inline constexpr uint32_t kMaxResponseBytes = 1u << 30;  // 1 GiB (a very large get_config)

class FrameReader {
 public:
  enum class State { kHeader, kBody, kComplete, kTooLarge };

  explicit FrameReader(uint32_t max_body) : max_(max_body) {}

  State state() const { return state_; }
  // Bytes still needed to finish the header or the body; 0 when complete or too large.
  size_t want() const;
  // Consumes at most want() of the n bytes; returns how many it consumed.
  size_t feed(const char* data, size_t n);
  // Declared body length (valid from kBody on, also in kTooLarge).
  uint32_t length() const { return len_; }
  // True between frames (no byte of a next frame buffered).
  bool idle() const { return state_ == State::kHeader && hdr_have_ == 0; }
  // The body of the completed frame; the reader starts over with the next header.
  std::string take();

 private:
  uint32_t max_;
  State state_ = State::kHeader;
  unsigned char hdr_[kFrameHeaderBytes] = {};
  size_t hdr_have_ = 0;
  uint32_t len_ = 0;
  std::string body_;
};

// Header + serialized message. False if the message does not serialize or exceeds 4 GiB.
bool encode_frame(const google::protobuf::MessageLite& m, std::string* out);

// Parses one request body; false with a reason ("not a vanish.ctl.v1.Request", "no command").
bool decode_request(std::string_view body, v1::Request* req, std::string* err);

// The default control socket of a node: /run/vanish/<node>.sock.
std::string default_ctl_socket(const std::string& node);

}  // namespace vanish::ctl
