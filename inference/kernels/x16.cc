#include "inference/kernels/x16.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "formats/quant/types.h"
#include "formats/util/status_macros.h"
#include "inference/kernels/matmul.h"

namespace qatk::inference {
namespace {

// Releases the whole pages of [p, p + n) of a read-only file mapping (they
// are re-read from the file if ever touched again).
void ReleaseFilePages(const void* p, size_t n) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

}  // namespace

QMatrix PackQ4_0x16(const QMatrix& w, uint8_t* dst) {
  QATK_CHECK(w.type == WType::kQ4_0 && w.cols % 32 == 0, "PackQ4_0x16 takes a Q4_0 matrix");
  const int64_t nb = w.cols / 32;
  const size_t gb = Q4x16GroupBytes(w.cols);
  const int64_t groups = (w.rows + kX16Rows - 1) / kX16Rows;
  for (int64_t g = 0; g < groups; ++g) {
    uint8_t* qs = dst + g * gb;
    uint8_t* d = qs + nb * 256;
    // Zero what no row writes: the padding, and all of a partial last group.
    const bool partial = (g + 1) * kX16Rows > w.rows;
    const size_t written = partial ? 0 : static_cast<size_t>(nb) * 288;
    std::memset(qs + written, 0, gb - written);
    for (int i = 0; i < kX16Rows && g * kX16Rows + i < w.rows; ++i) {
      const BlockQ4_0* row = reinterpret_cast<const BlockQ4_0*>(w.Row(g * kX16Rows + i));
      for (int64_t b = 0; b < nb; ++b) {
        for (int c = 0; c < 4; ++c) {
          std::memcpy(qs + 256 * b + 64 * c + 4 * i, row[b].qs + 4 * c, 4);
        }
        std::memcpy(d + 32 * b + 2 * i, &row[b].d, 2);
      }
    }
  }
  QMatrix p = w;
  p.type = WType::kQ4_0x16;
  p.data = dst;
  return p;
}

WType IntX16Type(WType channel) {
  switch (channel) {
    case WType::kInt8Channel: return WType::kInt8x16;
    case WType::kInt4Channel: return WType::kInt4x16;
    case WType::kInt2Channel: return WType::kInt2x16;
    default: return WType::kCount;
  }
}

namespace {

// Row `row` (cols codes, file layout) into its lane of every chunk: lane
// byte j of chunk c gets the fields 4Pc + 4f + j. u: nc * 4P scratch bytes.
template <int P>
void PackRowX16(const uint8_t* row, int64_t cols, size_t nc, uint8_t* lane, uint8_t* u) {
  constexpr int kBits = 8 / P;
  constexpr uint8_t kMask = (1 << kBits) - 1;
  // code + 2^(B-1) of a B-bit two's complement field = the field with its
  // top bit flipped: one xor for all the fields of a byte.
  constexpr uint8_t kFlip = P == 1 ? 0x80 : P == 2 ? 0x88 : 0xAA;
  for (int64_t b = 0; b < (cols + P - 1) / P; ++b) {
    const uint8_t v = row[b] ^ kFlip;
    for (int e = 0; e < P; ++e) u[P * b + e] = (v >> (e * kBits)) & kMask;
  }
  for (size_t k = cols; k < nc * 4 * P; ++k) u[k] = 1 << (kBits - 1);  // code 0
  for (size_t c = 0; c < nc; ++c) {
    for (int j = 0; j < 4; ++j) {
      uint8_t byte = 0;
      for (int f = 0; f < P; ++f) byte |= u[4 * P * c + 4 * f + j] << (f * kBits);
      lane[64 * c + j] = byte;
    }
  }
}

}  // namespace

QMatrix PackIntX16(const QMatrix& w, uint8_t* dst) {
  const WType xt = IntX16Type(w.type);
  QATK_CHECK(xt != WType::kCount && w.act_scale > 0.0f, "PackIntX16 takes an int channel matrix "
             "with a static activation scale");
  const size_t gb = IntX16GroupBytes(xt, w.cols), nc = gb / 64;
  std::memset(dst, 0, IntX16Bytes(xt, w.rows, w.cols));  // the rows of a partial last group
  std::vector<uint8_t> u(gb / 16 * CodesPerByte(xt));
  auto pack = CodesPerByte(xt) == 1 ? PackRowX16<1> : CodesPerByte(xt) == 2 ? PackRowX16<2>
                                                                            : PackRowX16<4>;
  for (int64_t r = 0; r < w.rows; ++r) {
    pack(w.Row(r), w.cols, nc, dst + (r / kX16Rows) * gb + 4 * (r % kX16Rows), u.data());
  }
  QMatrix x = w;
  x.type = xt;
  x.data = dst;
  return x;
}

namespace {

bool IsIntChannel(WType t) { return IntX16Type(t) != WType::kCount; }

// True when MatMul would run `t` with a SIMD kernel.
bool HasSimdKernel(WType t) {
  const MatMulKernel* k = BestMatMulKernel(t);
  return k != nullptr && std::string(k->target) != "scalar";
}

// The layout m gets: kQ4_0x16, an int x16 type, or its own (copied).
WType RepackedType(const QMatrix& m, bool pack_q4) {
  if (m.type == WType::kQ4_0) return pack_q4 && m.cols % 32 == 0 ? WType::kQ4_0x16 : m.type;
  if (IsIntChannel(m.type) && m.act_scale > 0.0f && HasSimdKernel(IntX16Type(m.type))) {
    return IntX16Type(m.type);
  }
  return m.type;
}

// Bytes m takes in the repacked buffer (64-byte multiple).
size_t RepackedBytes(const QMatrix& m, WType to) {
  if (to == WType::kQ4_0x16) return Q4x16Bytes(m.rows, m.cols);
  if (to != m.type) return IntX16Bytes(to, m.rows, m.cols);
  return (static_cast<size_t>(m.rows) * m.row_bytes + 63) / 64 * 64;
}

}  // namespace

void RepackForKernels(Model* model) {
  const bool pack_q4 = HasSimdKernel(WType::kQ4_0x16);
  std::vector<QMatrix*> todo;
  auto want = [&](QMatrix* m) {
    if (RepackedType(*m, pack_q4) != m->type || IsIntChannel(m->type)) todo.push_back(m);
  };
  want(&model->output);
  for (LayerWeights& l : model->layers) {
    for (QMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) want(m);
  }
  if (todo.empty()) return;
  size_t total = 0;
  for (const QMatrix* m : todo) total += RepackedBytes(*m, RepackedType(*m, pack_q4));
  // 2 MiB pages where the kernel allows them (THP "madvise" mode): decode
  // streams every weight once per token, and 4 KiB pages cost it ~10%.
  const size_t huge = size_t{2} << 20;
  const size_t bytes = (total + huge - 1) / huge * huge;
  uint8_t* buf = static_cast<uint8_t*>(std::aligned_alloc(huge, bytes));
  QATK_CHECK(buf != nullptr, "out of memory repacking the weights");
  madvise(buf, bytes, MADV_HUGEPAGE);  // advice only: failure is harmless
  model->repacked = std::shared_ptr<void>(buf, std::free);
  size_t off = 0;
  for (QMatrix* m : todo) {
    const WType to = RepackedType(*m, pack_q4);
    QMatrix x16 = *m;  // int channel types without an x16 kernel: the file layout, copied
    if (to == WType::kQ4_0x16) {
      x16 = PackQ4_0x16(*m, buf + off);
    } else if (to != m->type) {
      x16 = PackIntX16(*m, buf + off);
    } else {
      std::memcpy(buf + off, m->data, static_cast<size_t>(m->rows) * m->row_bytes);
      x16.data = buf + off;
    }
    off += RepackedBytes(*m, to);
    if (m->data != model->tok_embd.data) ReleaseFilePages(m->data, m->rows * m->row_bytes);
    *m = x16;
  }
}

}  // namespace qatk::inference
