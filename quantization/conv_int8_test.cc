#include "quantization/conv_int8.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "core/cpu_features.h"
#include "core/runtime.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris::quantization {
namespace {

struct ConvCase {
  int64_t batch, channels, height, width, out_channels, kernel, stride, padding, dilation, groups;
  bool relu;
};

// The residual Fashion-MNIST CNN's convolutions, then shapes at the edges: a kernel as large as
// the input, odd sizes, groups, dilation, 1x1 and a prime number of output channels.
const ConvCase kCases[] = {
    {2, 1, 28, 28, 32, 3, 1, 1, 1, 1, true},   {2, 32, 28, 28, 32, 3, 1, 1, 1, 1, true},
    {2, 32, 28, 28, 32, 3, 1, 1, 1, 1, false}, {2, 32, 28, 28, 64, 3, 2, 1, 1, 1, true},
    {2, 64, 14, 14, 64, 3, 1, 1, 1, 1, false}, {2, 32, 28, 28, 64, 1, 2, 0, 1, 1, false},
    {1, 3, 7, 5, 5, 3, 1, 0, 1, 1, false},     {1, 4, 9, 9, 6, 3, 2, 1, 1, 2, true},
    {1, 8, 11, 13, 8, 3, 1, 2, 2, 1, false},   {3, 16, 5, 5, 17, 1, 1, 0, 1, 1, true},
    {1, 5, 3, 3, 7, 3, 1, 0, 1, 1, false},
};

std::string Describe(const ConvCase& c) {
  return "input [" + std::to_string(c.batch) + ", " + std::to_string(c.channels) + ", " +
         std::to_string(c.height) + ", " + std::to_string(c.width) + "] -> " +
         std::to_string(c.out_channels) + " kernel " + std::to_string(c.kernel) + " stride " +
         std::to_string(c.stride) + " padding " + std::to_string(c.padding) + " dilation " +
         std::to_string(c.dilation) + " groups " + std::to_string(c.groups) +
         (c.relu ? " relu" : "");
}

class Int8ConvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CpuFeatures().avx512_vnni) GTEST_SKIP() << "the numerics are specified for VNNI CPUs";
    ASSERT_TRUE(UseOnednnQuantizedEngine().ok());
  }
  at::Generator generator_ = at::make_generator<at::CPUGeneratorImpl>(testing::TestSeed());
};

// Asserts that two uint8 outputs differ by at most one quantization step anywhere, and prints
// how many elements differ by one (rounding of values that fall near the middle between two
// steps, computed in another order or precision).
void ExpectWithinOneStep(const at::Tensor& actual, const at::Tensor& expected,
                         const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const at::Tensor difference = (actual.to(at::kInt) - expected.to(at::kInt)).abs();
  const int64_t worst = difference.reshape({-1}).argmax().item<int64_t>();
  const int max_difference = difference.reshape({-1})[worst].item<int>();
  const double off_by_one = difference.gt(0).to(at::kDouble).mean().item<double>();
  std::printf("  %s: max difference %d step(s), %.3f%% of outputs differ\n", what.c_str(),
              max_difference, 100.0 * off_by_one);
  EXPECT_LE(max_difference, 1) << what << ": at flat index " << worst << " expected "
                               << expected.reshape({-1})[worst].item<int>() << ", got "
                               << actual.reshape({-1})[worst].item<int>();
  // Ties are rare: a systematic error (a wrong zero point or bias) moves most outputs.
  EXPECT_LT(off_by_one, 0.05) << what;
}

