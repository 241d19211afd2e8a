// Hugging Face weight folders: reading and writing the weights of a model
// folder as the hub and transformers' save_pretrained lay them out.
//
// A folder holds either one `model.safetensors`, or shards
// `model-0000k-of-0000n.safetensors` listed by `model.safetensors.index.json`:
//   {"metadata": {"total_size": BYTES, ...}, "weight_map": {TENSOR: SHARD, ...}}
// When both are present `model.safetensors` wins, as in transformers.
//
// Reading (HfWeights): every shard is memory-mapped at Open and its header
// checked; tensor data are read only by ReadFloat / ReadInto, which convert
// F32/F16/BF16 to F32 and then drop the tensor's pages from the process
// (madvise DONTNEED on the file mapping; they stay in the page cache). A
// caller that streams tensor by tensor therefore holds at most one tensor's
// pages plus its own F32 copy of it: peak RSS is about the largest tensor in
// F32 plus its source bytes, not the checkpoint size.
//
// The folder and the index must agree exactly: every tensor of the index in
// its shard and nowhere else, every tensor of a shard in the index. Errors
// name the file and the tensor: kNotFound (no weights, a missing shard),
// kDataLoss (a shard lacking a tensor the index maps to it),
// kInvalidArgument (a malformed index, a shard name that is not a plain file
// name, a tensor in two shards or in a shard but not the index, a shape or
// dtype that contradicts config.json).
//
// Writing (WriteHfShards): transformers' layout and names. Tensors go to
// shards in the given order; a shard is closed when the next tensor would
// push it past max_shard_bytes (a tensor larger than that gets a shard of
// its own); one shard is written as `model.safetensors` without an index.
// Tensor bytes are streamed from a callback, so a writer holds one tensor.
#ifndef QATK_FORMATS_SAFETENSORS_HF_WEIGHTS_H_
#define QATK_FORMATS_SAFETENSORS_HF_WEIGHTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "formats/model_config.h"
#include "formats/safetensors/safetensors.h"

namespace qatk::safetensors {

inline constexpr char kHfSingleFile[] = "model.safetensors";
inline constexpr char kHfIndexFile[] = "model.safetensors.index.json";

// model.safetensors.index.json.
struct HfIndex {
  std::optional<uint64_t> total_size;  // metadata.total_size (not checked against the shards)
  std::vector<std::pair<std::string, std::string>> weight_map;  // tensor -> shard, file order
  std::vector<std::string> shards;  // distinct shard file names, sorted
};
// `path` names the file in errors. Shard names must be plain file names
// (no '/', not "." or "..").
absl::StatusOr<HfIndex> ParseHfIndex(absl::string_view json, const std::string& path);

// "model-00002-of-00003.safetensors" (k counts from 1).
std::string HfShardName(int k, int n);

class HfWeights {
 public:
  // A model folder (model.safetensors, or the index and its shards).
  static absl::StatusOr<HfWeights> Open(const std::string& dir);
  // One safetensors file.
  static absl::StatusOr<HfWeights> OpenFile(const std::string& path);
  // Shards already parsed, in index.shards order (in-memory images: tests and
  // fuzzing; their pages are never released). `index_path` and
  // `dir` name the files in errors.
  static absl::StatusOr<HfWeights> FromShards(const HfIndex& index, const std::string& index_path,
                                              const std::string& dir,
                                              std::vector<SafetensorsFile> shards);

  // Shard by shard (index.shards order), each in its file order: reading in
  // this order maps through one shard at a time.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(const std::string& name) const;
  // The index for a sharded folder, else the single file.
  const std::string& path() const { return path_; }
  // The shard file holding `name` (path() when unknown).
  const std::string& PathOf(const std::string& name) const;
  int num_shards() const { return static_cast<int>(shard_paths_.size()); }
  bool sharded() const { return sharded_; }

  // The tensor as float32 (F32/F16/BF16 sources); kNotFound naming the file
  // and the tensor, kInvalidArgument for a non-float dtype or (ReadInto) a
  // buffer whose size is not the tensor's element count.
  absl::StatusOr<std::vector<float>> ReadFloat(const std::string& name) const;
  absl::Status ReadInto(const std::string& name, absl::Span<float> out) const;

  // Checks the weights against config.json through the architecture table
  // (ForEachTensor): every expected tensor present with its exact shape and a
  // float dtype. The output head: an untied model must have lm_head.weight
  // (transformers would initialise a missing one randomly); a tied model may
  // carry one only when it equals the embedding bit for bit (some exporters
  // save both), otherwise the file contradicts tie_word_embeddings. Extra
  // tensors are left to the caller (quantizer state, rotary buffers).
  absl::Status CheckConfig(const ModelConfig& config) const;

  // Forgets a tensor (a redundant tied head once CheckConfig accepted it);
  // no-op when absent.
  void Drop(const std::string& name);

 private:
  void ReleasePages(const TensorView& t) const;

  std::string path_;
  bool sharded_ = false;
  bool release_pages_ = false;
  std::vector<SafetensorsFile> shards_;
  std::vector<std::string> shard_paths_;
  std::vector<TensorView> tensors_;
  std::vector<int> shard_of_;  // per tensors_ entry
  std::map<std::string, size_t> index_;
};

// One tensor to write.
struct HfTensorSpec {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

// "2GB" = 2e9, "1.5GB", "500MB", "10KB", "3GiB" = 3 * 2^30, "123" bytes
// (transformers' units); kInvalidArgument naming `flag` otherwise.
absl::StatusOr<uint64_t> ParseShardSize(absl::string_view text, absl::string_view flag);

// Assigns each tensor a shard (0-based) as described above.
std::vector<int> PlanHfShards(absl::Span<const HfTensorSpec> tensors, uint64_t max_shard_bytes);

// Receives a tensor's bytes, in order, in one or more pieces.
using ByteSink = absl::FunctionRef<absl::Status(const void* data, size_t n)>;

// Writes the weights of a model folder into `dir` (which must exist):
// the shards and, for more than one, the index (keys sorted, 2-space indent,
// as transformers writes it). produce(i, sink) emits tensor i's bytes; a
// count other than nbytes() is kInternal. Returns the file names written.
absl::StatusOr<std::vector<std::string>> WriteHfShards(
    const std::string& dir, absl::Span<const HfTensorSpec> tensors, uint64_t max_shard_bytes,
    absl::FunctionRef<absl::Status(size_t i, ByteSink sink)> produce);

}  // namespace qatk::safetensors

#endif  // QATK_FORMATS_SAFETENSORS_HF_WEIGHTS_H_
