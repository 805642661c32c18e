#include "quantization/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris::quantization {
namespace {

QuantParams PerTensor(float scale, int64_t zero_point, QuantDtype dtype) {
  QuantParams params;
  params.scale = at::full({1}, scale, at::kFloat);
  params.zero_point = at::full({1}, zero_point, at::kLong);
  params.dtype = dtype;
  return params;
}

// The documented formula, element by element.
int64_t ExpectedQuantized(float x, float scale, int64_t zero_point, QuantDtype dtype) {
  const QuantRange range = RangeOf(dtype);
  const float scaled = std::nearbyint(x * (1.0f / scale));
  return static_cast<int64_t>(std::clamp(scaled + static_cast<float>(zero_point),
                                         static_cast<float>(range.min),
                                         static_cast<float>(range.max)));
}

at::Generator Generator() { return at::make_generator<at::CPUGeneratorImpl>(testing::TestSeed()); }

TEST(Quantize, MatchesFormulaForEveryDtypeAndShape) {
  at::Generator generator = Generator();
  for (QuantDtype dtype :
       {QuantDtype::kInt8, QuantDtype::kUInt8, QuantDtype::kInt4, QuantDtype::kUInt4}) {
    for (int64_t n : {1, 2, 15, 16, 17, 31, 63, 64, 65, 127, 128, 129, 1009, 65537}) {
      const QuantRange range = RangeOf(dtype);
      const float scale = 0.037f;
      const int64_t zero_point = (range.min + range.max) / 2 + 1;
      // Values reach past both ends of the range so that saturation is exercised.
      const at::Tensor x = at::randn({n}, generator) * (scale * (range.max - range.min) * 0.4f);
      absl::StatusOr<at::Tensor> q = Quantize(x, PerTensor(scale, zero_point, dtype));
      ASSERT_TRUE(q.ok()) << q.status();
      ASSERT_EQ(q->scalar_type(), StorageTypeOf(dtype));
      ASSERT_EQ(q->sizes(), x.sizes());
      const at::Tensor q_long = q->to(at::kLong);
      for (int64_t i = 0; i < n; ++i) {
        const float value = x.data_ptr<float>()[i];
        ASSERT_EQ(q_long.data_ptr<int64_t>()[i],
                  ExpectedQuantized(value, scale, zero_point, dtype))
            << QuantDtypeName(dtype) << " n=" << n << " index " << i << " x=" << value;
      }
    }
  }
}

TEST(Quantize, SaturatesInsteadOfWrappingAround) {
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor x = at::tensor({127.4f, 128.6f, 1e10f, -1e10f, inf, -inf, -128.5f, 300.0f});
  absl::StatusOr<at::Tensor> q = Quantize(x, PerTensor(1.0f, 0, QuantDtype::kInt8));
  ASSERT_TRUE(q.ok()) << q.status();
  const std::vector<int8_t> expected = {127, 127, 127, -128, 127, -128, -128, 127};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(q->data_ptr<int8_t>()[i], expected[i]) << "index " << i;
  }

  absl::StatusOr<at::Tensor> u = Quantize(x, PerTensor(1.0f, 10, QuantDtype::kUInt8));
  ASSERT_TRUE(u.ok()) << u.status();
  const std::vector<uint8_t> expected_u = {137, 139, 255, 0, 255, 0, 0, 255};
  for (size_t i = 0; i < expected_u.size(); ++i) {
    EXPECT_EQ(u->data_ptr<uint8_t>()[i], expected_u[i]) << "index " << i;
  }
}

TEST(Quantize, RoundsHalfToEven) {
  const at::Tensor x = at::tensor({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f});
  absl::StatusOr<at::Tensor> q = Quantize(x, PerTensor(1.0f, 0, QuantDtype::kInt8));
  ASSERT_TRUE(q.ok()) << q.status();
  const std::vector<int8_t> expected = {0, 2, 2, 0, -2, -2};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(q->data_ptr<int8_t>()[i], expected[i]) << "index " << i;
  }
}

TEST(Quantize, RejectsNanNamingItsIndex) {
  for (int64_t position : {0, 17, 99}) {
    at::Tensor x = at::zeros({100});
    x[position] = std::numeric_limits<float>::quiet_NaN();
    absl::StatusOr<at::Tensor> q = Quantize(x, PerTensor(0.1f, 0, QuantDtype::kInt8));
    ASSERT_FALSE(q.ok());
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(q.status().message().find("flat index " + std::to_string(position)),
              absl::string_view::npos)
        << q.status();
  }
}

