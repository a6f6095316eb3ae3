#include "ctl/spiffe.hpp"

namespace vanish::ctl {
namespace {

bool td_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}
bool path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}
bool fail(std::string* err, const char* why) {
  if (err) *err = why;
  return false;
}

}  // namespace

bool parse_spiffe_id(std::string_view s, SpiffeId* out, std::string* err) {
  constexpr std::string_view kScheme = "spiffe://";
  if (s.size() > 2048) return fail(err, "longer than 2048 bytes");
  if (s.substr(0, kScheme.size()) != kScheme) return fail(err, "scheme is not spiffe://");
  std::string_view rest = s.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view td = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (td.empty()) return fail(err, "empty trust domain");
  if (td.size() > 255) return fail(err, "trust domain longer than 255 characters");
  for (char c : td) {
    if (!td_char(c)) return fail(err, "trust domain has a character outside [a-z0-9._-]");
  }
  if (!path.empty()) {
    if (path.back() == '/') return fail(err, "path ends with '/'");
    size_t i = 0;
    while (i < path.size()) {
      // path[i] == '/'
      size_t next = path.find('/', i + 1);
      std::string_view seg =
          path.substr(i + 1, next == std::string_view::npos ? path.npos : next - i - 1);
      if (seg.empty()) return fail(err, "empty path segment");
      if (seg == "." || seg == "..") return fail(err, "path segment '.' or '..'");
      for (char c : seg) {
        if (!path_char(c)) return fail(err, "path has a character outside [A-Za-z0-9._-]");
      }
      if (next == std::string_view::npos) break;
      i = next;
    }
  }
  if (out) {
    out->trust_domain = std::string(td);
    out->path = std::string(path);
  }
  return true;
}

}  // namespace vanish::ctl
