#include "quantization/ops.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "ATen/core/dispatch/Dispatcher.h"
#include "c10/core/InferenceMode.h"
#include "core/cpu_features.h"
#include "core/runtime.h"
#include "core/testing/python_test_util.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"
#include "quantization/conv_int8.h"
#include "quantization/linear_int4.h"
#include "quantization/linear_int8.h"
#include "torch/csrc/jit/api/module.h"

namespace polaris::quantization {
namespace {

class OpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CpuFeatures().avx512_vnni) GTEST_SKIP() << "the int8 numerics are specified for VNNI CPUs";
    ASSERT_TRUE(UseOnednnQuantizedEngine().ok());
  }
  at::Generator generator_ = at::make_generator<at::CPUGeneratorImpl>(testing::TestSeed());
};

c10::IValue CallOp(const char* name, std::vector<c10::IValue> arguments) {
  const c10::OperatorHandle op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  op.callBoxed(&arguments);
  return arguments.at(0);
}

TEST_F(OpsTest, LinearOpsMatchTheirClasses) {
  const at::Tensor x = at::randn({5, 48}, generator_);
  const at::Tensor w = at::randint(-127, 128, {12, 48}, generator_, at::kChar);
  const at::Tensor scale = at::rand({12}, generator_) * 0.01 + 0.001;
  const at::Tensor bias = at::randn({12}, generator_);
  std::shared_ptr<Int8Linear> layer = Int8Linear::Create(w, scale, bias).value();

  const at::Tensor dynamic =
      CallOp("polaris::quant_linear_int8_dynamic", {x, w, scale, bias}).toTensor();
  EXPECT_TRUE(at::equal(dynamic, layer->ForwardDynamic(x).value()));
  const at::Tensor static_output =
      CallOp("polaris::quant_linear_int8", {x, w, scale, bias, 0.02, int64_t{128}}).toTensor();
  EXPECT_TRUE(at::equal(static_output, layer->Forward(x, 0.02f, 128).value()));
  // Without a bias, via c10::nullopt.
  const at::Tensor no_bias =
      CallOp("polaris::quant_linear_int8_dynamic", {x, w, scale, c10::IValue()}).toTensor();
  EXPECT_TRUE(at::allclose(no_bias + bias, dynamic, 1e-5, 1e-5));

  const Int4Weight weight = QuantizeWeightInt4(at::randn({12, 48}, generator_), 16).value();
  const at::Tensor int4 = CallOp("polaris::quant_linear_int4",
                                 {x, weight.packed, weight.scale, weight.zero_point, int64_t{16},
                                  bias})
                              .toTensor();
  EXPECT_TRUE(at::equal(int4, Int4Linear::Create(weight, bias).value()->Forward(x).value()));
}

// A model loaded inside c10::InferenceMode contains inference tensors, which have no version
// counter for the cache of packed layers to read.
TEST_F(OpsTest, AcceptsInferenceTensors) {
  const at::Tensor x = at::randn({5, 48}, generator_);
  const at::Tensor bias = at::randn({12}, generator_);
  const Int4Weight weight = QuantizeWeightInt4(at::randn({12, 48}, generator_), 16).value();
  const at::Tensor expected = Int4Linear::Create(weight, bias).value()->Forward(x).value();
  const at::Tensor w = at::randint(-127, 128, {12, 48}, generator_, at::kChar);
  const at::Tensor scale = at::rand({12}, generator_) * 0.01 + 0.001;
  const at::Tensor int8_expected =
      CallOp("polaris::quant_linear_int8_dynamic", {x, w, scale, bias}).toTensor();

  c10::InferenceMode inference_mode;
  const at::Tensor packed = weight.packed.clone();
  ASSERT_TRUE(packed.is_inference());
  const at::Tensor int4 = CallOp("polaris::quant_linear_int4",
                                 {x, packed, weight.scale.clone(), weight.zero_point.clone(),
                                  int64_t{16}, bias.clone()})
                              .toTensor();
  EXPECT_TRUE(at::equal(int4, expected));
  const at::Tensor int8 = CallOp("polaris::quant_linear_int8_dynamic",
                                 {x, w.clone(), scale.clone(), bias.clone()})
                              .toTensor();
  EXPECT_TRUE(at::equal(int8, int8_expected));
}

