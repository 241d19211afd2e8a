// The instruction-set extensions of the running CPU (x86 or aarch64), probed
// once, for every part of the project that picks a SIMD path at run time (the
// runtime's kernels, the codecs, the fake-quant ops). AMX is never probed nor
// used.
#ifndef QATK_FORMATS_UTIL_CPU_FEATURES_H_
#define QATK_FORMATS_UTIL_CPU_FEATURES_H_

namespace qatk {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  // aarch64 (Linux getauxval): NEON is architectural there.
  bool neon = false;
  bool dotprod = false;  // SDOT/UDOT (HWCAP_ASIMDDP)
  bool i8mm = false;     // SMMLA/USMMLA (HWCAP2_I8MM)
};

// This CPU's features (all false on other architectures). Safe to call from
// static initializers.
const CpuFeatures& GetCpuFeatures();

// The feature sets of the runtime's SIMD targets:
bool CpuHasAvx2();        // AVX2 + FMA + F16C
bool CpuHasAvx512();      // AVX-512 F/BW/VL + CpuHasAvx2()
bool CpuHasAvx512Vnni();  // CpuHasAvx512() + AVX-512 VNNI
bool CpuHasArmNeon();     // aarch64 (every aarch64 CPU)
bool CpuHasArmDotprod();  // aarch64 + dotprod
bool CpuHasArmI8mm();     // CpuHasArmDotprod() + i8mm

}  // namespace qatk

#endif  // QATK_FORMATS_UTIL_CPU_FEATURES_H_
