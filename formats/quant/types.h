// Tensor element types shared by every file format and the runtime, and the
// one traits table indexed by type. Block layouts (bytes in order):
//
//   F32   1 elem   4 B   float32
//   F16   1 elem   2 B   IEEE binary16
//   BF16  1 elem   2 B   top 16 bits of float32 (round-nearest-even)
//   Q8_0  32 elem  34 B  d:fp16 | qs:int8[32]            x = qs*d
//   Q4_0  32 elem  18 B  d:fp16 | qs:u8[16]              x = (nibble-8)*d
//                        qs[j] low nibble = elem j, high nibble = elem j+16
//   Q2_0  64 elem  18 B  d:fp16 | qs:u8[16]              x = (code-1)*d
//                        elem j in byte j/4 at bits 2*(j%4) (LSB first)
//   Q4_K  256 elem 144 B d:fp16 | dmin:fp16 | scales:u8[12] | qs:u8[128]
//                        8 sub-blocks of 32 with 6-bit scale sc and min m:
//                        x = d*sc*q - dmin*m, q a 4-bit code; sub-blocks
//                        2k, 2k+1 are the low/high nibbles of qs[32k..32k+31]
//   Q6_K  256 elem 210 B ql:u8[128] | qh:u8[64] | scales:i8[16] | d:fp16
//                        16 sub-blocks of 16: x = d*scales[s]*(q-32), q a
//                        6-bit code (layout in formats/quant/kquants.cc)
//
// Ids are ggml's (GGUF tensor type field), so GgmlType values go to disk as is.
#ifndef QATK_FORMATS_QUANT_TYPES_H_
#define QATK_FORMATS_QUANT_TYPES_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace qatk {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ6_K = 14,
  kBF16 = 30,
  kQ2_0 = 42,
};

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block must be 34 bytes");

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block must be 18 bytes");

struct BlockQ2_0 {
  uint16_t d;
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ2_0) == 18, "Q2_0 block must be 18 bytes");

// K-quant super-blocks (ggml's block_q4_K / block_q6_K).
struct BlockQ4_K {
  uint16_t d;          // scale of the 6-bit sub-block scales
  uint16_t dmin;       // scale of the 6-bit sub-block mins
  uint8_t scales[12];  // 8 scales + 8 mins, 6 bits each (see kquants.cc)
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block must be 144 bytes");

struct BlockQ6_K {
  uint8_t ql[128];  // low 4 bits of the codes
  uint8_t qh[64];   // high 2 bits
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block must be 210 bytes");

constexpr int kQK_K = 256;
constexpr int kQK8_0 = 32;
constexpr int kQK4_0 = 32;
constexpr int kQK2_0 = 64;

struct TypeTraits {
  GgmlType type;
  const char* name;    // ggml's name: "f32", "q4_0", ...
  int block_size;      // elements per block
  int type_size;       // bytes per block
  bool is_quantized;
};

// nullptr for ids this project does not know (callers turn that into
// kUnimplemented naming the id).
const TypeTraits* FindTypeTraits(uint32_t id);
// For known types only (aborts otherwise).
const TypeTraits& Traits(GgmlType type);
absl::StatusOr<GgmlType> TypeFromName(absl::string_view name);

// Bytes of a row of n elements; n must be a multiple of the block size
// (checked by callers that parse files; aborts here).
uint64_t RowBytes(GgmlType type, int64_t n);

}  // namespace qatk

#endif  // QATK_FORMATS_QUANT_TYPES_H_