TEST_F(OpsTest, ConvOpMatchesInt8Conv2d) {
  const at::Tensor x = at::quantize_per_tensor(at::rand({2, 8, 9, 9}, generator_), 0.004, 3,
                                               at::kQUInt8);
  const at::Tensor w = at::randint(-127, 128, {6, 4, 3, 3}, generator_, at::kChar);
  const at::Tensor scale = at::rand({6}, generator_) * 0.01 + 0.001;
  const at::Tensor bias = at::randn({6}, generator_);
  const at::Tensor y = CallOp("polaris::quant_conv2d_int8",
                              {x, w, scale, bias, std::vector<int64_t>{2, 1},
                               std::vector<int64_t>{1, 0}, std::vector<int64_t>{1, 1},
                               int64_t{2}, 0.01, int64_t{7}, true})
                           .toTensor();
  Conv2dGeometry geometry;
  geometry.stride = {2, 1};
  geometry.padding = {1, 0};
  geometry.groups = 2;
  Conv2dQuantization quantization{0.004f, 3, 0.01f, 7, true};
  const at::Tensor expected =
      Int8Conv2d::Create(w, scale, bias, geometry, quantization).value()->Forward(x).value();
  EXPECT_TRUE(at::equal(y.int_repr(), expected.int_repr()));
  EXPECT_EQ(y.q_scale(), 0.01f);
  EXPECT_EQ(y.q_zero_point(), 7);
  EXPECT_THROW(QuantConv2dInt8Op(x.dequantize(), w, scale, bias, {1, 1}, {0, 0}, {1, 1}, 2, 0.01,
                                 7, false),
               c10::Error);
}

TEST_F(OpsTest, CacheDropsChangedWeights) {
  const at::Tensor x = at::randn({2, 16}, generator_);
  at::Tensor w = at::randint(-127, 128, {4, 16}, generator_, at::kChar);
  const at::Tensor scale = at::full({4}, 0.01f);
  const at::Tensor before = QuantLinearInt8DynamicOp(x, w, scale, c10::nullopt);
  const int64_t entries = PackedCacheSize();
  QuantLinearInt8DynamicOp(x, w, scale, c10::nullopt);
  EXPECT_EQ(PackedCacheSize(), entries);

  w.neg_();  // bumps the version counter
  const at::Tensor after = QuantLinearInt8DynamicOp(x, w, scale, c10::nullopt);
  EXPECT_EQ(PackedCacheSize(), entries + 1);
  EXPECT_TRUE(at::allclose(after, -before, 1e-5, 1e-5));
}

TEST_F(OpsTest, QuantizeOpFeedsLibTorchQuantizedTensors) {
  const at::Tensor x = at::randn({3, 4, 5}, generator_) * 2.0;
  const at::Tensor ours = QuantQuantizePerTensorOp(x, 0.03, 120);
  const at::Tensor libtorch = at::quantize_per_tensor(x, 0.03, 120, at::kQUInt8);
  ASSERT_EQ(ours.scalar_type(), at::kQUInt8);
  EXPECT_EQ(ours.q_scale(), 0.03);
  EXPECT_EQ(ours.q_zero_point(), 120);
  // LibTorch rounds x / scale or x * (1 / scale) in its own way: at most one step apart.
  EXPECT_LE((ours.int_repr().to(at::kInt) - libtorch.int_repr().to(at::kInt)).abs().max().item<int>(),
            1);
  EXPECT_TRUE(at::equal(QuantDequantizeOp(ours), at::dequantize(ours)));
  const at::Tensor signed_q = at::quantize_per_tensor(x, 0.05, -3, at::kQInt8);
  EXPECT_TRUE(at::equal(QuantDequantizeOp(signed_q), at::dequantize(signed_q)));
}

