#include "fsl/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <variant>

#include "fsl/cuda_frontend.hpp"  // cuda_device_available
#include "fsl/error.hpp"
#include "fsl/fileio.hpp"

namespace fsl {
namespace {

// One entry per key: where it lives in the struct and which values are allowed.
struct Field {
  std::string key;  // "section.key" or "exp_name"
  std::variant<int*, double*, bool*, std::string*> ptr;
  std::vector<std::string> choices = {};  // for strings: allowed values (empty = any)
};

std::vector<Field> schema(Config& c) {
  auto& f = c.features;
  auto& t = c.train_param;
  auto& p = c.path;
  auto& r = c.runtime;
  auto& e = c.eval;
  return {
      {"exp_name", &c.exp_name},
      {"features.eps", &f.eps},
      {"features.fmax", &f.fmax},
      {"features.fmin", &f.fmin},
      {"features.sr", &f.sr},
      {"features.n_fft", &f.n_fft},
      {"features.n_mels", &f.n_mels},
      {"features.hop_mel", &f.hop_mel},
      {"features.feature_types", &f.feature_types},
      {"features.pad_mode", &f.pad_mode, {"constant", "reflect"}},
      {"features.pcen_gain", &f.pcen_gain},
      {"features.pcen_bias", &f.pcen_bias},
      {"features.pcen_power", &f.pcen_power},
      {"features.pcen_time_constant", &f.pcen_time_constant},
      {"features.pcen_eps", &f.pcen_eps},
      {"features.pcen_baseline_hop", &f.pcen_baseline_hop},
      {"features.embedding_dim", &f.embedding_dim},
      {"features.drop_rate", &f.drop_rate},
      {"features.with_bias", &f.with_bias},
      {"features.non_linearity", &f.non_linearity, {"leaky_relu", "relu"}},
      {"features.time_max_pool_dim", &f.time_max_pool_dim},
      {"features.layer_4", &f.layer_4},
      {"features.arch", &f.arch, {"v1", "v2"}},
      {"features.test_seglen_len_lim", &f.test_seglen_len_lim},
      {"features.test_hoplen_fenmu", &f.test_hoplen_fenmu},
      {"train_param.seg_len", &t.seg_len},
      {"train_param.n_shot", &t.n_shot},
      {"train_param.k_way", &t.k_way},
      {"train_param.lr_rate", &t.lr_rate},
      {"train_param.scheduler_gamma", &t.scheduler_gamma},
      {"train_param.scheduler_step_size", &t.scheduler_step_size},
      {"train_param.num_episodes", &t.num_episodes},
      {"train_param.val_episodes", &t.val_episodes},
      {"train_param.max_epochs", &t.max_epochs},
      {"train_param.patience", &t.patience},
      {"train_param.negative_train_contrast", &t.negative_train_contrast},
      {"train_param.load_weight_from", &t.load_weight_from},
      {"train_param.short_segment", &t.short_segment, {"tile", "pad"}},
      {"train_param.source", &t.source, {"files", "synth_online", "mixed"}},
      {"train_param.synth_without", &t.synth_without},
      {"train_param.seed", &t.seed},
      {"path.root_dir", &p.root_dir},
      {"path.train_dir", &p.train_dir},
      {"path.eval_dir", &p.eval_dir},
      {"path.test_dir", &p.test_dir},
      {"path.work_dir", &p.work_dir},
      {"runtime.device", &r.device, {"auto", "cpu", "cuda"}},
      {"runtime.num_workers", &r.num_workers},
      {"runtime.prefetch_factor", &r.prefetch_factor},
      {"runtime.tf32", &r.tf32},
      {"eval.method", &e.method, {"encoder", "frame_prototype"}},
      {"eval.checkpoint", &e.checkpoint},
      {"eval.threshold", &e.threshold},
      {"eval.sweep", &e.sweep},
      {"eval.min_len_frac", &e.min_len_frac},
      {"eval.min_len_s", &e.min_len_s},
      {"eval.merge_gap_s", &e.merge_gap_s},
      {"eval.merge_overlaps", &e.merge_overlaps},
      {"eval.neg_iterations", &e.neg_iterations},
      {"eval.neg_windows", &e.neg_windows},
      {"eval.negatives", &e.negatives, {"prototypes", "nearest"}},
      {"eval.neg_nearest_k", &e.neg_nearest_k},
      {"eval.pos_nearest_k", &e.pos_nearest_k},
      {"eval.normalise", &e.normalise, {"train", "file_band"}},
      {"eval.boundaries", &e.boundaries, {"window", "shots"}},
      {"eval.shared_maps", &e.shared_maps},
      {"eval.baseline", &e.baseline},
      {"eval.frame_times", &e.frame_times, {"centre", "start"}},
      {"eval.batch_size", &e.batch_size},
      {"eval.seed", &e.seed},
  };
}

// Keys of the Python system's config that fsl accepts and ignores (derived or unused here):
// detection always adapts the segment length to the shots (adaptive_seg_len) and always takes
// the first 5 POS of each validation file as the shots (use_validation_first_5).
const std::vector<std::string> kIgnoredKeys = {
    "train_param.exp_name",         "train_param.sr",  "train_param.device",
    "train_param.adaptive_seg_len", "set.features",    "set.train",
    "train_param.use_validation_first_5", "set.eval"};

// Options fsl once had and removed: the key is refused with the reason.
const std::map<std::string, std::string> kRemovedKeys = {
    {"eval.calibrate",
     "removed: the per-file threshold from the shots scored below the default on every set "
     "measured (bench/LOG.md, \"Detection variants\")"}};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool is_null(const std::string& v) { return v == "null" || v == "~" || v == "None" || v.empty(); }

void assign(const Field& fld, const std::string& raw, const std::string& origin) {
  std::string v = trim(raw);
  auto bad = [&](const char* want) {
    fail(origin, ": key '", fld.key, "': expected ", want, ", got '", v, "'");
  };
  std::visit(
      [&](auto* ptr) {
        using T = std::remove_pointer_t<decltype(ptr)>;
        if constexpr (std::is_same_v<T, int>) {
          long long x = 0;
          auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
          if (ec != std::errc() || end != v.data() + v.size() || x < INT32_MIN || x > INT32_MAX)
            bad("an integer");
          *ptr = static_cast<int>(x);
        } else if constexpr (std::is_same_v<T, double>) {
          char* end = nullptr;
          double x = std::strtod(v.c_str(), &end);
          if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x)) bad("a number");
          *ptr = x;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (v == "true" || v == "True" || v == "yes") *ptr = true;
          else if (v == "false" || v == "False" || v == "no") *ptr = false;
          else bad("true or false");
        } else {
          std::string s = is_null(v) ? std::string() : v;
          if (!fld.choices.empty()) {
            bool ok = false;
            for (auto& c : fld.choices) ok |= (c == s);
            if (!ok) {
              std::string all;
              for (auto& c : fld.choices) all += (all.empty() ? "" : "|") + c;
              fail(origin, ": key '", fld.key, "': expected one of ", all, ", got '", v, "'");
            }
          }
          *ptr = s;
        }
      },
      fld.ptr);
}