TEST(Quantize, RejectsIntegerInputAndMismatchedParams) {
  EXPECT_EQ(Quantize(at::zeros({4}, at::kInt), PerTensor(1.0f, 0, QuantDtype::kInt8))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  QuantParams params = PerTensor(1.0f, 0, QuantDtype::kInt8);
  params.scale = at::ones({3});
  params.zero_point = at::zeros({3}, at::kLong);
  params.axis = 1;
  EXPECT_FALSE(Quantize(at::zeros({3, 4}), params).ok());
}

TEST(Quantize, PerChannelMatchesPerTensorOnEachSlice) {
  at::Generator generator = Generator();
  const at::Tensor x = at::randn({3, 5, 7}, generator);
  for (int64_t axis = 0; axis < 3; ++axis) {
    const int64_t channels = x.size(axis);
    QuantParams params;
    params.axis = axis;
    params.dtype = QuantDtype::kUInt8;
    params.scale = at::rand({channels}, generator) * 0.05f + 0.01f;
    params.zero_point = at::randint(100, 150, {channels}, generator, at::kLong);
    absl::StatusOr<at::Tensor> q = Quantize(x, params);
    ASSERT_TRUE(q.ok()) << q.status();
    for (int64_t c = 0; c < channels; ++c) {
      absl::StatusOr<at::Tensor> slice =
          Quantize(x.select(axis, c),
                   PerTensor(params.scale[c].item<float>(), params.zero_point[c].item<int64_t>(),
                             QuantDtype::kUInt8));
      ASSERT_TRUE(slice.ok()) << slice.status();
      EXPECT_TRUE(at::equal(q->select(axis, c), *slice)) << "axis " << axis << " channel " << c;
    }

    absl::StatusOr<at::Tensor> back = Dequantize(*q, params);
    ASSERT_TRUE(back.ok()) << back.status();
    for (int64_t c = 0; c < channels; ++c) {
      absl::StatusOr<at::Tensor> slice =
          Dequantize(q->select(axis, c),
                     PerTensor(params.scale[c].item<float>(),
                               params.zero_point[c].item<int64_t>(), QuantDtype::kUInt8));
      ASSERT_TRUE(slice.ok()) << slice.status();
      EXPECT_TRUE(at::equal(back->select(axis, c), *slice)) << "axis " << axis << " channel " << c;
    }
  }
}

TEST(FakeQuantize, ErrsAtMostHalfAStep) {
  at::Generator generator = Generator();
  const at::Tensor x = at::rand({4096}, generator) * 2.0f - 1.0f;
  const QuantParams params = PerTensor(1.0f / 127.0f, 0, QuantDtype::kInt8);
  absl::StatusOr<at::Tensor> fake = FakeQuantize(x, params);
  ASSERT_TRUE(fake.ok()) << fake.status();
  const at::Tensor error = *fake - x;
  // Rounding to the nearest grid point errs by at most scale / 2; float32 arithmetic adds a few
  // ulps of |x| <= 1.
  const float bound = 0.5f / 127.0f + 4.0f * std::numeric_limits<float>::epsilon();
  EXPECT_LE(error.abs().max().item<float>(), bound);
  // Round-to-nearest is unbiased: the mean error stays far below the bound.
  EXPECT_LE(std::abs(error.mean().item<float>()), bound / 20.0f);
}

TEST(Dequantize, RejectsWrongStorageType) {
  absl::StatusOr<at::Tensor> x =
      Dequantize(at::zeros({4}, at::kByte), PerTensor(1.0f, 0, QuantDtype::kInt8));
  ASSERT_FALSE(x.ok());
  EXPECT_NE(x.status().message().find("needs a Char tensor"), absl::string_view::npos)
      << x.status();
}

TEST(PackInt4, StoresLowNibbleFirstAndPadsOddLengths) {
  absl::StatusOr<at::Tensor> packed =
      PackInt4(at::tensor({-8, 7, 1, -1, 3}, at::TensorOptions().dtype(at::kChar)));
  ASSERT_TRUE(packed.ok()) << packed.status();
  ASSERT_EQ(packed->numel(), 3);
  EXPECT_EQ(packed->data_ptr<uint8_t>()[0], 0x78);
  EXPECT_EQ(packed->data_ptr<uint8_t>()[1], 0xF1);
  EXPECT_EQ(packed->data_ptr<uint8_t>()[2], 0x03);

  absl::StatusOr<at::Tensor> unsigned_packed =
      PackInt4(at::tensor({15, 0, 9}, at::TensorOptions().dtype(at::kByte)));
  ASSERT_TRUE(unsigned_packed.ok()) << unsigned_packed.status();
  EXPECT_EQ(unsigned_packed->data_ptr<uint8_t>()[0], 0x0F);
  EXPECT_EQ(unsigned_packed->data_ptr<uint8_t>()[1], 0x09);
}

TEST(PackInt4, RoundTripsRowsOfEveryLength) {
  at::Generator generator = Generator();
  for (bool is_signed : {true, false}) {
    for (int64_t count : {1, 2, 3, 4, 5, 8, 9, 31, 32, 33}) {
      const at::Tensor values =
          is_signed ? at::randint(-8, 8, {3, count}, generator, at::kChar)
                    : at::randint(0, 16, {3, count}, generator, at::kByte);
      absl::StatusOr<at::Tensor> packed = PackInt4(values);
      ASSERT_TRUE(packed.ok()) << packed.status();
      ASSERT_EQ(packed->sizes(), at::IntArrayRef({3, (count + 1) / 2}));
      absl::StatusOr<at::Tensor> unpacked = UnpackInt4(*packed, count, is_signed);
      ASSERT_TRUE(unpacked.ok()) << unpacked.status();
      EXPECT_TRUE(at::equal(*unpacked, values)) << "count " << count << " signed " << is_signed;
    }
  }
}

TEST(PackInt4, RejectsOutOfRangeValuesAndBadCounts) {
  absl::StatusOr<at::Tensor> packed =
      PackInt4(at::tensor({1, 2, 8}, at::TensorOptions().dtype(at::kChar)));
  ASSERT_FALSE(packed.ok());
  EXPECT_NE(packed.status().message().find("value 8 at flat index 2"), absl::string_view::npos)
      << packed.status();
  EXPECT_FALSE(PackInt4(at::tensor({16}, at::TensorOptions().dtype(at::kByte))).ok());
  EXPECT_FALSE(PackInt4(at::zeros({4}, at::kFloat)).ok());

  const at::Tensor bytes = at::zeros({2, 3}, at::kByte);
  EXPECT_TRUE(UnpackInt4(bytes, 5, true).ok());
  EXPECT_TRUE(UnpackInt4(bytes, 6, true).ok());
  EXPECT_FALSE(UnpackInt4(bytes, 4, true).ok());
  EXPECT_FALSE(UnpackInt4(bytes, 7, true).ok());
  EXPECT_FALSE(UnpackInt4(bytes.to(at::kChar), 6, true).ok());
}

float FromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

uint32_t ToBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

TEST(CastToFloat16, RoundsHalfToEvenAndOverflowsToInfinity) {
  // 1 + 2^-11 lies halfway between 1 and the next float16 (1 + 2^-10): even is 1.
  // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 and 1 + 2^-9: even is 1 + 2^-9.
  const at::Tensor x = at::tensor({1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -11),
                                   70000.0f, -70000.0f, 65504.0f});
  absl::StatusOr<at::Tensor> half = CastToFloat16(x);
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(half->scalar_type(), at::kHalf);
  absl::StatusOr<at::Tensor> back = CastToFloat32(*half);
  ASSERT_TRUE(back.ok()) << back.status();
  const float* values = back->data_ptr<float>();
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], 1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(values[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(values[3], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(values[4], 65504.0f);
}

TEST(CastToBFloat16, MatchesBitLevelRoundToNearestEven) {
  at::Generator generator = Generator();
  const at::Tensor x = at::cat({at::randn({4096}, generator) * 1000.0f,
                                at::tensor({1.0f + std::ldexp(1.0f, -8),
                                            1.0f + 3 * std::ldexp(1.0f, -8)})});
  absl::StatusOr<at::Tensor> bf16 = CastToBFloat16(x);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  EXPECT_EQ(bf16->scalar_type(), at::kBFloat16);
  absl::StatusOr<at::Tensor> back = CastToFloat32(*bf16);
  ASSERT_TRUE(back.ok()) << back.status();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const uint32_t bits = ToBits(x.data_ptr<float>()[i]);
    // Round to nearest even on the upper 16 bits: add 0x7FFF plus the lowest kept bit.
    const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
    ASSERT_EQ(back->data_ptr<float>()[i], FromBits(rounded))
        << "index " << i << " x=" << x.data_ptr<float>()[i];
  }
  EXPECT_EQ(back->data_ptr<float>()[4096], 1.0f);
  EXPECT_EQ(back->data_ptr<float>()[4097], 1.0f + std::ldexp(1.0f, -6));
}

TEST(CastToFloat16, KeepsNanAndRejectsIntegers) {
  absl::StatusOr<at::Tensor> half =
      CastToFloat16(at::tensor({std::numeric_limits<float>::quiet_NaN()}));
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_TRUE(std::isnan(half->to(at::kFloat).item<float>()));
  EXPECT_FALSE(CastToFloat16(at::zeros({2}, at::kInt)).ok());
  EXPECT_FALSE(CastToBFloat16(at::zeros({2}, at::kLong)).ok());
}

}  // namespace
}  // namespace polaris::quantization
