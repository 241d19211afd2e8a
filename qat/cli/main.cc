// qat: the full tool (data, tokenizer, training, PTQ, export, evaluation).
#include <torch/torch.h>

#include <thread>

#include "formats/util/cli.h"
#include "qat/cli/commands.h"

int main(int argc, char** argv) {
  // LibTorch starts with one intra-op thread here: use every core.
  torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const std::vector<qatk::cli::Command> commands = {
      {"inspect", "print a GGUF / mobile / safetensors file's metadata and tensors",
       qatk::cli::InspectCommand},
  };
  return qatk::cli::Main("qat", "quantization-aware training and export", commands, argc, argv);
}
