// Weight layouts the runtime makes at load time for its SIMD kernels: the
// file's blocks rearranged so that one vector instruction works on several
// rows at once. The values are the file's, bit for bit; only the order of
// the bytes changes, and the packed matrix takes the file's byte count.
//
// kQ4_0x16 (from Q4_0): rows in groups of 16 (the last group padded with
// zero rows of scale 0). With nb = cols / 32 blocks per row, group G
// (rows 16G .. 16G+15) starts at G * GroupBytes(cols) and holds
//   1. qs: nb x 256 bytes; block b at 256 b is 4 chunks of 64 bytes, and
//      bytes 4i .. 4i+3 of chunk c are bytes 4c .. 4c+3 of row 16G+i's
//      Q4_0 block b (low nibbles: elements 4c .. 4c+3 of the block, high
//      nibbles: elements 16+4c .. 16+4c+3; code = nibble - 8 as in Q4_0);
//   2. d: nb x 16 fp16 at nb * 256; d[16 b + i] is row 16G+i's block scale;
//   3. zero padding to a multiple of 64 bytes.
// So one 64-byte load gives 16 rows x 4 elements of 2 element groups, and
// the 16 scales of a block column are one 32-byte load.
#ifndef QATK_INFERENCE_REPACK_H_
#define QATK_INFERENCE_REPACK_H_

#include <cstddef>
#include <cstdint>

#include "inference/model.h"
#include "inference/weights.h"

namespace qatk::inference {

constexpr int kQ4x16Rows = 16;  // rows per group of kQ4_0x16

// Bytes of one kQ4_0x16 group of `cols` columns (cols % 32 == 0).
inline size_t Q4x16GroupBytes(int64_t cols) {
  const size_t raw = static_cast<size_t>(cols / 32) * (256 + 32);
  return (raw + 63) / 64 * 64;
}
inline size_t Q4x16Bytes(int64_t rows, int64_t cols) {
  return static_cast<size_t>((rows + kQ4x16Rows - 1) / kQ4x16Rows) * Q4x16GroupBytes(cols);
}

// Packs Q4_0 `w` into dst (Q4x16Bytes(w.rows, w.cols) bytes, 64-byte
// aligned for the fastest loads); returns the kQ4_0x16 view of dst.
QMatrix PackQ4_0x16(const QMatrix& w, uint8_t* dst);

// Replaces the model's Q4_0 layer and output matrices by kQ4_0x16 copies
// when this CPU has a SIMD kernel for kQ4_0x16 (the scalar one alone would
// be slower than the file layout), and copies the mobile int channel
// matrices (kInt8/4/2Channel) unchanged, for the huge pages alone; the
// token embedding keeps the file layout (rows are read one at a time). The
// copies live in model->repacked (2 MiB-aligned, huge pages requested); the
// file pages of the replaced tensors are released (row scales stay in the
// file mapping).
void RepackForKernels(Model* model);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_REPACK_H_
