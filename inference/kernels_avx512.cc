// AVX-512 (F + BW + VL + VNNI) kernels, chosen at run time when present.
// Not written yet: AVX2 kernels serve AVX-512 CPUs meanwhile. Q4_0/Q8_0
// with vpdpbusd are the next step (issue #7).
#include "inference/kernels_internal.h"

namespace qatk::inference::internal {

void RegisterAvx512Kernels() {}

}  // namespace qatk::inference::internal
