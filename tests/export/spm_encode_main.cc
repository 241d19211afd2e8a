// qatk_spm_encode MODEL TEXT_FILE: libsentencepiece's ids of the file's text
// (no BOS/EOS) as one JSON array on stdout (the interop test's expected ids).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: %s MODEL TEXT_FILE\n", argv[0]), 2;
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) return std::fprintf(stderr, "%s: cannot open\n", argv[2]), 1;
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<int> ids;
  sentencepiece::SentencePieceProcessor sp;
  auto status = sp.Load(argv[1]);
  if (status.ok()) status = sp.Encode(ss.str(), &ids);
  if (!status.ok()) return std::fprintf(stderr, "%s: %s\n", argv[1], status.ToString().c_str()), 1;
  std::printf("[");
  for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? ",%d" : "%d", ids[i]);
  std::printf("]\n");
  return 0;
}