TEST_F(Int8ConvTest, MatchesReferenceWithinOneStep) {
  for (const ConvCase& c : kCases) {
    const std::string name = Describe(c);
    std::printf("%s\n", name.c_str());
    const at::Tensor input =
        at::randint(0, 256, {c.batch, c.channels, c.height, c.width}, generator_, at::kByte);
    const at::Tensor weight = at::randint(
        -127, 128, {c.out_channels, c.channels / c.groups, c.kernel, c.kernel}, generator_, at::kChar);
    const at::Tensor weight_scale = at::rand({c.out_channels}, generator_) * 0.01 + 0.002;
    const at::Tensor bias = at::randn({c.out_channels}, generator_);
    Conv2dGeometry geometry;
    geometry.stride = {c.stride, c.stride};
    geometry.padding = {c.padding, c.padding};
    geometry.dilation = {c.dilation, c.dilation};
    geometry.groups = c.groups;
    Conv2dQuantization quantization;
    quantization.input_scale = 0.02f;
    quantization.input_zero_point = 50;
    quantization.relu = c.relu;

    // Output quantization from the float result's range, as calibration would choose it.
    const at::Tensor x_float = (input.to(at::kFloat) - 50) * 0.02f;
    const at::Tensor w_float = weight.to(at::kFloat) * weight_scale.reshape({-1, 1, 1, 1});
    at::Tensor y_float = at::conv2d(x_float, w_float, bias, {c.stride, c.stride},
                                    {c.padding, c.padding}, {c.dilation, c.dilation}, c.groups);
    if (c.relu) y_float = y_float.relu();
    const float lo = std::min(y_float.min().item<float>(), 0.0f);
    const float hi = std::max(y_float.max().item<float>(), 0.0f);
    quantization.output_scale = (hi - lo) / 255.0f;
    quantization.output_zero_point = static_cast<int32_t>(std::nearbyint(-lo / quantization.output_scale));

    const at::Tensor expected =
        Conv2dInt8Reference(input, weight, weight_scale, bias, geometry, quantization);

    const at::Tensor q_input = at::_make_per_tensor_quantized_tensor(
        input, quantization.input_scale, quantization.input_zero_point);
    const at::Tensor q_weight = at::_make_per_channel_quantized_tensor(
        weight, weight_scale.to(at::kDouble), at::zeros({c.out_channels}, at::kLong), 0);
    absl::StatusOr<std::shared_ptr<LibTorchInt8Conv2d>> libtorch =
        LibTorchInt8Conv2d::Create(q_weight, bias, geometry);
    ASSERT_TRUE(libtorch.ok()) << libtorch.status();
    absl::StatusOr<at::Tensor> libtorch_output = (*libtorch)->Forward(
        q_input, quantization.output_scale, quantization.output_zero_point, c.relu);
    ASSERT_TRUE(libtorch_output.ok()) << libtorch_output.status();
    ExpectWithinOneStep(libtorch_output->int_repr().contiguous(), expected,
                        "LibTorch quantized::conv2d" + std::string(c.relu ? "_relu" : ""));

    absl::StatusOr<std::shared_ptr<Int8Conv2d>> ours =
        Int8Conv2d::Create(weight, weight_scale, bias, geometry, quantization);
    ASSERT_TRUE(ours.ok()) << ours.status();
    for (bool channels_last : {false, true}) {
      const at::Tensor x = channels_last ? q_input.contiguous(at::MemoryFormat::ChannelsLast) : q_input;
      absl::StatusOr<at::Tensor> output = (*ours)->Forward(x);
      ASSERT_TRUE(output.ok()) << output.status();
      ExpectWithinOneStep(output->int_repr().contiguous(), expected,
                          std::string("oneDNN direct, ") + (channels_last ? "NHWC" : "NCHW") +
                              " input, " + (*ours)->ImplementationName(x).value());
    }
  }
}

TEST_F(Int8ConvTest, RejectsMismatchedInputQuantization) {
  const at::Tensor weight = at::ones({4, 2, 3, 3}, at::kChar);
  Conv2dQuantization quantization;
  quantization.input_scale = 0.1f;
  quantization.input_zero_point = 10;
  std::shared_ptr<Int8Conv2d> conv =
      Int8Conv2d::Create(weight, at::full({4}, 0.01f), at::Tensor(), Conv2dGeometry(), quantization)
          .value();
  const at::Tensor q = at::quantize_per_tensor(at::rand({1, 2, 5, 5}), 0.2, 10, at::kQUInt8);
  EXPECT_FALSE(conv->Forward(q).ok());
  EXPECT_FALSE(conv->Forward(at::quantize_per_tensor(at::rand({1, 3, 5, 5}), 0.1, 10, at::kQUInt8)).ok());
  EXPECT_TRUE(conv->Forward(at::quantize_per_tensor(at::rand({1, 2, 5, 5}), 0.1, 10, at::kQUInt8)).ok());
  quantization.output_zero_point = 300;
  EXPECT_FALSE(
      Int8Conv2d::Create(weight, at::full({4}, 0.01f), at::Tensor(), Conv2dGeometry(), quantization).ok());
}

}  // namespace
}  // namespace polaris::quantization
