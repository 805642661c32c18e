// Reader for IDX files, the format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//
// An IDX file is a 4-byte magic number (two zero bytes, a type code and the number of
// dimensions), one big-endian uint32 per dimension, then the values in row-major order,
// big-endian. The reader checks every field against the file's real length before it allocates,
// so a damaged or hostile file yields an error that names the file and the byte offset.
//
//   POLARIS_ASSIGN_OR_RETURN(at::Tensor images, ReadIdxFile(".../t10k-images-idx3-ubyte.gz"));
//   // images: uint8, shape [10000, 28, 28]
#ifndef POLARIS_CORE_IDX_READER_H_
#define POLARIS_CORE_IDX_READER_H_

#include <cstdint>
#include <string>

#include "ATen/core/Tensor.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace polaris {

// Upper bound on the decompressed payload; a larger header is treated as corrupt rather than
// allocated. Fashion-MNIST's largest file holds 47 MB.
inline constexpr int64_t kMaxIdxPayloadBytes = int64_t{4} << 30;

// Reads the IDX file at `path`, gunzipping it when it starts with the gzip magic bytes.
// Returns a CPU tensor of the file's type (uint8, int8, int16, int32, float32 or float64) and
// shape. Errors, each naming the file:
//   kNotFound         the file does not exist.
//   kDataLoss         the file is empty, truncated, has trailing bytes, or its gzip stream is
//                     damaged; the message gives the byte offset.
//   kInvalidArgument  the magic number is wrong, the type code unknown, the rank is 0 or above
//                     8, or the dimensions' product overflows or exceeds kMaxIdxPayloadBytes.
absl::StatusOr<at::Tensor> ReadIdxFile(const std::string& path);

// The same for IDX bytes already in memory; `name` is used in error messages.
absl::StatusOr<at::Tensor> ParseIdx(absl::string_view bytes, absl::string_view name);

}  // namespace polaris

#endif  // POLARIS_CORE_IDX_READER_H_
