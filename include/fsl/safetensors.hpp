// Checkpoints in the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {string: string}}, then the raw little-endian data. PyTorch reads them with
// safetensors.torch.load_file; tensor names follow the PyTorch state_dict.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "fsl/model.hpp"
#include "fsl/tensor.hpp"

namespace fsl {

struct StoredTensor {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<char> bytes;  // numel * dtype_size
  int64_t numel() const;
};

struct Safetensors {
  std::map<std::string, StoredTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes atomically (fsl::atomic_write). dtypes F32, F64, I64.
void write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads and validates the whole file: header JSON, dtypes, shapes, offsets inside the data.
// Any problem -> fsl::Error naming the file (and the tensor).
Safetensors read_safetensors(const std::filesystem::path& path);

// Copies the file's tensors into `dst` by name. Encoder names (`encoder.layerN...`) also match
// a file name with any other prefix before `layerN.` (PyTorch's `layer1.0...`,
// `net.layer1.0...`, `model.encoder.layer1.0...`). Every dst tensor must be present with the
// same shape (F32 may load into F64); a file tensor that looks like an encoder tensor but is
// not in dst is an error (another architecture). `skip_missing_prefix`: dst names starting
// with it may be absent (layer4 when the encoder does not run it).
void load_tensors(const Safetensors& file, const std::vector<NamedTensor>& dst,
                  const std::filesystem::path& origin, const std::string& skip_missing_prefix = "");

// The one checkpoint writer of both training backends: an encoder's state (named views in
// state_dict order: Encoder::state(), CudaEncoder::state()) plus `extra` (e.g. Adam's state) and
// metadata (epoch, config yaml), with "format" and "fsl.arch" added.
void save_checkpoint(const std::filesystem::path& path, const std::vector<NamedTensor>& encoder,
                     const FeaturesConfig& cfg, const std::vector<NamedTensor>& extra = {},
                     const std::map<std::string, std::string>& metadata = {});
// Loads into the encoder's views (and `extra`, when given, which must be present) from `path`;
// layer4 may be absent when cfg does not run it. Returns the file (its metadata and any other
// tensors).
Safetensors load_checkpoint(const std::filesystem::path& path,
                            const std::vector<NamedTensor>& encoder, const FeaturesConfig& cfg,
                            const std::vector<NamedTensor>& extra = {});

// The CPU encoder's checkpoint, as above.
inline void save_checkpoint(const std::filesystem::path& path, Encoder& encoder,
                            const std::vector<NamedTensor>& extra = {},
                            const std::map<std::string, std::string>& metadata = {}) {
  save_checkpoint(path, encoder.state(), encoder.config(), extra, metadata);
}
inline Safetensors load_checkpoint(const std::filesystem::path& path, Encoder& encoder,
                                   const std::vector<NamedTensor>& extra = {}) {
  return load_checkpoint(path, encoder.state(), encoder.config(), extra);
}

}  // namespace fsl
