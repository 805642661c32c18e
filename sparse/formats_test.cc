#include "sparse/formats.h"

#include <cstdint>
#include <vector>

#include "ATen/Functions.h"
#include "ATen/TensorOperators.h"
#include "core/testing/test_seed.h"
#include "gtest/gtest.h"

namespace polaris::sparse {
namespace {

// A [rows, columns] float weight whose elements are zero with probability `sparsity`.
at::Tensor RandomSparseWeight(int64_t rows, int64_t columns, double sparsity, uint64_t salt) {
  at::Generator generator = at::detail::createCPUGenerator(testing::TestSeed() + salt);
  at::Tensor weight = at::randn({rows, columns}, generator);
  at::Tensor keep = at::rand({rows, columns}, generator).ge(sparsity);
  return weight * keep;
}

void ExpectSameTensor(const at::Tensor& expected, const at::Tensor& actual) {
  ASSERT_TRUE(expected.sizes().equals(actual.sizes()))
      << "expected shape " << expected.sizes() << ", got " << actual.sizes();
  const at::Tensor differs = expected.ne(actual);
  if (differs.any().item<bool>()) {
    const at::Tensor first = differs.nonzero()[0];
    const int64_t row = first[0].item<int64_t>();
    const int64_t column = first[1].item<int64_t>();
    FAIL() << "first difference at [" << row << ", " << column << "]: expected "
           << expected[row][column].item<float>() << ", got " << actual[row][column].item<float>()
           << " (shape " << expected.sizes() << ")";
  }
}

const std::vector<double> kSparsities = {0.0, 0.5, 0.9, 0.99, 1.0};
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{1, 1},   {1, 17},  {7, 1},   {13, 31},
                                                          {16, 16}, {63, 65}, {64, 128}};

TEST(ToCsr, RoundTripsShapesAndSparsities) {
  for (const auto& [rows, columns] : kShapes) {
    for (double sparsity : kSparsities) {
      SCOPED_TRACE(::testing::Message() << rows << "x" << columns << " at sparsity " << sparsity);
      const at::Tensor weight = RandomSparseWeight(rows, columns, sparsity, rows * 100 + columns);
      absl::StatusOr<CsrMatrix> csr = ToCsr(weight);
      ASSERT_TRUE(csr.ok()) << csr.status();
      EXPECT_EQ(csr->nnz(), weight.ne(0).sum().item<int64_t>());
      EXPECT_TRUE(ValidateCsr(*csr).ok());
      absl::StatusOr<at::Tensor> back = ToDense(*csr);
      ASSERT_TRUE(back.ok()) << back.status();
      ExpectSameTensor(weight, *back);
    }
  }
}

TEST(ToCsr, EmptyAndFullRows) {
  at::Tensor weight = at::randn({4, 9}) + 10;  // no zeros
  weight[1].zero_();
  weight[3].zero_();
  absl::StatusOr<CsrMatrix> csr = ToCsr(weight);
  ASSERT_TRUE(csr.ok()) << csr.status();
  const std::vector<int32_t> expected_offsets = {0, 9, 9, 18, 18};
  for (size_t i = 0; i < expected_offsets.size(); ++i) {
    EXPECT_EQ(csr->row_offsets[i].item<int32_t>(), expected_offsets[i]) << "offset " << i;
  }
  ExpectSameTensor(weight, *ToDense(*csr));
}

TEST(ToCsr, MaskKeepsExplicitZeros) {
  const at::Tensor weight = at::tensor({1.0f, 0.0f, 3.0f, 4.0f}).reshape({2, 2});
  const at::Tensor mask = at::tensor({1, 1, 0, 1}).reshape({2, 2});
  absl::StatusOr<CsrMatrix> csr = ToCsr(weight, mask);
  ASSERT_TRUE(csr.ok()) << csr.status();
  EXPECT_EQ(csr->nnz(), 3);
  ExpectSameTensor(weight * mask, *ToDense(*csr));
}

TEST(ToCsr, FlattensConvolutionWeights) {
  const at::Tensor weight = RandomSparseWeight(8, 3 * 3 * 3, 0.7, 5).reshape({8, 3, 3, 3});
  absl::StatusOr<CsrMatrix> csr = ToCsr(weight);
  ASSERT_TRUE(csr.ok()) << csr.status();
  EXPECT_EQ(csr->rows, 8);
  EXPECT_EQ(csr->columns, 27);
  ExpectSameTensor(weight.reshape({8, 27}), *ToDense(*csr));
}

TEST(ToCsr, RejectsBadInput) {
  EXPECT_EQ(ToCsr(at::Tensor()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToCsr(at::ones({5})).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToCsr(at::ones({2, 2}, at::kInt)).status().code(), absl::StatusCode::kInvalidArgument);
  const absl::Status mismatch = ToCsr(at::ones({4, 4}), at::ones({4, 5})).status();
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.message().find("[4, 5]"), absl::string_view::npos) << mismatch;
}

TEST(ToBsr, RoundTripsBlockSizes) {
  const std::vector<std::pair<int64_t, int64_t>> block_sizes = {{1, 1}, {1, 4}, {4, 1}, {2, 2},
                                                                {4, 4}, {8, 8}, {3, 5}, {16, 1}};
  for (const auto& [block_rows, block_columns] : block_sizes) {
    for (double sparsity : kSparsities) {
      SCOPED_TRACE(::testing::Message() << "block " << block_rows << "x" << block_columns
                                        << " at sparsity " << sparsity);
      const int64_t rows = block_rows * 6;
      const int64_t columns = block_columns * 7;
      const at::Tensor weight = RandomSparseWeight(rows, columns, sparsity, block_rows);
      absl::StatusOr<BsrMatrix> bsr = ToBsr(weight, block_rows, block_columns);
      ASSERT_TRUE(bsr.ok()) << bsr.status();
      EXPECT_TRUE(ValidateBsr(*bsr).ok());
      absl::StatusOr<at::Tensor> back = ToDense(*bsr);
      ASSERT_TRUE(back.ok()) << back.status();
      ExpectSameTensor(weight, *back);
    }
  }
}

TEST(ToBsr, StoresOnlyBlocksWithKeptElements) {
  at::Tensor weight = at::zeros({8, 8});
  weight[0][0] = 1;
  weight[5][7] = 2;
  absl::StatusOr<BsrMatrix> bsr = ToBsr(weight, 4, 4);
  ASSERT_TRUE(bsr.ok()) << bsr.status();
  EXPECT_EQ(bsr->blocks(), 2);
  EXPECT_EQ(bsr->column_indices[0].item<int32_t>(), 0);
  EXPECT_EQ(bsr->column_indices[1].item<int32_t>(), 1);
}

TEST(ToBsr, RejectsBlocksThatDoNotDivide) {
  const absl::Status status = ToBsr(at::ones({10, 12}), 4, 4).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("does not divide"), absl::string_view::npos) << status;
  EXPECT_EQ(ToBsr(at::ones({8, 8}), 0, 4).status().code(), absl::StatusCode::kInvalidArgument);
}

