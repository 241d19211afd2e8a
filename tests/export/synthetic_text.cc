// SyntheticText (spm_train_util.h): no sentencepiece here, so LibTorch tests
// can link it (sentencepiece's embedded protobuf clashes with LibTorch's).
#include <random>

#include "tests/export/spm_train_util.h"

namespace qatk::testing {

std::string SyntheticText(int n_sentences, unsigned seed) {
  static const char* kWords[] = {
      "the", "of", "and", "to", "a", "in", "that", "is", "was", "he", "for", "it", "with",
      "as", "his", "on", "be", "at", "by", "I", "this", "had", "not", "are", "but", "from",
      "or", "have", "an", "they", "which", "one", "you", "were", "her", "all", "she", "there",
      "would", "their", "we", "him", "been", "has", "when", "who", "will", "more", "no", "if",
      "out", "so", "said", "what", "up", "its", "about", "into", "than", "them", "can", "only",
      "other", "new", "some", "could", "time", "these", "two", "may", "then", "do", "first",
      "any", "my", "now", "such", "like", "our", "over", "man", "me", "even", "most", "made",
      "after", "also", "did", "many", "before", "must", "through", "back", "years", "where",
      "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
      "people", "Mr.", "how", "too", "little", "state", "good", "very", "make", "world",
      "still", "own", "see", "men", "work", "long", "get", "here", "between", "both", "life",
      "being", "under", "never", "day", "same", "another", "know", "while", "last", "might",
      "us", "great", "old", "year", "off", "come", "since", "against", "go", "came", "right",
      "used", "take", "three", "1961", "42", "café", "naïve"};
  const int n = sizeof(kWords) / sizeof(kWords[0]);
  std::mt19937 rng(seed);
  std::string out;
  for (int s = 0; s < n_sentences; ++s) {
    const int len = 4 + static_cast<int>(rng() % 12);
    for (int w = 0; w < len; ++w) {
      std::string word = kWords[rng() % n];
      if (w == 0 && word[0] >= 'a' && word[0] <= 'z') word[0] = static_cast<char>(word[0] - 32);
      out += word;
      out += (w + 1 == len) ? "." : (rng() % 9 == 0 ? ", " : " ");
    }
    out += (rng() % 5 == 0) ? "\n\n" : (rng() % 2 ? "\n" : " ");
  }
  return out;
}

}  // namespace qatk::testing
