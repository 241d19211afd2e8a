// A tiny random llama model as a qatkit mobile file for the C API tests and
// the example program: int4 layer weights with static int8 activation
// scales, int8 embeddings, an int2 output head, static KV scales; a
// vocabulary of "<unk>", "<s>", "</s>", "▁a".."▁z" and "a".."z".
#ifndef QATK_TESTS_INFERENCE_TINY_MOBILE_H_
#define QATK_TESTS_INFERENCE_TINY_MOBILE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace qatk::inference::testing {

absl::Status WriteTinyMobileModel(const std::string& path, uint32_t seed = 7);

}  // namespace qatk::inference::testing

#endif  // QATK_TESTS_INFERENCE_TINY_MOBILE_H_