std::string value_string(const Field& fld) {
  return std::visit(
      [](auto* ptr) -> std::string {
        using T = std::remove_pointer_t<decltype(ptr)>;
        if constexpr (std::is_same_v<T, bool>) return *ptr ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) return *ptr;
        else {
          std::ostringstream os;
          os.precision(10);
          os << *ptr;
          return os.str();
        }
      },
      fld.ptr);
}

// Flattens the YAML tree into "a.b" -> scalar text; a non-scalar leaf is an error.
void flatten(const YAML::Node& node, const std::string& prefix, const std::string& origin,
             std::vector<std::pair<std::string, std::string>>& out) {
  if (node.IsMap()) {
    for (auto it : node) {
      if (!it.first.IsScalar())  // e.g. `? [a]` or `[1]: 2`: a YAML key that is not a name
        fail(origin, ": under '", prefix, "': a key must be a name, not a list or mapping");
      std::string k = it.first.Scalar();
      flatten(it.second, prefix.empty() ? k : prefix + "." + k, origin, out);
    }
  } else if (node.IsScalar()) {
    out.emplace_back(prefix, node.Scalar());
  } else if (node.IsNull()) {
    out.emplace_back(prefix, "");
  } else {
    fail(origin, ": key '", prefix, "': expected a single value, got a list");
  }
}

