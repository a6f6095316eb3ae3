#include "ctl/control_frame.hpp"

#include <algorithm>
#include <limits>

namespace vanish::ctl {

size_t FrameReader::want() const {
  switch (state_) {
    case State::kHeader:
      return kFrameHeaderBytes - hdr_have_;
    case State::kBody:
      return len_ - body_.size();
    case State::kComplete:
    case State::kTooLarge:
      return 0;
  }
  return 0;
}

size_t FrameReader::feed(const char* data, size_t n) {
  size_t used = 0;
  while (used < n) {
    if (state_ == State::kHeader) {
      size_t k = std::min(n - used, kFrameHeaderBytes - hdr_have_);
      std::copy(data + used, data + used + k, hdr_ + hdr_have_);
      hdr_have_ += k;
      used += k;
      if (hdr_have_ < kFrameHeaderBytes) break;
      len_ = uint32_t(hdr_[0]) << 24 | uint32_t(hdr_[1]) << 16 | uint32_t(hdr_[2]) << 8 |
             uint32_t(hdr_[3]);
      if (len_ > max_) {
        state_ = State::kTooLarge;
        break;
      }
      body_.clear();
      state_ = len_ == 0 ? State::kComplete : State::kBody;
      if (state_ == State::kBody) body_.reserve(std::min<uint32_t>(len_, 1u << 20));
    } else if (state_ == State::kBody) {
      size_t k = std::min(n - used, size_t(len_) - body_.size());
      body_.append(data + used, k);
      used += k;
      if (body_.size() == len_) state_ = State::kComplete;
    } else {
      break;
    }
  }
  return used;
}

std::string FrameReader::take() {
  std::string out;
  out.swap(body_);
  state_ = State::kHeader;
  hdr_have_ = 0;
  len_ = 0;
  return out;
}

bool encode_frame(const google::protobuf::MessageLite& m, std::string* out) {
  size_t n = m.ByteSizeLong();
  if (n > std::numeric_limits<uint32_t>::max()) return false;
  out->resize(kFrameHeaderBytes + n);
  (*out)[0] = char(n >> 24);
  (*out)[1] = char(n >> 16);
  (*out)[2] = char(n >> 8);
  (*out)[3] = char(n);
  return m.SerializeToArray(out->data() + kFrameHeaderBytes, int(n));
}

bool decode_request(std::string_view body, v1::Request* req, std::string* err) {
  req->Clear();
  if (body.size() > size_t(std::numeric_limits<int>::max()) ||
      !req->ParseFromArray(body.data(), int(body.size()))) {
    req->Clear();
    *err = "malformed request: not a vanish.ctl.v1.Request (" + std::to_string(body.size()) +
           " bytes)";
    return false;
  }
  if (req->command_case() == v1::Request::COMMAND_NOT_SET) {
    *err = "malformed request: no command (unknown to this vanishd, or empty)";
    return false;
  }
  return true;
}

std::string default_ctl_socket(const std::string& node) {
  std::string name = node.empty() ? "vanishd" : node;
  std::replace(name.begin(), name.end(), '/', '_');
  return "/run/vanish/" + name + ".sock";
}

}  // namespace vanish::ctl
