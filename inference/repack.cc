#include "inference/repack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "formats/quant/types.h"
#include "formats/util/status_macros.h"
#include "inference/matmul.h"

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
  const int64_t groups = (w.rows + kQ4x16Rows - 1) / kQ4x16Rows;
  for (int64_t g = 0; g < groups; ++g) {
    uint8_t* qs = dst + g * gb;
    uint8_t* d = qs + nb * 256;
    // Zero what no row writes: the padding, and all of a partial last group.
    const bool partial = (g + 1) * kQ4x16Rows > w.rows;
    const size_t written = partial ? 0 : static_cast<size_t>(nb) * 288;
    std::memset(qs + written, 0, gb - written);
    for (int i = 0; i < kQ4x16Rows && g * kQ4x16Rows + i < w.rows; ++i) {
      const BlockQ4_0* row = reinterpret_cast<const BlockQ4_0*>(w.Row(g * kQ4x16Rows + i));
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

namespace {

bool IsIntChannel(WType t) {
  return t == WType::kInt8Channel || t == WType::kInt4Channel || t == WType::kInt2Channel;
}

// Bytes m takes in the repacked buffer (64-byte multiple).
size_t RepackedBytes(const QMatrix& m) {
  if (m.type == WType::kQ4_0) return Q4x16Bytes(m.rows, m.cols);
  return (static_cast<size_t>(m.rows) * m.row_bytes + 63) / 64 * 64;
}

}  // namespace

void RepackForKernels(Model* model) {
  const MatMulKernel* k = BestMatMulKernel(WType::kQ4_0x16);
  const bool pack_q4 = k != nullptr && std::string(k->target) != "scalar";
  std::vector<QMatrix*> todo;
  auto want = [&](QMatrix* m) {
    if ((pack_q4 && m->type == WType::kQ4_0 && m->cols % 32 == 0) || IsIntChannel(m->type)) {
      todo.push_back(m);
    }
  };
  want(&model->output);
  for (LayerWeights& l : model->layers) {
    for (QMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) want(m);
  }
  if (todo.empty()) return;
  size_t total = 0;
  for (const QMatrix* m : todo) total += RepackedBytes(*m);
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
    QMatrix packed = *m;  // int channel types: the file layout, copied
    if (m->type == WType::kQ4_0) {
      packed = PackQ4_0x16(*m, buf + off);
    } else {
      std::memcpy(buf + off, m->data, static_cast<size_t>(m->rows) * m->row_bytes);
      packed.data = buf + off;
    }
    off += RepackedBytes(*m);
    if (m->data != model->tok_embd.data) ReleaseFilePages(m->data, m->rows * m->row_bytes);
    *m = packed;
  }
}

}  // namespace qatk::inference
