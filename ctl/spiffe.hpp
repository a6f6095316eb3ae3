// SPIFFE ids (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md):
// spiffe://<trust domain>[/<path>].
//
// Contract
// - parse_spiffe_id() accepts exactly the SPIFFE-ID standard's syntax: scheme "spiffe" (lower
//   case), a trust domain of [a-z0-9._-] (1..255 chars), an optional path of segments of
//   [A-Za-z0-9._-] with no empty, "." or ".." segment and no trailing '/'; no query, fragment,
//   port or user info; at most 2048 bytes. Never throws.
// - No I/O, no allocation beyond the returned strings.
#pragma once

#include <string>
#include <string_view>

namespace vanish::ctl {

struct SpiffeId {
  std::string trust_domain;
  std::string path;  // "" or "/seg/seg..."
};

bool parse_spiffe_id(std::string_view s, SpiffeId* out, std::string* err);

}  // namespace vanish::ctl
