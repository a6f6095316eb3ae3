// Loading the appliance config (vanish.config.Config) from files or strings.
//
// Contract
// - The format follows the file name: ".textproto", ".txtpb", ".pbtxt" = protobuf text format;
//   ".json" = protobuf's JSON mapping; ".pb", ".bin", ".binpb" = binary wire format.
// - Unknown field names are errors in text and JSON (never silently ignored).
// - `include` entries name further config files (any format), relative to the including file's
//   directory. Each included file is merged (protobuf MergeFrom) before the including file's own
//   content, depth first in the order listed: repeated fields append, a scalar set by the
//   including file overrides the included value. A file reached twice is merged once; a cycle
//   or nesting deeper than kMaxIncludeDepth is an error. The result has an empty `include`.
// - Errors are appended to *errors as "file:line:column: message" (line/column 1-based, where
//   the parser reports them); on failure *out is left unchanged.
// - Loading does not validate semantics: call validate_config() (ctl/validate.hpp) next.
#pragma once

#include <string>
#include <vector>

#include "vanish/config.pb.h"

namespace vanish::ctl {

enum class ConfigFormat { kText, kJson, kBinary };

inline constexpr int kMaxIncludeDepth = 16;

// Format by file extension; false if the extension is not one of the above.
bool format_for_path(const std::string& path, ConfigFormat* format);
const char* format_name(ConfigFormat format);  // "text", "json", "binary"

// `files` (may be null) receives every file the load read or tried to read, the top-level one
// first, each once (as the path was formed: an include relative to its file's directory), also
// when the load fails: the set to watch for changes (ctl/config_watch.hpp).
bool load_config(const std::string& path, config::Config* out, std::vector<std::string>* errors,
                 std::vector<std::string>* files = nullptr);

// `origin` names the text in error messages, and its directory is the base for relative
// includes (default: the current directory).
bool load_config_from_string(const std::string& data, ConfigFormat format, config::Config* out,
                             std::vector<std::string>* errors,
                             const std::string& origin = "<string>");

// Serialises a config: text format, JSON (original proto field names, indented) or binary.
bool config_to_string(const config::Config& cfg, ConfigFormat format, std::string* out);

}  // namespace vanish::ctl
