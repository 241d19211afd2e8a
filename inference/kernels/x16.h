// The x16 layouts: weights the runtime rearranges at load time for its SIMD
// kernels, 16 rows interleaved, so that one vector instruction works on
// several rows at once. The values are the file's, bit for bit; only the
// order of the bytes changes, and the x16 matrix takes the file's byte count.
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
//
// kInt8x16 / kInt4x16 / kInt2x16 (from kInt8/4/2Channel with a static
// activation scale): P = CodesPerByte (1, 2, 4) codes of B = 8 / P bits per
// byte. Rows in groups of 16 (the last group padded with zero bytes). A
// chunk is 4P columns; with nc = ceil(cols / 4P) chunks, group G (rows
// 16G .. 16G+15) starts at G * IntX16GroupBytes = G * 64 nc and chunk c at
// 64 c holds 4 bytes per row: bits fB .. fB+B-1 of byte 4i + j hold row
// 16G+i's code of column 4Pc + 4f + j plus 2^(B-1) (offset binary, so
// unsigned; columns >= cols hold code 0). So one 64-byte load gives 16
// rows x 4 consecutive columns per field f, and field f of all 16 lanes
// meets the one activation word at column 4Pc + 4f (natural order). Row
// scales stay per row (row_scales); row_bytes stays the file's.
#ifndef QATK_INFERENCE_KERNELS_X16_H_
#define QATK_INFERENCE_KERNELS_X16_H_

#include <cstddef>
#include <cstdint>

#include "inference/kernels/int.h"
#include "inference/model.h"
#include "inference/weights.h"

namespace qatk::inference {

constexpr int kX16Rows = 16;  // rows per group of every x16 layout

// Bytes of one kQ4_0x16 group of `cols` columns (cols % 32 == 0).
inline size_t Q4x16GroupBytes(int64_t cols) {
  const size_t raw = static_cast<size_t>(cols / 32) * (256 + 32);
  return (raw + 63) / 64 * 64;
}
inline size_t Q4x16Bytes(int64_t rows, int64_t cols) {
  return static_cast<size_t>((rows + kX16Rows - 1) / kX16Rows) * Q4x16GroupBytes(cols);
}

// Packs Q4_0 `w` into dst (Q4x16Bytes(w.rows, w.cols) bytes, 64-byte
// aligned for the fastest loads); returns the kQ4_0x16 view of dst.
QMatrix PackQ4_0x16(const QMatrix& w, uint8_t* dst);

// Bytes of one int x16 group of `cols` columns, of the whole matrix.
inline size_t IntX16GroupBytes(WType t, int64_t cols) {
  const int64_t chunk = 4 * CodesPerByte(t);
  return static_cast<size_t>((cols + chunk - 1) / chunk) * 64;
}
inline size_t IntX16Bytes(WType t, int64_t rows, int64_t cols) {
  return static_cast<size_t>((rows + kX16Rows - 1) / kX16Rows) * IntX16GroupBytes(t, cols);
}
// The x16 type of an int channel type (kCount for other types).
WType IntX16Type(WType channel);
// Code of row r, column k of an x16 matrix (two's complement).
inline int IntX16CodeAt(const QMatrix& w, int64_t r, int64_t k) {
  const int p = CodesPerByte(w.type), bits = 8 / p;
  const int64_t c = k / (4 * p), f = k % (4 * p) / 4, j = k % 4;
  const uint8_t byte = static_cast<const uint8_t*>(w.data)[(r / kX16Rows) *
                           IntX16GroupBytes(w.type, w.cols) + 64 * c + 4 * (r % kX16Rows) + j];
  return ((byte >> (f * bits)) & ((1 << bits) - 1)) - (1 << (bits - 1));
}

// Packs int channel matrix `w` (act_scale > 0) into dst (IntX16Bytes bytes,
// 64-byte aligned); returns the x16 view of dst.
QMatrix PackIntX16(const QMatrix& w, uint8_t* dst);

// Replaces the model's Q4_0 layer and output matrices by kQ4_0x16 copies
// when this CPU has a SIMD kernel for kQ4_0x16 (the scalar one alone would
// be slower than the file layout), likewise the mobile int channel matrices
// with a static activation scale by their x16 layout; it copies the other
// int channel matrices unchanged, for the huge pages alone; the
// token embedding keeps the file layout (rows are read one at a time). The
// copies live in model->repacked (2 MiB-aligned, huge pages requested); the
// file pages of the replaced tensors are released (row scales stay in the
// file mapping).
void RepackForKernels(Model* model);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_KERNELS_X16_H_
