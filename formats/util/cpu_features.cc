#include "formats/util/cpu_features.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

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
#elif defined(__aarch64__)
  f.neon = true;
#if defined(__linux__)
  // The kernel's bits (asm/hwcap.h), spelled out for older libc headers.
  constexpr unsigned long kHwcapAsimdDp = 1ul << 20;  // HWCAP_ASIMDDP
  constexpr unsigned long kHwcap2I8mm = 1ul << 13;    // HWCAP2_I8MM
  f.dotprod = (getauxval(AT_HWCAP) & kHwcapAsimdDp) != 0;
  f.i8mm = (getauxval(AT_HWCAP2) & kHwcap2I8mm) != 0;
#endif
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

bool CpuHasArmNeon() { return GetCpuFeatures().neon; }
bool CpuHasArmDotprod() { return CpuHasArmNeon() && GetCpuFeatures().dotprod; }
bool CpuHasArmI8mm() { return CpuHasArmDotprod() && GetCpuFeatures().i8mm; }

}  // namespace qatk
