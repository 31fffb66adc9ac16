#include "fsl/safetensors.hpp"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "fsl/error.hpp"
#include "fsl/fileio.hpp"

namespace fsl {

namespace fs = std::filesystem;

int64_t StoredTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

bool parse_dtype(const std::string& s, DType& t) {
  if (s == "F32") return t = DType::f32, true;
  if (s == "F64") return t = DType::f64, true;
  if (s == "I64") return t = DType::i64, true;
  return false;
}

// "encoder.layer2.0.bn1.weight" / "net.layer2.0.bn1.weight" -> "layer2.0.bn1.weight"; else "".
std::string encoder_key(const std::string& name) {
  for (size_t p = name.find("layer"); p != std::string::npos; p = name.find("layer", p + 1)) {
    const bool starts = p == 0 || name[p - 1] == '.';
    if (starts && p + 6 < name.size() && std::isdigit((unsigned char)name[p + 5]) &&
        name[p + 6] == '.')
      return name.substr(p);
  }
  return "";
}

}  // namespace

void write_safetensors(const fs::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::ostringstream h;
  h << '{';
  if (!metadata.empty()) {
    h << "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      h << (first ? "" : ",") << json_string(k) << ':' << json_string(v);
      first = false;
    }
    h << '}';
  }
  int64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& t = tensors[i];
    const int64_t bytes = t.numel() * int64_t(dtype_size(t.dtype));
    h << ((i || !metadata.empty()) ? "," : "") << json_string(t.name) << ":{\"dtype\":\""
      << dtype_name(t.dtype) << "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) h << (d ? "," : "") << t.shape[d];
    h << "],\"data_offsets\":[" << offset << ',' << offset + bytes << "]}";
    offset += bytes;
  }
  h << '}';
  std::string header = h.str();
  header.append((8 - header.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  atomic_write(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    uint64_t n = header.size();  // little-endian host (x86-64, aarch64)
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(header.data(), std::streamsize(header.size()));
    for (const NamedTensor& t : tensors)
      out.write(static_cast<const char*>(t.data),
                std::streamsize(t.numel() * int64_t(dtype_size(t.dtype))));
    if (!out.flush()) fail(path.string(), ": write failed (disk full?)");
  });
}

Safetensors read_safetensors(const fs::path& path) {
  const std::string where = "checkpoint " + path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(where, ": cannot open");
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  in.seekg(0);
  uint64_t hlen = 0;
  if (size < 8 || !in.read(reinterpret_cast<char*>(&hlen), 8))
    fail(where, ": too short to be a safetensors file");
  if (hlen > uint64_t(size - 8) || hlen > (100u << 20))
    fail(where, ": header length ", hlen, " exceeds the file (", size, " bytes): not safetensors");
  std::string header(hlen, '\0');
  in.read(header.data(), std::streamsize(hlen));
  const int64_t data_size = size - 8 - int64_t(hlen);
  YAML::Node root;
  try {
    root = YAML::Load(header);  // JSON is YAML; the header is checked field by field below
  } catch (const YAML::Exception& e) {
    fail(where, ": header is not valid JSON (", e.msg, ")");
  }
  if (!root.IsMap()) fail(where, ": header is not a JSON object");
  std::vector<char> data(static_cast<size_t>(data_size));
  in.read(data.data(), std::streamsize(data_size));
  if (!in) fail(where, ": cannot read ", data_size, " bytes of tensor data");
  Safetensors st;
  for (const auto& kv : root) {
    // Keys, dtypes and metadata values must be JSON strings (not objects or lists).
    auto text = [&](const YAML::Node& n, const std::string& what) {
      if (!n.IsScalar()) fail(where, ": ", what, " is not a string");
      return n.Scalar();
    };
    const std::string name = text(kv.first, "a header key");
    const YAML::Node& v = kv.second;
    if (name == "__metadata__") {
      if (!v.IsMap()) fail(where, ": __metadata__ is not an object");
      for (const auto& m : v)
        st.metadata[text(m.first, "a __metadata__ key")] = text(m.second, "a __metadata__ value");
      continue;
    }
    const std::string t = where + ": tensor '" + name + "'";
    StoredTensor s;
    if (!v.IsMap() || !v["dtype"] || !v["shape"] || !v["data_offsets"])
      fail(t, ": needs dtype, shape and data_offsets");
    const std::string dtype = text(v["dtype"], "tensor '" + name + "': dtype");
    if (!parse_dtype(dtype, s.dtype))
      fail(t, ": dtype ", dtype, " is not supported (F32, F64, I64)");
    if (!v["shape"].IsSequence() || !v["data_offsets"].IsSequence() ||
        v["data_offsets"].size() != 2)
      fail(t, ": bad shape or data_offsets");
    try {
      int64_t numel = 1;  // checked here so that numel() cannot overflow
      for (const auto& d : v["shape"]) {
        s.shape.push_back(d.as<int64_t>());
        if (s.shape.back() < 0) fail(t, ": negative dimension");
        if (s.shape.back() != 0 && numel > std::numeric_limits<int64_t>::max() / 8 / s.shape.back())
          fail(t, ": shape is too large");
        numel *= s.shape.back();
      }
      const int64_t b = v["data_offsets"][0].as<int64_t>(), e = v["data_offsets"][1].as<int64_t>();
      if (b < 0 || e < b || e > data_size)
        fail(t, ": data_offsets [", b, ", ", e, "] outside the ", data_size, " bytes of data");
      if (e - b != s.numel() * int64_t(dtype_size(s.dtype)))
        fail(t, ": ", e - b, " bytes do not hold shape of ", s.numel(), " elements");
      s.bytes.assign(data.begin() + b, data.begin() + e);
    } catch (const YAML::Exception&) {
      fail(t, ": shape/data_offsets are not integers");
    }
    st.tensors.emplace(name, std::move(s));
  }
  return st;
}

