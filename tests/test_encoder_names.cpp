// parse_encoder_tensor_name (the map CudaEncoder builds its device layout from) on every state()
// name of the encoder variants: each BN has its weight, bias, two statistics and one counter in
// one (block, slot); each conv weight is found; nothing is left unclassified; bad names throw.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

#include "fsl/error.hpp"
#include "fsl/model.hpp"

namespace fsl {
namespace {

FeaturesConfig config(const std::string& arch, bool bias, bool layer4) {
  FeaturesConfig f;
  f.arch = arch;
  f.with_bias = bias;
  f.layer_4 = layer4;
  f.n_mels = 32;
  f.embedding_dim = 4 * 64 * 2;
  return f;
}

TEST(EncoderNames, KnownNamesParse) {
  auto n = parse_encoder_tensor_name("encoder.layer1.0.conv1.weight");
  EXPECT_EQ(n.block, 0);
  EXPECT_EQ(n.slot, 0);
  EXPECT_TRUE(n.conv);
  EXPECT_EQ(n.field, "conv1.weight");
  EXPECT_EQ(n.leaf, "weight");
  n = parse_encoder_tensor_name("encoder.layer3.0.bn2.num_batches_tracked");
  EXPECT_EQ(n.block, 2);
  EXPECT_EQ(n.slot, 1);
  EXPECT_FALSE(n.conv);
  EXPECT_EQ(n.leaf, "num_batches_tracked");
  n = parse_encoder_tensor_name("encoder.layer4.0.downsample.0.weight");
  EXPECT_EQ(n.block, 3);
  EXPECT_EQ(n.slot, 3);
  EXPECT_TRUE(n.conv);
  n = parse_encoder_tensor_name("encoder.layer2.0.downsample.1.running_var");
  EXPECT_EQ(n.slot, 3);
  EXPECT_FALSE(n.conv);
  EXPECT_EQ(n.leaf, "running_var");
  n = parse_encoder_tensor_name("encoder.layer2.0.ca.fc.2.weight");
  EXPECT_EQ(n.slot, -1);
  EXPECT_EQ(n.field, "ca.fc.2.weight");
}

TEST(EncoderNames, BadNamesThrow) {
  for (const char* bad : {"", "encoder.layer", "encoder.layer5.0.conv1.weight",
                          "encoder.layer0.0.conv1.weight", "encoder.layer1.1.conv1.weight",
                          "encoder.layer1.0.conv4.weight", "encoder.layer1.0.bn1",
                          "encoder.layer1.0.bn1.", "fc.weight"})
    EXPECT_THROW(parse_encoder_tensor_name(bad), Error) << bad;
}

TEST(EncoderNames, EveryStateTensorOfEveryVariantIsClassified) {
  for (const auto& [arch, bias, layer4] :
       {std::tuple{"v1", false, false}, std::tuple{"v1", true, true}, std::tuple{"v2", false, false}}) {
    Encoder e(config(arch, bias, layer4), 1, 16, 1);
    std::map<std::pair<int, int>, std::set<std::string>> bn;  // (block, slot) -> leaves
    int conv_weights = 0, conv_biases = 0, attention = 0;
    for (const NamedTensor& t : e.state()) {
      const EncoderTensorName n = parse_encoder_tensor_name(t.name);
      EXPECT_EQ(t.name, "encoder.layer" + std::to_string(n.block + 1) + ".0." + n.field);
      if (n.slot < 0) {
        ++attention;
      } else if (n.conv) {
        (n.leaf == "weight" ? conv_weights : conv_biases)++;
      } else {
        const bool fresh = bn[std::make_pair(n.block, n.slot)].insert(n.leaf).second;
        EXPECT_TRUE(fresh) << t.name << " twice";
        EXPECT_EQ(t.dtype == DType::i64, n.leaf == "num_batches_tracked") << t.name;
      }
    }
    const int blocks = EncoderT<float>::kMaxBlocks;  // all built, as PyTorch does
    EXPECT_EQ(conv_weights, blocks * 4) << arch;
    EXPECT_EQ(conv_biases, bias ? blocks * 3 : 0) << arch;
    EXPECT_EQ(attention, std::string(arch) == "v2" ? blocks * 2 : 0) << arch;
    EXPECT_EQ(bn.size(), size_t(blocks * 4)) << arch;
    for (const auto& [where, leaves] : bn)
      EXPECT_EQ(leaves, (std::set<std::string>{"bias", "num_batches_tracked", "running_mean",
                                               "running_var", "weight"}))
          << where.first << "/" << where.second;
  }
}

}  // namespace
}  // namespace fsl
