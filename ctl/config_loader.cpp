#include "ctl/config_loader.hpp"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace vanish::ctl {
namespace {

namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Collects text-format parse errors as "origin:line:column: message" (1-based).
class TextErrors final : public google::protobuf::io::ErrorCollector {
 public:
  TextErrors(const std::string& origin, std::vector<std::string>* errors)
      : origin_(origin), errors_(errors) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    add(line, column, message);
  }
  // Warnings (e.g. a deprecated field) do not fail the load and are not reported.
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  bool any() const { return any_; }

 private:
  void add(int line, int column, const std::string& message) {
    any_ = true;
    std::string where = origin_;
    if (line >= 0) where += ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1);
    errors_->push_back(where + ": " + message);
  }
  const std::string& origin_;
  std::vector<std::string>* errors_;
  bool any_ = false;
};

bool parse_one(const std::string& data, ConfigFormat format, const std::string& origin,
               config::Config* out, std::vector<std::string>* errors) {
  switch (format) {
    case ConfigFormat::kText: {
      google::protobuf::TextFormat::Parser parser;
      TextErrors collector(origin, errors);
      parser.RecordErrorsTo(&collector);
      if (parser.ParseFromString(data, out)) return true;
      if (!collector.any())
        errors->push_back(origin + ": not a valid text-format vanish.config.Config");
      return false;
    }
    case ConfigFormat::kJson: {
      google::protobuf::util::JsonParseOptions opts;
      opts.ignore_unknown_fields = false;
      auto status = google::protobuf::util::JsonStringToMessage(data, out, opts);
      if (status.ok()) return true;
      errors->push_back(origin + ": " + std::string(status.message()));
      return false;
    }
    case ConfigFormat::kBinary:
      if (out->ParseFromString(data)) return true;
      errors->push_back(origin + ": not a valid binary vanish.config.Config");
      return false;
  }
  return false;
}

struct Loader {
  std::vector<std::string>* errors;
  std::vector<std::string> stack;  // canonical paths of the files being loaded (cycle check)
  std::set<std::string> done;      // canonical paths already merged
  std::vector<std::string>* files = nullptr;  // every path read or tried (optional)

  // Parses `data` (from `origin`, whose directory resolves relative includes), merges its
  // includes and then itself into *acc.
  bool load_data(const std::string& data, ConfigFormat format, const std::string& origin,
                 const fs::path& base_dir, int depth, config::Config* acc) {
    config::Config self;
    if (!parse_one(data, format, origin, &self, errors)) return false;
    bool ok = true;
    for (int i = 0; i < self.include_size(); i++) {
      const std::string& inc = self.include(i);
      std::string where = origin + ": include[" + std::to_string(i) + "] \"" + inc + "\"";
      if (inc.empty()) {
        errors->push_back(where + ": empty path");
        ok = false;
        continue;
      }
      fs::path p = fs::path(inc).is_absolute() ? fs::path(inc) : base_dir / inc;
      if (depth + 1 > kMaxIncludeDepth) {
        errors->push_back(where + ": includes nested deeper than " +
                          std::to_string(kMaxIncludeDepth));
        ok = false;
        continue;
      }
      ok = load_file(p.string(), where, depth + 1, acc) && ok;
    }
    if (!ok) return false;
    self.clear_include();
    acc->MergeFrom(self);
    return true;
  }

  bool load_file(const std::string& path, const std::string& where, int depth,
                 config::Config* acc) {
    std::string prefix = where.empty() ? path : where;
    ConfigFormat format;
    if (!format_for_path(path, &format)) {
      errors->push_back(prefix +
                        ": unknown config file extension (use .textproto, .txtpb, "
                        ".pbtxt, .json, .pb, .bin or .binpb)");
      return false;
    }
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(fs::path(path), ec);
    std::string key = ec ? path : canon.string();
    for (size_t i = 0; i < stack.size(); i++) {
      if (stack[i] != key) continue;
      std::string chain;
      for (size_t j = i; j < stack.size(); j++) chain += stack[j] + " -> ";
      errors->push_back(prefix + ": include cycle: " + chain + key);
      return false;
    }
    if (done.count(key)) return true;  // already merged through another include

    if (files && std::find(files->begin(), files->end(), path) == files->end())
      files->push_back(path);
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      errors->push_back(prefix + ": cannot open " + path + ": " + std::strerror(errno));
      return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
      errors->push_back(prefix + ": cannot read " + path);
      return false;
    }
    stack.push_back(key);
    bool ok = load_data(ss.str(), format, path, fs::path(path).parent_path(), depth, acc);
    stack.pop_back();
    if (ok) done.insert(key);
    return ok;
  }
};

}  // namespace

bool format_for_path(const std::string& path, ConfigFormat* format) {
  if (ends_with(path, ".textproto") || ends_with(path, ".txtpb") || ends_with(path, ".pbtxt")) {
    *format = ConfigFormat::kText;
  } else if (ends_with(path, ".json")) {
    *format = ConfigFormat::kJson;
  } else if (ends_with(path, ".pb") || ends_with(path, ".bin") || ends_with(path, ".binpb")) {
    *format = ConfigFormat::kBinary;
  } else {
    return false;
  }
  return true;
}

const char* format_name(ConfigFormat format) {
  switch (format) {
    case ConfigFormat::kText:
      return "text";
    case ConfigFormat::kJson:
      return "json";
    case ConfigFormat::kBinary:
      return "binary";
  }
  return "?";
}

bool load_config(const std::string& path, config::Config* out, std::vector<std::string>* errors,
                 std::vector<std::string>* files) {
  Loader loader{errors, {}, {}, files};
  config::Config acc;
  if (!loader.load_file(path, "", 0, &acc)) return false;
  out->Swap(&acc);
  return true;
}

bool load_config_from_string(const std::string& data, ConfigFormat format, config::Config* out,
                             std::vector<std::string>* errors, const std::string& origin) {
  Loader loader{errors, {}, {}};
  config::Config acc;
  fs::path base = fs::path(origin).parent_path();
  if (!loader.load_data(data, format, origin, base, 0, &acc)) return false;
  out->Swap(&acc);
  return true;
}

bool config_to_string(const config::Config& cfg, ConfigFormat format, std::string* out) {
  switch (format) {
    case ConfigFormat::kText:
      return google::protobuf::TextFormat::PrintToString(cfg, out);
    case ConfigFormat::kJson: {
      google::protobuf::util::JsonPrintOptions opts;
      opts.add_whitespace = true;
      opts.preserve_proto_field_names = true;
      out->clear();
      return google::protobuf::util::MessageToJsonString(cfg, out, opts).ok();
    }
    case ConfigFormat::kBinary:
      return cfg.SerializeToString(out);
  }
  return false;
}

}  // namespace vanish::ctl
