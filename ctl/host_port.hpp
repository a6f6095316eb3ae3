// "host:port" / "[v6]:port" -> sockaddr, shared by every listening/connecting socket of the
// control side (peering, metrics). Pure function, no I/O.
#pragma once

#include <sys/socket.h>

#include <string>

namespace vanish::ctl {

// Accepts a dotted IPv4 or textual IPv6 host (IPv6 in brackets) and a decimal port 0..65535.
// empty_host_is_any: ":PORT" means 0.0.0.0 (a listen address). False if it does not parse.
bool parse_host_port(const std::string& s, sockaddr_storage* ss, socklen_t* len,
                     bool empty_host_is_any = false);

}  // namespace vanish::ctl
