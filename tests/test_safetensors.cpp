// Checkpoints: round trip of the encoder + Adam state + metadata, foreign prefixes, and clear
// errors for corrupt files and other architectures. The PyTorch side (an fsl checkpoint loads
// strictly into the PyTorch model) is checked by tools/golden/make_model_golden.py --verify.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "fsl/error.hpp"
#include "fsl/optim.hpp"
#include "fsl/safetensors.hpp"
#include "testutil.hpp"

using namespace fsl;

namespace {
FeaturesConfig cfg(const std::string& arch) {
  FeaturesConfig f;
  f.arch = arch;
  f.n_mels = 16;
  return f;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const fsl::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Safetensors, EncoderAdamAndMetadataRoundTrip) {
  test::TempDir dir;
  Encoder a(cfg("v2"), 2, 8, 1), b(cfg("v2"), 2, 8, 2);
  Adam opt(a.params().size());
  for (float& g : a.grads()) g = 0.5f;
  opt.step(a.params(), a.grads());
  *static_cast<int64_t*>(a.state()[5].data) = 7;  // layer1 bn1 num_batches_tracked
  save_checkpoint(dir / "c.safetensors", a, opt.state(), {{"epoch", "3"}, {"config", "a: \"x\"\n"}});
  Adam opt_b(b.params().size());
  Safetensors f = load_checkpoint(dir / "c.safetensors", b, opt_b.state());
  EXPECT_EQ(f.metadata.at("epoch"), "3");
  EXPECT_EQ(f.metadata.at("config"), "a: \"x\"\n");
  EXPECT_EQ(opt_b.step_count(), 1);
  auto sa = a.state(), sb = b.state();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i)
    ASSERT_EQ(0, std::memcmp(sa[i].data, sb[i].data, sa[i].numel() * dtype_size(sa[i].dtype)))
        << sa[i].name;
  EXPECT_EQ(*static_cast<int64_t*>(sb[5].data), 7);
  EXPECT_EQ(sb[5].name, "encoder.layer1.0.bn1.num_batches_tracked");
  auto ma = opt.state(), mb = opt_b.state();
  EXPECT_EQ(0, std::memcmp(ma[1].data, mb[1].data, ma[1].numel() * 4));
}

TEST(Safetensors, PyTorchPrefixesLoad) {
  test::TempDir dir;
  Encoder a(cfg("v1"), 2, 8, 1), b(cfg("v1"), 2, 8, 2);
  auto st = a.state();
  for (auto& t : st) t.name = "net." + t.name.substr(std::string("encoder.").size());
  write_safetensors(dir / "p.safetensors", st);
  load_checkpoint(dir / "p.safetensors", b);
  EXPECT_EQ(0, std::memcmp(a.params().data(), b.params().data(), a.params().size_bytes()));
}

TEST(Safetensors, OtherArchitectureIsAnErrorNamingTheTensor) {
  test::TempDir dir;
  Encoder v1(cfg("v1"), 2, 8, 1), v2(cfg("v2"), 2, 8, 1);
  save_checkpoint(dir / "v2.safetensors", v2);
  std::string e = error_of([&] { load_checkpoint(dir / "v2.safetensors", v1); });
  EXPECT_NE(e.find("v2.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("ca.fc"), std::string::npos) << e;
  save_checkpoint(dir / "v1.safetensors", v1);
  e = error_of([&] { load_checkpoint(dir / "v1.safetensors", v2); });
  EXPECT_NE(e.find("ca.fc.0.weight' is missing"), std::string::npos) << e;
}

TEST(Safetensors, CorruptFilesAreErrorsNamingTheFile) {
  test::TempDir dir;
  Encoder a(cfg("v1"), 2, 8, 1);
  save_checkpoint(dir / "good.safetensors", a);
  std::ifstream in(dir / "good.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  };
  const uint64_t hlen = *reinterpret_cast<const uint64_t*>(bytes.data());
  std::string bad_len = bytes;
  *reinterpret_cast<uint64_t*>(bad_len.data()) = 1ull << 40;
  std::string bad_json = bytes;
  bad_json[8] = '[';
  std::string bad_offsets = bytes;
  const size_t pos = bad_offsets.find("\"data_offsets\":[0,");
  ASSERT_NE(pos, std::string::npos);
  bad_offsets.replace(pos + 16, 1, "9");  // first tensor now starts past its end
  for (auto [name, content] : std::vector<std::pair<std::string, std::string>>{
           {"short.safetensors", bytes.substr(0, 5)},
           {"truncated.safetensors", bytes.substr(0, 8 + hlen + 100)},
           {"len.safetensors", bad_len},
           {"json.safetensors", bad_json},
           {"offsets.safetensors", bad_offsets}}) {
    auto p = write(name, content);
    std::string e = error_of([&] { load_checkpoint(p, a); });
    EXPECT_NE(e.find(name), std::string::npos) << name << ": " << e;
  }
  EXPECT_NE(error_of([&] { read_safetensors(dir / "none.safetensors"); }).find("none"),
            std::string::npos);
}