TEST_F(OpsTest, BadArgumentsRaiseClearErrors) {
  const at::Tensor x = at::randn({2, 10}, generator_);
  const Int4Weight weight = QuantizeWeightInt4(at::randn({3, 10}, generator_), 5).value();
  try {
    QuantLinearInt4Op(x, weight.packed, weight.scale, weight.zero_point, 4, c10::nullopt);
    FAIL() << "group size 4 accepted";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what_without_backtrace()).find("does not divide in_features 10"),
              std::string::npos)
        << error.what_without_backtrace();
  }
  at::Tensor with_nan = x.clone();
  with_nan[0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(QuantQuantizePerTensorOp(with_nan, 0.1, 0), c10::Error);
  EXPECT_THROW(QuantQuantizePerTensorOp(x, 0.0, 0), c10::Error);
  EXPECT_THROW(QuantLinearInt8Op(x, at::zeros({3, 10}, at::kChar), at::ones({3}), c10::nullopt,
                                 0.1, 300),
               c10::Error);
  EXPECT_THROW(QuantDequantizeOp(x), c10::Error);
}

// Loads the shared library in Python (torch.ops.load_library) and checks each op against the
// results computed here.
TEST_F(OpsTest, PythonLoadsLibraryAndMatchesCpp) {
  const at::Tensor x = at::randn({6, 32}, generator_);
  const at::Tensor w = at::randint(-127, 128, {10, 32}, generator_, at::kChar);
  const at::Tensor scale = at::rand({10}, generator_) * 0.01 + 0.001;
  const at::Tensor bias = at::randn({10}, generator_);
  const Int4Weight weight = QuantizeWeightInt4(at::randn({10, 32}, generator_), 8).value();
  const at::Tensor quantized = QuantQuantizePerTensorOp(x, 0.03, 120);
  const at::Tensor image = QuantQuantizePerTensorOp(at::rand({2, 3, 8, 8}, generator_), 0.004, 0);
  const at::Tensor conv_weight = at::randint(-127, 128, {5, 3, 3, 3}, generator_, at::kChar);
  const at::Tensor conv_scale = at::rand({5}, generator_) * 0.01 + 0.001;

  torch::jit::Module cases("__torch__.QuantOpsCases");
  auto add = [&](const std::string& name, const at::Tensor& t) { cases.register_buffer(name, t); };
  add("x", x);
  add("w_int8", w);
  add("w_scale", scale);
  add("bias", bias);
  add("input_scale", at::tensor({0.025}, at::kDouble));
  add("input_zero_point", at::tensor({int64_t{117}}));
  add("int8_static", QuantLinearInt8Op(x, w, scale, bias, 0.025, 117));
  add("int8_dynamic", QuantLinearInt8DynamicOp(x, w, scale, bias));
  add("packed", weight.packed);
  add("int4_scale", weight.scale);
  add("int4_zero_point", weight.zero_point);
  add("group_size", at::tensor({int64_t{8}}));
  add("int4", QuantLinearInt4Op(x, weight.packed, weight.scale, weight.zero_point, 8, c10::nullopt));
  add("quantized", quantized.int_repr());
  add("dequantized", QuantDequantizeOp(quantized));
  add("image", image.int_repr());
  add("conv_weight", conv_weight);
  add("conv_scale", conv_scale);
  add("conv", QuantConv2dInt8Op(image, conv_weight, conv_scale, c10::nullopt, {1, 1}, {1, 1},
                                {1, 1}, 1, 0.02, 10, true)
                  .int_repr()
                  .contiguous());
  const std::string path = testing::TempPath("quant_ops_cases.pt");
  cases.save(path);

  absl::StatusOr<std::string> output =
      testing::RunPython("quantization/testing/check_ops.py",
                         {"quantization/libpolaris_quantization_ops.so", path});
  ASSERT_TRUE(output.ok()) << output.status();
  std::printf("%s", output->c_str());
  EXPECT_EQ(output->find("DIFFERENT"), std::string::npos) << *output;
  EXPECT_NE(output->find("bad group size: RuntimeError"), std::string::npos) << *output;
}

}  // namespace
}  // namespace polaris::quantization