void validate(const Config& c, const std::string& origin) {
  auto need = [&](bool ok, const char* key, const char* what) {
    if (!ok) fail(origin, ": key '", key, "': ", what);
  };
  const auto& f = c.features;
  need(f.sr > 0, "features.sr", "must be > 0");
  need(f.n_fft >= 16, "features.n_fft", "must be >= 16");
  need(f.hop_mel > 0, "features.hop_mel", "must be > 0");
  need(f.n_mels > 0, "features.n_mels", "must be > 0");
  need(f.fmin >= 0 && f.fmin < f.fmax, "features.fmin", "must satisfy 0 <= fmin < fmax");
  need(f.fmax <= f.sr / 2.0 + 1e-9, "features.fmax", "must be <= sr/2");
  need(f.eps > 0, "features.eps", "must be > 0");
  need(f.pcen_time_constant > 0, "features.pcen_time_constant", "must be > 0");
  for (auto& t : f.types())
    if (t != "logmel" && t != "pcen")
      fail(origin, ": key 'features.feature_types': unsupported feature type '", t,
           "' (supported: logmel, pcen)");
  need(f.time_max_pool_dim > 0 && f.time_max_pool_dim < (1 << 20), "features.time_max_pool_dim",
       "must be in 1 .. 2^20-1");  // checked first: the next line divides by 64 times it
  need(f.embedding_dim > 0, "features.embedding_dim", "must be > 0");
  need(f.embedding_dim % (f.time_max_pool_dim * 64) == 0, "features.embedding_dim",
       "must be a multiple of 64*time_max_pool_dim");
  need(f.drop_rate >= 0 && f.drop_rate < 1, "features.drop_rate", "must be in [0, 1)");
  need(f.test_hoplen_fenmu > 0, "features.test_hoplen_fenmu", "must be > 0");
  const auto& t = c.train_param;
  need(t.seg_len > 0, "train_param.seg_len", "must be > 0");
  need(t.n_shot > 0, "train_param.n_shot", "must be > 0");
  need(t.k_way > 0, "train_param.k_way", "must be > 0");
  need(t.lr_rate > 0, "train_param.lr_rate", "must be > 0");
  need(t.num_episodes > 0, "train_param.num_episodes", "must be > 0");
  need(t.max_epochs > 0, "train_param.max_epochs", "must be > 0");
  need(t.scheduler_step_size > 0, "train_param.scheduler_step_size", "must be > 0");
  try {
    (void)t.synth_without_list();
  } catch (const Error& e) {
    fail(origin, ": key 'train_param.synth_without': ", e.what());
  }
  need(c.runtime.num_workers > 0, "runtime.num_workers", "must be > 0");
  need(c.eval.threshold >= 0 && c.eval.threshold <= 1, "eval.threshold", "must be in [0, 1]");
  need(c.eval.neg_iterations > 0, "eval.neg_iterations", "must be > 0");
  need(c.eval.neg_windows > 0, "eval.neg_windows", "must be > 0");
  need(c.eval.neg_nearest_k > 0, "eval.neg_nearest_k", "must be > 0");
  need(c.eval.pos_nearest_k >= 0, "eval.pos_nearest_k", "must be >= 0");
  need(c.eval.batch_size > 0, "eval.batch_size", "must be > 0");
  need(!c.exp_name.empty() && c.exp_name.find('/') == std::string::npos, "exp_name",
       "must be a non-empty name without '/'");
}

}  // namespace

std::vector<std::string> TrainConfig::synth_without_list() const {
  static const std::vector<std::string> known = {"classes",    "confuser", "callers",
                                                 "background", "channel",  "lowrate"};
  std::vector<std::string> out;
  std::stringstream ss(synth_without);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;
    if (std::find(known.begin(), known.end(), item) == known.end()) {
      std::string names;
      for (const auto& k : known) names += (names.empty() ? "" : ", ") + k;
      fail("unknown randomisation '", item, "' (known: ", names, ")");
    }
    out.push_back(item);
  }
  return out;
}

std::vector<std::string> FeaturesConfig::types() const {
  std::vector<std::string> out;
  std::stringstream ss(feature_types);
  std::string item;
  while (std::getline(ss, item, '@')) out.push_back(trim(item));
  return out;
}

