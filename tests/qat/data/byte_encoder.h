// A TextEncoder for tests: one id per byte, BOS 257 with specials, EOS 256.
#ifndef QATK_TESTS_QAT_DATA_BYTE_ENCODER_H_
#define QATK_TESTS_QAT_DATA_BYTE_ENCODER_H_

#include <string>
#include <vector>

#include "qat/data/text_encoder.h"

namespace qatk::data {

class ByteEncoder : public TextEncoder {
 public:
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(kBos);
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  int32_t eos_id() const override { return kEos; }
  uint64_t fingerprint() const override { return 0x1234; }
  const std::string& source() const override { return source_; }

  static constexpr int32_t kEos = 256, kBos = 257;

 private:
  std::string source_ = "bytes";
};

}  // namespace qatk::data

#endif  // QATK_TESTS_QAT_DATA_BYTE_ENCODER_H_
