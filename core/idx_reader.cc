#include "core/idx_reader.h"

#include <zlib.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ATen/Functions.h"
#include "absl/strings/str_cat.h"
#include "core/file_util.h"
#include "core/status_macros.h"
#include "core/torch_status.h"

namespace polaris {
namespace {

constexpr int kMaxRank = 8;

struct IdxType {
  at::ScalarType scalar_type;
  int element_bytes;
};

bool LookUpIdxType(uint8_t code, IdxType* type) {
  switch (code) {
    case 0x08: *type = {at::kByte, 1}; return true;
    case 0x09: *type = {at::kChar, 1}; return true;
    case 0x0B: *type = {at::kShort, 2}; return true;
    case 0x0C: *type = {at::kInt, 4}; return true;
    case 0x0D: *type = {at::kFloat, 4}; return true;
    case 0x0E: *type = {at::kDouble, 8}; return true;
    default: return false;
  }
}

bool IsGzip(absl::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
         static_cast<uint8_t>(bytes[1]) == 0x8b;
}

// Inflates a gzip stream. The IDX header is checked before the payload is inflated, so a header
// that promises more data than kMaxIdxPayloadBytes never makes this allocate it: inflation
// stops once `max_output` bytes exist and the caller reports the excess.
absl::StatusOr<std::string> Gunzip(absl::string_view compressed, absl::string_view name,
                                   size_t max_output) {
  z_stream stream;
  std::memset(&stream, 0, sizeof(stream));
  // 16 + MAX_WBITS selects the gzip wrapper.
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat("cannot start zlib for ", name));
  }
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());

  std::string output;
  int result = Z_OK;
  while (result != Z_STREAM_END) {
    if (output.size() >= max_output) break;
    const size_t chunk = std::min<size_t>(size_t{1} << 20, max_output - output.size());
    const size_t old_size = output.size();
    output.resize(old_size + chunk);
    stream.next_out = reinterpret_cast<Bytef*>(output.data() + old_size);
    stream.avail_out = static_cast<uInt>(chunk);
    result = inflate(&stream, Z_NO_FLUSH);
    output.resize(old_size + chunk - stream.avail_out);
    if (result == Z_STREAM_END) break;
    if (result == Z_BUF_ERROR && stream.avail_in == 0) {
      const size_t offset = stream.total_in;
      inflateEnd(&stream);
      return absl::DataLossError(absl::StrCat(name, ": gzip stream is truncated at compressed byte ",
                                              offset, "; download or copy the file again"));
    }
    if (result != Z_OK && result != Z_BUF_ERROR) {
      const size_t offset = stream.total_in;
      const char* reason = stream.msg != nullptr ? stream.msg : "unknown zlib error";
      inflateEnd(&stream);
      return absl::DataLossError(absl::StrCat(name, ": damaged gzip data near compressed byte ",
                                              offset, " (", reason, ")"));
    }
  }
  inflateEnd(&stream);
  return output;
}

uint32_t ReadBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

struct IdxHeader {
  IdxType type;
  std::vector<int64_t> dims;
  int64_t header_bytes = 0;
  int64_t payload_bytes = 0;
};