// Keeps the `n` largest-magnitude elements of every group of `m` columns.
at::Tensor NmSparseWeight(int64_t rows, int64_t columns, int n, int m, uint64_t salt) {
  at::Generator generator = at::detail::createCPUGenerator(testing::TestSeed() + salt);
  const at::Tensor weight = at::randn({rows, columns / m, m}, generator);
  const at::Tensor top = std::get<1>(weight.abs().topk(n, /*dim=*/2));
  const at::Tensor mask = at::zeros_like(weight).scatter_(2, top, 1.0);
  return (weight * mask).reshape({rows, columns});
}

TEST(ToNm, RoundTripsPatterns) {
  const std::vector<std::pair<int, int>> patterns = {{2, 4}, {1, 4}, {4, 8},
                                                     {3, 7}, {1, 1}, {16, 16}};
  for (const auto& [n, m] : patterns) {
    SCOPED_TRACE(::testing::Message() << n << ":" << m);
    const at::Tensor weight = NmSparseWeight(11, m * 5, n, m, n * 10 + m);
    absl::StatusOr<NmMatrix> packed = ToNm(weight, n, m);
    ASSERT_TRUE(packed.ok()) << packed.status();
    EXPECT_TRUE(ValidateNm(*packed).ok());
    EXPECT_EQ(packed->values.size(1), 5 * n);
    absl::StatusOr<at::Tensor> back = ToDense(*packed);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameTensor(weight, *back);
  }
}

TEST(ToNm, PadsGroupsWithFewerElements) {
  at::Tensor weight = at::zeros({2, 8});
  weight[0][3] = 5;  // one of two slots used in group 0, none in group 1
  weight[1][4] = 6;
  weight[1][6] = 7;
  absl::StatusOr<NmMatrix> packed = ToNm(weight, 2, 4);
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_TRUE(ValidateNm(*packed).ok());
  ExpectSameTensor(weight, *ToDense(*packed));
}

