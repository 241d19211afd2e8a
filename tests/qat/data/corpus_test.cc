#include "qat/data/corpus.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "formats/util/file_io.h"
#include "qat/data/token_stream.h"
#include "qat/data/tokenizer.h"

namespace qatk::data {
namespace {

std::string TempDir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/qatk_data_" + name + "_" + std::to_string(::getpid());
  std::system(("rm -rf '" + d + "' && mkdir -p '" + d + "'").c_str());
  return d;
}

TEST(Corpus, DetokenizesBrown) {
  const std::string tagged =
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, then/rb left/vbd ./.\n"
      "It/pps ended/vbd (/( briefly/rb )/) ./.\n\n\n\tNext/ap paragraph/nn ./.\n";
  EXPECT_EQ(DetokenizeBrown(tagged),
            "The jury said \"no evidence\", then left. It ended (briefly).\nNext paragraph.");
}

TEST(Corpus, SplitIsDeterministicAndByDocument) {
  std::vector<Document> docs;
  for (int i = 0; i < 45; ++i) docs.push_back({"d" + std::to_string(i), "text " + std::to_string(i)});
  auto a = SplitDocuments(docs), b = SplitDocuments(docs);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->valid.size(), 2u);  // positions 10 and 30
  ASSERT_EQ(a->train.size(), b->train.size());
  for (size_t i = 0; i < a->train.size(); ++i) EXPECT_EQ(a->train[i].name, b->train[i].name);
  EXPECT_EQ(a->valid[0].name, "d10");
  EXPECT_EQ(a->test[0].name, "d15");
  EXPECT_FALSE(SplitDocuments({{"a", "x"}}).ok());
}

TEST(Corpus, BrownPrepIsDeterministic) {
  auto dir = FindBrownDir("");
  if (!dir.ok()) GTEST_SKIP() << dir.status();
  auto docs = LoadBrownDocuments(*dir);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_GT(docs->size(), 400u);
  const std::string out1 = TempDir("b1"), out2 = TempDir("b2");
  std::vector<Document> first(docs->begin(), docs->begin() + 40);
  ASSERT_TRUE(WriteSplits(*SplitDocuments(first), out1).ok());
  ASSERT_TRUE(WriteSplits(*SplitDocuments(first), out2).ok());
  for (const char* f : {"/train.txt", "/valid.txt", "/test.txt"}) {
    EXPECT_EQ(*ReadFileToString(out1 + f), *ReadFileToString(out2 + f)) << f;
  }
  EXPECT_EQ((*ReadFileToString(out1 + "/train.txt")).find("/nn"), std::string::npos);  // tags stripped
}

TEST(Tokenizer, TrainsRoundTripsAndCachesStreams) {
  const std::string dir = TempDir("tok");
  {
    std::ofstream f(dir + "/train.txt");
    for (int i = 0; i < 200; ++i) f << "The quick brown fox " << i << " jumps over the lazy dog.\n";
  }
  auto tok = Tokenizer::Train(dir + "/train.txt", 320, 1);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(tok->vocab_size(), 320);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->unk_id(), 0);
  const std::string text = "Über  two\nlines, with  doubled spaces and ünïcödé 123.";
  EXPECT_EQ(tok->Decode(tok->Encode(text)), text);
  ASSERT_TRUE(tok->Save(dir + "/t.model").ok());
  auto again = Tokenizer::Load(dir + "/t.model");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Encode(text), tok->Encode(text));

  bool hit = true;
  auto s1 = LoadTokenStream(dir + "/train.txt", *tok, &hit);
  ASSERT_TRUE(s1.ok());
  EXPECT_FALSE(hit);
  auto s2 = LoadTokenStream(dir + "/train.txt", *tok, &hit);
  ASSERT_TRUE(s2.ok());
  EXPECT_TRUE(hit);
  EXPECT_EQ(*s1, *s2);
  { std::ofstream f(dir + "/train.txt", std::ios::app); f << "changed\n"; }
  auto s3 = LoadTokenStream(dir + "/train.txt", *tok, &hit);
  ASSERT_TRUE(s3.ok());
  EXPECT_FALSE(hit);  // text changed: rebuilt
  EXPECT_FALSE(Tokenizer::Load(dir + "/missing.model").ok());
  { std::ofstream f(dir + "/bad.model"); f << "not a model"; }
  EXPECT_FALSE(Tokenizer::Load(dir + "/bad.model").ok());
}

TEST(BatchSampler, DeterministicAndResumable) {
  std::vector<int32_t> stream(1000);
  for (int i = 0; i < 1000; ++i) stream[i] = i;
  BatchSampler a(&stream, 10, 42, 1), b(&stream, 10, 42, 1);
  std::vector<int64_t> ia, ta, ib, tb;
  for (int i = 0; i < 30; ++i) a.Next(4, &ia, &ta);  // crosses an epoch (99 windows)
  b.set_position(a.position() - 4);
  b.Next(4, &ib, &tb);
  EXPECT_EQ(ia, ib);
  EXPECT_EQ(ta, tb);
  EXPECT_EQ(ia[0], 1);                // BOS replaces the first token
  EXPECT_EQ(ta[0], ia[1]);          // targets are the inputs shifted by one
  BatchSampler c(&stream, 10, 43, 1);
  std::vector<int64_t> ic, tc;
  c.Next(4, &ic, &tc);
  BatchSampler d(&stream, 10, 42, 1);
  d.Next(4, &ib, &tb);
  EXPECT_NE(ic, ib);  // another seed, another order
}

}  // namespace
}  // namespace qatk::data
