#include "core/idx_reader.h"

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "core/file_util.h"
#include "gtest/gtest.h"

namespace polaris {
namespace {

std::string Header(uint8_t type, const std::vector<uint32_t>& dims) {
  std::string bytes = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    bytes.push_back(static_cast<char>(d >> 24));
    bytes.push_back(static_cast<char>(d >> 16));
    bytes.push_back(static_cast<char>(d >> 8));
    bytes.push_back(static_cast<char>(d));
  }
  return bytes;
}

std::string Gzip(const std::string& data) {
  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, data.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = data.size();
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = out.size();
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

std::string WriteTemp(const std::string& name, const std::string& bytes) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  EXPECT_TRUE(WriteFileAtomically(path, bytes).ok());
  return path;
}

TEST(ParseIdx, ReadsUint8Images) {
  std::string bytes = Header(0x08, {2, 2, 3});
  for (int i = 0; i < 12; ++i) bytes.push_back(static_cast<char>(i * 20));
  absl::StatusOr<at::Tensor> tensor = ParseIdx(bytes, "images");
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ(tensor->sizes(), at::IntArrayRef({2, 2, 3}));
  EXPECT_EQ(tensor->scalar_type(), at::kByte);
  EXPECT_EQ(tensor->flatten()[11].item<int>(), 220);
}

TEST(ParseIdx, ConvertsBigEndianInt32AndFloat) {
  std::string ints = Header(0x0C, {2});
  ints += std::string("\x00\x00\x01\x02\xff\xff\xff\xfe", 8);
  absl::StatusOr<at::Tensor> tensor = ParseIdx(ints, "ints");
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ(tensor->scalar_type(), at::kInt);
  EXPECT_EQ((*tensor)[0].item<int>(), 258);
  EXPECT_EQ((*tensor)[1].item<int>(), -2);

  std::string floats = Header(0x0D, {1});
  floats += std::string("\x3f\xc0\x00\x00", 4);  // 1.5f big-endian
  tensor = ParseIdx(floats, "floats");
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_FLOAT_EQ((*tensor)[0].item<float>(), 1.5f);
}

TEST(ParseIdx, ReadsGzipCompressedData) {
  std::string raw = Header(0x08, {3});
  raw += std::string("\x07\x08\x09", 3);
  absl::StatusOr<at::Tensor> tensor = ParseIdx(Gzip(raw), "labels.gz");
  ASSERT_TRUE(tensor.ok()) << tensor.status();
  EXPECT_EQ((*tensor)[2].item<int>(), 9);
}

struct HostileCase {
  const char* description;
  std::string bytes;
  absl::StatusCode code;
  const char* message_part;
};

TEST(ParseIdx, RejectsHostileFiles) {
  std::string truncated_data = Header(0x08, {4, 4});
  truncated_data += std::string(10, '\1');
  std::string trailing = Header(0x08, {2});
  trailing += std::string(5, '\1');
  std::string valid_raw = Header(0x08, {64});
  valid_raw += std::string(64, '\2');
  const std::string valid_gzip = Gzip(valid_raw);
  std::string corrupt_gzip = valid_gzip;
  corrupt_gzip[12] ^= 0x5a;
  corrupt_gzip[13] ^= 0x33;

  const std::vector<HostileCase> cases = {
      {"empty file", "", absl::StatusCode::kDataLoss, "empty"},
      {"header shorter than the magic number", std::string("\0\0", 2),
       absl::StatusCode::kDataLoss, "truncated IDX header"},
      {"wrong magic", std::string("\x12\x34\x08\x01\x00\x00\x00\x01\x05", 9),
       absl::StatusCode::kInvalidArgument, "magic number"},
      {"unknown type code", Header(0x07, {1}) + "x", absl::StatusCode::kInvalidArgument,
       "type code"},
      {"rank zero", Header(0x08, {}), absl::StatusCode::kInvalidArgument, "rank 0"},
      {"rank nine", Header(0x08, {1, 1, 1, 1, 1, 1, 1, 1, 1}) + "x",
       absl::StatusCode::kInvalidArgument, "rank 9"},
      {"truncated dimensions", Header(0x08, {5, 5}).substr(0, 9), absl::StatusCode::kDataLoss,
       "truncated IDX header"},
      {"dimensions whose product overflows", Header(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}),
       absl::StatusCode::kInvalidArgument, "overflow"},
      {"payload above the size limit", Header(0x0E, {0x40000000u, 4}),
       absl::StatusCode::kInvalidArgument, "exceeds"},
      {"truncated data", truncated_data, absl::StatusCode::kDataLoss, "truncated IDX data"},
      {"trailing bytes", trailing, absl::StatusCode::kDataLoss, "unexpected bytes"},
      {"truncated gzip", valid_gzip.substr(0, valid_gzip.size() / 2),
       absl::StatusCode::kDataLoss, "gzip"},
      {"damaged gzip", corrupt_gzip, absl::StatusCode::kDataLoss, "gzip"},
  };
  for (const HostileCase& test : cases) {
    absl::StatusOr<at::Tensor> result = ParseIdx(test.bytes, "hostile.idx");
    ASSERT_FALSE(result.ok()) << test.description;
    EXPECT_EQ(result.status().code(), test.code) << test.description << ": " << result.status();
    EXPECT_NE(result.status().message().find(test.message_part), absl::string_view::npos)
        << test.description << ": " << result.status();
    EXPECT_NE(result.status().message().find("hostile.idx"), absl::string_view::npos)
        << test.description << ": " << result.status();
  }
}

TEST(ReadIdxFile, NamesFileInErrors) {
  absl::StatusOr<at::Tensor> missing = ReadIdxFile("/nonexistent/train-images-idx3-ubyte");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  const std::string fake_gzip = WriteTemp("fake-labels-idx1-ubyte.gz", Header(0x08, {1}) + "x");
  absl::StatusOr<at::Tensor> not_gzip = ReadIdxFile(fake_gzip);
  EXPECT_EQ(not_gzip.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(not_gzip.status().message().find("not gzip"), absl::string_view::npos)
      << not_gzip.status();
}

}  // namespace
}  // namespace polaris
