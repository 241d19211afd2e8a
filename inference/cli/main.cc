// qat-run: the runtime alone (no LibTorch) — generate, perplexity, bench, tokenize, inspect.
#include "formats/util/cli.h"
#include "inference/cli/commands.h"

int main(int argc, char** argv) {
  const std::vector<qatk::cli::Command> commands = {
      {"generate", "generate text from a prompt (streams tokens, tok/s on stderr)",
       qatk::cli::GenerateCommand},
      {"perplexity", "perplexity of a text file with llama.cpp's chunking",
       qatk::cli::PerplexityCommand},
      {"bench", "prefill / decode tokens/s and peak memory", qatk::cli::BenchCommand},
      {"tokenize", "token ids of a text file under the model file's tokenizer",
       qatk::cli::TokenizeCommand},
      {"inspect", "print a GGUF / mobile / safetensors file's metadata and tensors",
       qatk::cli::InspectCommand},
  };
  return qatk::cli::Main("qat-run", "run GGUF and mobile models on CPU", commands, argc, argv);
}
