#include "ctl/host_port.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

namespace vanish::ctl {

bool parse_host_port(const std::string& s, sockaddr_storage* ss, socklen_t* len,
                     bool empty_host_is_any) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find("]:");
    if (close == std::string::npos) return false;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon) return false;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
    return false;
  }
  unsigned long p = std::stoul(port);
  if (host.empty() && empty_host_is_any) host = "0.0.0.0";
  if (p > 65535) return false;
  *ss = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(uint16_t(p));
    *len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(uint16_t(p));
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

}  // namespace vanish::ctl