// Validates the magic number and dimensions found at the start of `bytes`.
absl::StatusOr<IdxHeader> ParseHeader(absl::string_view bytes, absl::string_view name) {
  if (bytes.empty()) {
    return absl::DataLossError(absl::StrCat(name, ": file is empty; expected an IDX file"));
  }
  if (bytes.size() < 4) {
    return absl::DataLossError(absl::StrCat(name, ": truncated IDX header: ", bytes.size(),
                                            " bytes, the magic number alone needs 4"));
  }
  if (bytes[0] != 0 || bytes[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": not an IDX file: the magic number must start with two zero bytes (offset 0)"));
  }

  IdxHeader header;
  const uint8_t type_code = static_cast<uint8_t>(bytes[2]);
  if (!LookUpIdxType(type_code, &header.type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": unknown IDX type code 0x", absl::Hex(type_code),
        " at offset 2; expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E"));
  }
  const int rank = static_cast<uint8_t>(bytes[3]);
  if (rank == 0 || rank > kMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": IDX rank ", rank,
                                                   " at offset 3 is not in [1, ", kMaxRank, "]"));
  }
  header.header_bytes = 4 + 4 * int64_t{rank};
  if (static_cast<int64_t>(bytes.size()) < header.header_bytes) {
    return absl::DataLossError(absl::StrCat(name, ": truncated IDX header: ", bytes.size(),
                                            " bytes, ", rank, " dimensions need ",
                                            header.header_bytes));
  }

  int64_t elements = 1;
  for (int d = 0; d < rank; ++d) {
    const int64_t dim = ReadBigEndian32(bytes.data() + 4 + 4 * d);
    header.dims.push_back(dim);
    if (dim != 0 && elements > kMaxIdxPayloadBytes / dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": IDX dimensions overflow: dimension ", d, " (", dim, ", offset ", 4 + 4 * d,
          ") makes the payload larger than ", kMaxIdxPayloadBytes, " bytes"));
    }
    elements *= dim;
  }
  if (elements > kMaxIdxPayloadBytes / header.type.element_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": IDX payload of ", elements,
                                                   " elements exceeds ", kMaxIdxPayloadBytes,
                                                   " bytes"));
  }
  header.payload_bytes = elements * header.type.element_bytes;
  return header;
}

absl::StatusOr<at::Tensor> ToTensor(const IdxHeader& header, absl::string_view bytes,
                                     absl::string_view name) {
  const int64_t expected = header.header_bytes + header.payload_bytes;
  const int64_t actual = static_cast<int64_t>(bytes.size());
  if (actual < expected) {
    return absl::DataLossError(absl::StrCat(name, ": truncated IDX data: the header promises ",
                                            header.payload_bytes, " bytes of values from offset ",
                                            header.header_bytes, ", but the file ends at ",
                                            actual));
  }
  if (actual > expected) {
    return absl::DataLossError(absl::StrCat(name, ": ", actual - expected,
                                            " unexpected bytes after the IDX data at offset ",
                                            expected));
  }

  return CallTorch(absl::StrCat("reading ", name), [&] {
    at::Tensor tensor = at::empty(header.dims, at::TensorOptions().dtype(header.type.scalar_type));
    auto* out = static_cast<char*>(tensor.data_ptr());
    const char* in = bytes.data() + header.header_bytes;
    const int width = header.type.element_bytes;
    if (width == 1) {
      std::memcpy(out, in, header.payload_bytes);
    } else {
      // IDX stores values big-endian; x86-64 is little-endian.
      for (int64_t i = 0; i < header.payload_bytes; i += width) {
        for (int b = 0; b < width; ++b) out[i + b] = in[i + width - 1 - b];
      }
    }
    return tensor;
  });
}

}  // namespace

absl::StatusOr<at::Tensor> ParseIdx(absl::string_view bytes, absl::string_view name) {
  if (!IsGzip(bytes)) {
    POLARIS_ASSIGN_OR_RETURN(IdxHeader header, ParseHeader(bytes, name));
    return ToTensor(header, bytes, name);
  }

  // Inflate the header first so that its size claims are checked before the payload is.
  constexpr size_t kLargestHeader = 4 + 4 * kMaxRank;
  POLARIS_ASSIGN_OR_RETURN(std::string head, Gunzip(bytes, name, kLargestHeader));
  POLARIS_ASSIGN_OR_RETURN(IdxHeader header, ParseHeader(head, name));
  // One byte more than expected reveals trailing data.
  const size_t limit = static_cast<size_t>(header.header_bytes + header.payload_bytes + 1);
  POLARIS_ASSIGN_OR_RETURN(std::string inflated, Gunzip(bytes, name, limit));
  return ToTensor(header, inflated, name);
}

absl::StatusOr<at::Tensor> ReadIdxFile(const std::string& path) {
  POLARIS_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  if (absl::string_view(path).substr(path.size() >= 3 ? path.size() - 3 : 0) == ".gz" &&
      !IsGzip(bytes)) {
    return absl::DataLossError(absl::StrCat(
        path, ": the name ends in .gz but the file is not gzip-compressed (no 1f 8b magic)"));
  }
  return ParseIdx(bytes, path);
}

}  // namespace polaris
