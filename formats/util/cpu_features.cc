#include "formats/util/cpu_features.h"

namespace qatk {
namespace {

CpuFeatures Probe() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  // Needed when this runs before libgcc's own constructor (a static
  // initializer of another object file).
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
  return f;
}

}  // namespace

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Probe();
  return features;
}

bool CpuHasAvx2() {
  const CpuFeatures& f = GetCpuFeatures();
  return f.avx2 && f.fma && f.f16c;
}

bool CpuHasAvx512() {
  const CpuFeatures& f = GetCpuFeatures();
  return CpuHasAvx2() && f.avx512f && f.avx512bw && f.avx512vl;
}

bool CpuHasAvx512Vnni() { return CpuHasAvx512() && GetCpuFeatures().avx512vnni; }

}  // namespace qatk