Config Config::from_string(const std::string& yaml_text, const std::vector<std::string>& overrides,
                           const std::string& origin) {
  Config c;
  auto fields = schema(c);
  std::map<std::string, const Field*> by_key;
  for (auto& f : fields) by_key[f.key] = &f;

  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail(origin, ": line ", e.mark.line + 1, ": YAML syntax error: ", e.msg);
  }
  std::vector<std::pair<std::string, std::string>> kv;
  if (root.IsMap()) flatten(root, "", origin, kv);
  else if (!root.IsNull()) fail(origin, ": expected a mapping of sections at the top level");
  for (auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("override '", o, "': expected section.key=value");
    std::string k = trim(o.substr(0, eq));
    if (!k.empty() && k[0] == '+') k = k.substr(1);  // Hydra's "+key=value"
    kv.emplace_back(k, o.substr(eq + 1));
  }
  // `${a.b}` interpolation (the Python config uses it): resolved against the final values.
  std::map<std::string, std::string> final_values;
  for (auto& [k, v] : kv) final_values[k] = v;
  static const std::regex interp(R"(\$\{([A-Za-z0-9_.]+)\})");
  for (size_t i = 0; i < kv.size(); ++i) {
    const auto& [k, v] = kv[i];
    bool from_override = i >= kv.size() - overrides.size();
    const std::string where = from_override ? "override" : origin;
    if (std::find(kIgnoredKeys.begin(), kIgnoredKeys.end(), k) != kIgnoredKeys.end()) continue;
    if (auto removed = kRemovedKeys.find(k); removed != kRemovedKeys.end())
      fail(where, ": key '", k, "' ", removed->second);
    auto it = by_key.find(k);
    if (it == by_key.end()) fail(where, ": unknown key '", k, "'");
    std::string value = v;
    std::smatch m;
    for (int depth = 0; std::regex_search(value, m, interp) && depth < 8; ++depth) {
      auto ref = final_values.find(m[1].str());
      std::string sub;
      if (ref != final_values.end()) sub = ref->second;
      else if (by_key.count(m[1].str())) sub = value_string(*by_key[m[1].str()]);
      else fail(where, ": key '", k, "': interpolation of unknown key '", m[1].str(), "'");
      value = m.prefix().str() + sub + m.suffix().str();
    }
    assign(*it->second, value, where);
  }
  if (c.eval.baseline) {  // the Python baseline's detection choices, whatever the four keys say
    c.eval.negatives = "prototypes";
    c.eval.boundaries = "window";
    c.eval.frame_times = "start";
    c.eval.merge_overlaps = false;
  }
  validate(c, origin);
  return c;
}

Config Config::load(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  if (!std::filesystem::exists(yaml_path)) fail(yaml_path, ": config file does not exist");
  return from_string(read_text(yaml_path), overrides, yaml_path);
}

std::string Config::to_yaml() const {
  Config copy = *this;
  std::ostringstream os;
  std::string section;
  for (auto& f : schema(copy)) {
    auto dot = f.key.find('.');
    std::string sec = dot == std::string::npos ? "" : f.key.substr(0, dot);
    std::string key = dot == std::string::npos ? f.key : f.key.substr(dot + 1);
    if (sec != section) {
      section = sec;
      if (!sec.empty()) os << sec << ":\n";
    }
    std::string v = value_string(f);
    bool is_string = std::holds_alternative<std::string*>(f.ptr);
    if (is_string) v = v.empty() ? "null" : YAML::Dump(YAML::Node(v));
    os << (sec.empty() ? "" : "  ") << key << ": " << v << "\n";
  }
  return os.str();
}

std::string Config::resolve(const std::string& p) const {
  if (p.empty()) return p;
  std::filesystem::path pp(p);
  if (pp.is_absolute()) return p;
  return (std::filesystem::path(path.root_dir) / pp).lexically_normal().string();
}

std::string Config::run_dir() const {
  return (std::filesystem::path(resolve(path.work_dir)) / exp_name).string();
}

std::string resolve_device(const RuntimeConfig& runtime, Stage stage) {
  if (runtime.device == "cpu") return "cpu";
  if (runtime.device == "auto" && stage != Stage::features) return "cpu";
  std::string why;
  if (cuda_device_available(&why)) return "cuda";
  if (runtime.device == "cuda") fail("runtime.device=cuda: ", why);
  return "cpu";
}

}  // namespace fsl
