// qat: the full tool (data, tokenizer, training, PTQ, export, evaluation).
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "formats/util/cli.h"
#include "qat/cli/commands.h"

int main(int argc, char** argv) {
  // LibTorch's OpenMP workers spin after each parallel region while OpenBLAS
  // runs its own threads on the same cores: on 2 cores, training ran 2x
  // (quiet machine) to 6-13x (a compile beside it) slower than with idle
  // workers that sleep (docs/BENCHMARKS.md, "Training throughput"). libgomp reads its wait policy once, when it is
  // loaded, so set it and start again; a policy the user set is kept.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: go on spinning
  }
  // Training allocates and frees the same large activation and logit
  // tensors (tens of MB) every step. glibc serves blocks that large with
  // fresh mmaps, so each step page-faulted ~140 MB back in (a third of the
  // step's time was in the kernel). Keep them in the heap and do not hand
  // freed memory back to the system: the peak is reached in the first step.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // LibTorch starts with one intra-op thread here: use every core.
  torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const std::vector<qatk::cli::Command> commands = {
      {"inspect", "print a GGUF / mobile / safetensors file's metadata and tensors",
       qatk::cli::InspectCommand},
      {"export", "write a checkpoint as GGUF, mobile or safetensors", qatk::cli::ExportCommand},
      {"data", "prepare train/valid/test text (Brown corpus or files)", qatk::cli::DataCommand},
      {"tokenizer", "train a SentencePiece BPE tokenizer", qatk::cli::TokenizerCommand},
      {"train", "train from scratch, fine-tune, QAT, distill", qatk::cli::TrainCommand},
      {"quantize", "post-training quantization (PTQ baseline)", qatk::cli::QuantizeCommand},
      {"eval", "perplexity with llama.cpp's chunking", qatk::cli::EvalCommand},
      {"init", "write a randomly initialised checkpoint", qatk::cli::InitCommand},
      {"compare", "QAT vs PTQ study: fine-tune, quantize, export, evaluate, report", qatk::cli::CompareCommand},
      {"template", "render conversations with a model's chat template", qatk::cli::TemplateCommand},
  };
  return qatk::cli::Main("qat", "quantization-aware training and export", commands, argc, argv);
}