void load_tensors(const Safetensors& file, const std::vector<NamedTensor>& dst,
                  const fs::path& origin, const std::string& skip_missing_prefix) {
  const std::string where = "checkpoint " + origin.string();
  std::map<std::string, std::string> by_key;  // encoder key -> file name
  for (const auto& [name, t] : file.tensors)
    if (auto k = encoder_key(name); !k.empty()) by_key[k] = name;
  std::map<std::string, bool> used;
  for (const NamedTensor& d : dst) {
    auto it = file.tensors.find(d.name);
    if (it == file.tensors.end())
      if (auto k = encoder_key(d.name); !k.empty())
        if (auto f = by_key.find(k); f != by_key.end()) it = file.tensors.find(f->second);
    if (it == file.tensors.end()) {
      if (!skip_missing_prefix.empty() && d.name.starts_with(skip_missing_prefix)) continue;
      fail(where, ": tensor '", d.name, "' is missing (a checkpoint of another architecture?)");
    }
    const StoredTensor& s = it->second;
    used[it->first] = true;
    if (s.shape != d.shape) {
      fail(where, ": tensor '", it->first, "' has ", s.numel(), " elements in shape of rank ",
           s.shape.size(), ", expected ", d.numel(), " (another architecture?)");
    }
    if (s.dtype == d.dtype) {
      std::memcpy(d.data, s.bytes.data(), s.bytes.size());
    } else if (s.dtype == DType::f32 && d.dtype == DType::f64) {
      const float* f = reinterpret_cast<const float*>(s.bytes.data());
      for (int64_t i = 0; i < s.numel(); ++i) static_cast<double*>(d.data)[i] = f[i];
    } else {
      fail(where, ": tensor '", it->first, "' is ", dtype_name(s.dtype), ", expected ",
           dtype_name(d.dtype));
    }
  }
  bool dst_has_encoder = false;
  for (const NamedTensor& d : dst) dst_has_encoder |= !encoder_key(d.name).empty();
  if (dst_has_encoder)
    for (const auto& [key, name] : by_key)
      if (!used.count(name))
        fail(where, ": tensor '", name, "' is not in this encoder (another architecture?)");
}

void save_checkpoint(const fs::path& path, const std::vector<NamedTensor>& encoder,
                     const FeaturesConfig& cfg, const std::vector<NamedTensor>& extra,
                     const std::map<std::string, std::string>& metadata) {
  std::vector<NamedTensor> all = encoder;
  all.insert(all.end(), extra.begin(), extra.end());
  std::map<std::string, std::string> meta = metadata;
  meta.emplace("format", "pt");  // safetensors.torch convention
  meta.emplace("fsl.arch", cfg.arch);
  write_safetensors(path, all, meta);
}

Safetensors load_checkpoint(const fs::path& path, const std::vector<NamedTensor>& encoder,
                            const FeaturesConfig& cfg, const std::vector<NamedTensor>& extra) {
  Safetensors file = read_safetensors(path);
  std::vector<NamedTensor> dst = encoder;
  dst.insert(dst.end(), extra.begin(), extra.end());
  load_tensors(file, dst, path, cfg.layer_4 ? "" : "encoder.layer4.");
  return file;
}

}  // namespace fsl
