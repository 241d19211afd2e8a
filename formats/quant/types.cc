#include "formats/quant/types.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "formats/util/status_macros.h"

namespace qatk {
namespace {

constexpr TypeTraits kTraits[] = {
    {GgmlType::kF32, "f32", 1, 4, false},
    {GgmlType::kF16, "f16", 1, 2, false},
    {GgmlType::kQ4_0, "q4_0", kQK4_0, sizeof(BlockQ4_0), true},
    {GgmlType::kQ8_0, "q8_0", kQK8_0, sizeof(BlockQ8_0), true},
    {GgmlType::kQ4_K, "q4_K", kQK_K, sizeof(BlockQ4_K), true},
    {GgmlType::kQ6_K, "q6_K", kQK_K, sizeof(BlockQ6_K), true},
    {GgmlType::kBF16, "bf16", 1, 2, false},
    {GgmlType::kQ2_0, "q2_0", kQK2_0, sizeof(BlockQ2_0), true},
};

}  // namespace

const TypeTraits* FindTypeTraits(uint32_t id) {
  for (const TypeTraits& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

const TypeTraits& Traits(GgmlType type) {
  const TypeTraits* t = FindTypeTraits(static_cast<uint32_t>(type));
  QATK_CHECK(t != nullptr, "unknown GgmlType");
  return *t;
}

absl::StatusOr<GgmlType> TypeFromName(absl::string_view name) {
  std::string known;
  for (const TypeTraits& t : kTraits) {
    if (name == t.name) return t.type;
    absl::StrAppend(&known, known.empty() ? "" : ", ", t.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown tensor type '", name, "' (known: ", known, ")"));
}

uint64_t RowBytes(GgmlType type, int64_t n) {
  const TypeTraits& t = Traits(type);
  QATK_CHECK(n >= 0 && n % t.block_size == 0, "row length not a multiple of the block size");
  return static_cast<uint64_t>(n / t.block_size) * static_cast<uint64_t>(t.type_size);
}

}  // namespace qatk