TEST(ToNm, RejectsBadInput) {
  EXPECT_EQ(ToNm(at::ones({4, 8}), 5, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToNm(at::ones({4, 8}), 0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToNm(at::ones({4, 10}), 2, 4).status().code(), absl::StatusCode::kInvalidArgument);
  const absl::Status dense = ToNm(at::ones({4, 8}), 2, 4).status();
  EXPECT_EQ(dense.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dense.message().find("row 0, group 0"), absl::string_view::npos) << dense;
}

TEST(ValidateCsr, RejectsCorruptMatrices) {
  absl::StatusOr<CsrMatrix> csr = ToCsr(RandomSparseWeight(5, 6, 0.5, 9) + 0.001);
  ASSERT_TRUE(csr.ok()) << csr.status();

  CsrMatrix out_of_range = *csr;
  out_of_range.column_indices = csr->column_indices.clone();
  out_of_range.column_indices[0] = 6;
  EXPECT_FALSE(ValidateCsr(out_of_range).ok());

  CsrMatrix falling = *csr;
  falling.row_offsets = csr->row_offsets.clone();
  falling.row_offsets[2] = falling.row_offsets[1].item<int32_t>() - 1;
  EXPECT_FALSE(ValidateCsr(falling).ok());

  CsrMatrix wrong_type = *csr;
  wrong_type.values = csr->values.to(at::kDouble);
  EXPECT_FALSE(ValidateCsr(wrong_type).ok());
  EXPECT_FALSE(ToDense(wrong_type).ok());
}

TEST(ToBitmap, RoundTripsAnyShape) {
  const std::vector<std::vector<int64_t>> shapes = {{1, 1}, {3, 5}, {8, 3, 3, 3}, {7}, {2, 9}};
  for (const std::vector<int64_t>& shape : shapes) {
    for (double sparsity : kSparsities) {
      SCOPED_TRACE(::testing::Message() << at::IntArrayRef(shape) << " sparsity " << sparsity);
      at::Generator generator = at::detail::createCPUGenerator(testing::TestSeed());
      const at::Tensor weight =
          at::randn(shape, generator) * at::rand(shape, generator).ge(sparsity);
      absl::StatusOr<BitmapMatrix> bitmap = ToBitmap(weight);
      ASSERT_TRUE(bitmap.ok()) << bitmap.status();
      EXPECT_TRUE(ValidateBitmap(*bitmap).ok());
      EXPECT_EQ(bitmap->values.numel(), weight.ne(0).sum().item<int64_t>());
      absl::StatusOr<at::Tensor> back = ToDense(*bitmap);
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_TRUE(at::equal(weight, *back));
    }
  }
}

TEST(ToBitmap, IsSmallerThanFloatStorage) {
  const at::Tensor weight = RandomSparseWeight(256, 784, 0.9, 1);
  absl::StatusOr<BitmapMatrix> bitmap = ToBitmap(weight);
  ASSERT_TRUE(bitmap.ok()) << bitmap.status();
  // 1 bit per element plus 4 bytes per kept element: about 0.125 + 0.4 bytes per element.
  EXPECT_LT(StorageBytes(*bitmap), weight.numel() * 4 / 7);
}

TEST(ValidateBitmap, RejectsCountMismatch) {
  absl::StatusOr<BitmapMatrix> bitmap = ToBitmap(RandomSparseWeight(4, 4, 0.5, 2));
  ASSERT_TRUE(bitmap.ok()) << bitmap.status();
  BitmapMatrix extra = *bitmap;
  extra.values = at::cat({bitmap->values, at::ones({1})});
  EXPECT_FALSE(ValidateBitmap(extra).ok());
  BitmapMatrix wrong_shape = *bitmap;
  wrong_shape.shape = {4, 5};
  EXPECT_FALSE(ValidateBitmap(wrong_shape).ok());
}

TEST(Sparsity, CountsZerosOrMaskZeros) {
  const at::Tensor weight = at::tensor({0.0f, 1.0f, 0.0f, 2.0f});
  EXPECT_DOUBLE_EQ(Sparsity(weight), 0.5);
  EXPECT_DOUBLE_EQ(Sparsity(weight, at::tensor({1, 1, 1, 0})), 0.25);
  EXPECT_DOUBLE_EQ(Sparsity(at::Tensor()), 0.0);
}

TEST(StorageBytes, CountsIndicesAndValues) {
  at::Tensor weight = at::zeros({10, 10});
  weight[0][0] = 1;
  weight[9][9] = 1;
  absl::StatusOr<CsrMatrix> csr = ToCsr(weight);
  ASSERT_TRUE(csr.ok()) << csr.status();
  EXPECT_EQ(StorageBytes(*csr), 11 * 4 + 2 * 4 + 2 * 4);
}

}  // namespace
}  // namespace polaris::sparse
