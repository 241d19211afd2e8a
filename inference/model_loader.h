// Model loading: GGUF and mobile files -> inference::Model (model.h).
//
// Both loaders walk the architecture table (formats/model_arch.h) and put
// each tensor into the Model field of its TensorSlot (BindMatrix /
// BindVector below), so the runtime loads exactly the tensors the exporters
// write. GGUF files are read by llama.cpp names and keys (this file's .cc),
// mobile files by Hugging Face names (mobile_model.h). After loading, the
// weights are rearranged for the CPU kernels unless LoadOptions::repack is
// false (kernels/x16.h).
#ifndef QATK_INFERENCE_MODEL_LOADER_H_
#define QATK_INFERENCE_MODEL_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/model_arch.h"
#include "inference/model.h"

namespace qatk::inference {

struct LoadOptions {
  // Rearrange weights for the CPU SIMD kernels (kernels/x16.h). The CUDA backend
  // reads the file's layouts: load with repack = false for it.
  bool repack = true;
};

// Opens a GGUF (magic "GGUF") or qatkit mobile (magic "QMOB") model.
absl::StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path,
                                                 const LoadOptions& options = {});
absl::StatusOr<std::unique_ptr<Model>> LoadGgufModel(const std::string& path,
                                                     const LoadOptions& options = {});
// The tokenizer metadata of a GGUF or mobile file, without its weights.
absl::StatusOr<Vocab> LoadVocab(const std::string& path);

// For the loaders: the Model field that a table tensor fills, a matrix for
// embeddings, linears and the head (ArchTensor::quantizable), a vector
// otherwise. m->layers must already hold the config's layers. Aborts on a
// slot the runtime has no field for (every table slot must have one).
QMatrix* BindMatrix(Model* m, const ArchTensor& t);
std::vector<float>* BindVector(Model* m, const ArchTensor& t);

}  // namespace qatk::inference

#endif  // QATK_INFERENCE_MODEL_LOADER_H_
