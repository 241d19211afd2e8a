#include "qat/data/prepared.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "formats/util/file_io.h"
#include "qat/data/jsonl.h"
#include "qat/data/token_stream.h"
#include "qat/data/tokenizer.h"
#include "qat/train/loss.h"
#include "tests/qat/data/byte_encoder.h"

namespace qatk::data {
namespace {

constexpr char kLlamaLike[] =
    "{% for m in messages %}{% if loop.first %}{{ bos_token }}{% endif %}<|start_header_id|>{{ m['role'] }}"
    "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

chat::ChatTemplate Template(const std::string& src) {
  auto t = chat::ChatTemplate::FromSource(src, {{"bos_token", "<s>"}});
  EXPECT_TRUE(t.ok()) << t.status();
  return *std::move(t);
}

std::string Masked(const TokenizedDoc& d, uint8_t want) {
  std::string s;
  for (size_t i = 0; i < d.ids.size(); ++i) {
    if (d.mask[i] == want) s += d.ids[i] < 256 ? std::string(1, static_cast<char>(d.ids[i])) : "#";
  }
  return s;
}

TEST(JsonlTest, TextTrainsEveryTokenAndEndsWithEos) {
  ByteEncoder enc;
  auto d = TokenizeJsonlLine(R"({"text": "ab", "id": 7})", enc, {});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->ids, (std::vector<int32_t>{ByteEncoder::kBos, 'a', 'b', ByteEncoder::kEos}));
  EXPECT_EQ(d->mask, (std::vector<uint8_t>{1, 1, 1, 1}));
}

TEST(JsonlTest, PromptCompletionTrainsTheCompletionAndEos) {
  ByteEncoder enc;
  auto d = TokenizeJsonlLine(R"({"prompt": "Q?", "completion": " A."})", enc, {});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(Masked(*d, 1), " A.#");
  EXPECT_EQ(Masked(*d, 0), "#Q?");
  JsonlOptions all;
  all.loss_on = LossOn::kAll;
  d = TokenizeJsonlLine(R"({"prompt": "Q?", "completion": " A."})", enc, all);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(Masked(*d, 0), "");
}

TEST(JsonlTest, ChatMasksExactlyTheAssistantTurns) {
  ByteEncoder enc;
  chat::ChatTemplate t = Template(kLlamaLike);
  JsonlOptions o;
  o.chat_template = &t;
  auto d = TokenizeJsonlLine(
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
          {"role": "assistant", "content": " yo "}, {"role": "user", "content": "x"},
          {"role": "assistant", "content": "ok"}]})",
      enc, o);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(Masked(*d, 1), "yo<|eot_id|>ok<|eot_id|>#");
  EXPECT_EQ(Masked(*d, 0),
            "<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>"
            "\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<|start_header_id|>user"
            "<|end_header_id|>\n\nx<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  // A conversation ending in a user turn: its EOS is not trained.
  d = TokenizeJsonlLine(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                            {"role": "user", "content": "b"}]})",
                        enc, o);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->mask.back(), 0);
}

// A template that writes the generation prompt whatever add_generation_prompt
// says (as the original Llama 3 Instruct one): the prompt after the last turn
// belongs to no turn and is cut off.
TEST(JsonlTest, TrailingGenerationPromptIsCutOff) {
  ByteEncoder enc;
  chat::ChatTemplate t = Template("{% for m in messages %}[{{ m.role }}]{{ m.content }}|{% endfor %}[assistant]");
  JsonlOptions o;
  o.chat_template = &t;
  auto d = TokenizeJsonlLine(R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                                  {"role": "user", "content": "r"}, {"role": "assistant", "content": "b"}]})",
                             enc, o);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(Masked(*d, 1), "a|b|#");
  EXPECT_EQ(Masked(*d, 0), "[user]q|[assistant][user]r|[assistant]");
}

TEST(JsonlTest, BadLinesAreClearErrors) {
  ByteEncoder enc;
  chat::ChatTemplate t = Template(kLlamaLike);
  chat::ChatTemplate unstable = Template("{% for m in messages %}{% if loop.last %}LAST:{% endif %}{{ m.content }}{% endfor %}");
  chat::ChatTemplate failing = Template("{{ raise_exception('roles must alternate') }}");
  JsonlOptions o;
  o.chat_template = &t;
  o.max_tokens = 40;
  struct Case {
    const char* line;
    const JsonlOptions* opts;
    const char* want;
  };
  JsonlOptions o_unstable = o, o_failing = o, o_none = o;
  o_unstable.chat_template = &unstable;
  o_failing.chat_template = &failing;
  o_none.chat_template = nullptr;
  o_none.no_template_reason = "M has none";
  const Case cases[] = {
      {"{\"text\": \"a\"", &o, "not valid JSON"},
      {"[1]", &o, "not a JSON object"},
      {"{\"id\": 1}", &o, "needs \"text\""},
      {"{\"prompt\": \"a\"}", &o, "no \"completion\""},
      {"{\"completion\": \"a\"}", &o, "no \"prompt\""},
      {"{\"text\": 3}", &o, "\"text\" must be a string"},
      {"{\"text\": \"a\", \"messages\": []}", &o, "more than one"},
      {R"({"messages": [{"role": "wizard", "content": "a"}]})", &o, "unknown role 'wizard'"},
      {R"({"messages": [{"role": "user"}]})", &o, "no \"content\""},
      {R"({"messages": [{"role": "user", "content": "a"}]})", &o, "no assistant message"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "0123456789012345678901234567890123456789"}]})",
       &o, "more than the context of 40"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]})",
       &o_unstable, "not prefix-stable at messages[1]"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})", &o_failing,
       "roles must alternate"},
      {R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})", &o_none,
       "M has none"},
  };
  for (const Case& c : cases) {
    auto d = TokenizeJsonlLine(c.line, enc, *c.opts);
    ASSERT_FALSE(d.ok()) << c.line;
    EXPECT_NE(d.status().message().find(c.want), std::string::npos) << c.line << " -> " << d.status();
  }
}

class PreparedDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/qatk_prepared_" + std::to_string(::getpid());
    ASSERT_TRUE(RemoveAll(dir_).ok());
    ASSERT_TRUE(MakeDirs(dir_).ok());
  }
  void TearDown() override { (void)RemoveAll(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  std::string dir_;
};

TEST_F(PreparedDirTest, WritesSplitsThatReadBack) {
  ByteEncoder enc;
  std::string lines;
  for (int i = 0; i < 40; ++i) lines += "{\"prompt\": \"p" + std::to_string(i) + "\", \"completion\": \"c\"}\n\n";
  PrepareJsonlOptions o;
  o.files = {Write("a.jsonl", lines)};
  o.out = dir_ + "/ds";
  o.valid_fraction = 0.1;
  ASSERT_TRUE(PrepareJsonl(o, enc).ok());
  auto train = ReadPreparedSplit(o.out + "/train.qtd");
  auto valid = ReadPreparedSplit(o.out + "/valid.qtd");
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(valid.ok()) << valid.status();
  EXPECT_EQ(train->num_docs(), 36u);
  EXPECT_EQ(valid->num_docs(), 4u);
  EXPECT_EQ(train->tokenizer_fingerprint, 0x1234u);
  EXPECT_EQ(train->eos_id, ByteEncoder::kEos);
  EXPECT_EQ(train->trained_tokens(), 36u * 2);  // "c" and EOS
  for (uint64_t d = 0; d < train->num_docs(); ++d) EXPECT_EQ(train->ids[train->doc_starts[d]], ByteEncoder::kBos);
  EXPECT_TRUE(IsPreparedDataset(o.out));
  // Rewriting an existing dataset replaces it whole.
  o.valid_fraction = 0;
  ASSERT_TRUE(PrepareJsonl(o, enc).ok());
  EXPECT_FALSE(PathExists(o.out + "/valid.qtd"));
}

TEST_F(PreparedDirTest, TextFilesAndFoldersAreOneDocumentPerFile) {
  ByteEncoder enc;
  ASSERT_TRUE(MakeDirs(dir_ + "/txt/sub").ok());
  Write("txt/b.txt", "bb\n\nstill b");
  Write("txt/sub/a.txt", "a");
  Write("txt/skip.md", "not text");
  Write("txt/empty.txt", " \n");
  Write("lone.txt", "c");
  PrepareJsonlOptions o;
  o.files = {Write("x.jsonl", "{\"text\": \"j\"}\n")};
  o.text_files = {dir_ + "/txt", dir_ + "/lone.txt"};
  o.out = dir_ + "/ds";
  o.valid_fraction = 0;
  ASSERT_TRUE(PrepareJsonl(o, enc).ok());
  auto s = ReadPreparedSplit(o.out + "/train.qtd");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->num_docs(), 4u);  // x.jsonl, txt/b.txt, txt/sub/a.txt, lone.txt
  std::vector<int32_t> want;
  for (std::string text : {"j", "bb\n\nstill b", "a", "c"}) {
    want.push_back(ByteEncoder::kBos);
    want.insert(want.end(), text.begin(), text.end());
    want.push_back(ByteEncoder::kEos);
  }
  EXPECT_EQ(s->ids, want);
  EXPECT_EQ(s->trained_tokens(), want.size());
  o.text_files = {dir_ + "/txt/sub/../../nothing"};
  EXPECT_FALSE(PrepareJsonl(o, enc).ok());
}

TEST_F(PreparedDirTest, BadLineNamesFileAndLineAndWritesNothing) {
  ByteEncoder enc;
  PrepareJsonlOptions o;
  o.files = {Write("good.jsonl", "{\"text\": \"a\"}\n"), Write("bad.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"\n")};
  o.out = dir_ + "/ds";
  absl::Status s = PrepareJsonl(o, enc);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(dir_ + "/bad.jsonl:3: not valid JSON"), std::string::npos) << s;
  EXPECT_FALSE(PathExists(o.out));
  EXPECT_FALSE(PathExists(o.out + ".tmp-" + std::to_string(::getpid())));
  // An existing dataset stays as it was.
  o.files = {dir_ + "/good.jsonl"};
  ASSERT_TRUE(PrepareJsonl(o, enc).ok());
  auto before = ReadFileToString(o.out + "/train.qtd");
  o.files = {dir_ + "/good.jsonl", dir_ + "/bad.jsonl"};
  EXPECT_FALSE(PrepareJsonl(o, enc).ok());
  EXPECT_EQ(*ReadFileToString(o.out + "/train.qtd"), *before);
}

TEST_F(PreparedDirTest, CorruptSplitFileNamesTheOffset) {
  PreparedSplit s;
  s.Append({{1, 2, 3}, {1, 1, 0}});
  s.Append({{4, 5}, {0, 1}});
  ASSERT_TRUE(WritePreparedSplit(dir_ + "/x.qtd", s).ok());
  auto back = ReadPreparedSplit(dir_ + "/x.qtd");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ids, s.ids);
  EXPECT_EQ(back->mask, s.mask);
  EXPECT_EQ(back->doc_starts, s.doc_starts);
  std::string bytes = *ReadFileToString(dir_ + "/x.qtd");
  std::string bad_mask = bytes;
  bad_mask[40 + 5 * 4 + 2] = 7;
  Write("m.qtd", bad_mask);
  auto r = ReadPreparedSplit(dir_ + "/m.qtd");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("m.qtd: offset 62"), std::string::npos) << r.status();
  Write("t.qtd", bytes.substr(0, bytes.size() - 1));
  EXPECT_FALSE(ReadPreparedSplit(dir_ + "/t.qtd").ok());
}

// Three documents of different lengths; doc 1 has no trained token.
PreparedSplit ThreeDocs() {
  PreparedSplit s;
  s.eos_id = 99;
  s.Append({{10, 11, 12, 13, 14, 15, 16, 99}, std::vector<uint8_t>(8, 1)});
  s.Append({{20, 21, 22, 99}, std::vector<uint8_t>(4, 0)});
  s.Append({{30, 31, 32, 33, 34, 99}, {0, 0, 1, 1, 1, 1}});
  return s;
}

TEST(WindowsTest, DocPackingNeverMixesDocuments) {
  const PreparedSplit s = ThreeDocs();
  int64_t dropped = -1;
  std::vector<Window> w = BuildWindows(s, 4, Packing::kDocument, &dropped);
  EXPECT_EQ(dropped, 1);  // the whole of doc 1
  ASSERT_EQ(w.size(), 4u);  // doc 0: [0,5) [4,8); doc 2: [12,17) [16,18)
  WindowSampler sampler(&s, w, 4, 7, std::nullopt);
  for (int round = 0; round < 3; ++round) {
    std::vector<int64_t> in, tg;
    sampler.Next(4, &in, &tg);
    for (int b = 0; b < 4; ++b) {
      std::set<int64_t> docs;
      for (int t = 0; t < 4; ++t) {
        if (tg[b * 4 + t] != kIgnoreTarget) docs.insert(tg[b * 4 + t] / 10);
        if (t == 0 || tg[b * 4 + t - 1] != kIgnoreTarget || in[b * 4 + t] != s.eos_id) docs.insert(in[b * 4 + t] / 10);
      }
      docs.erase(9);  // a document's own EOS
      EXPECT_EQ(docs.size(), 1u) << "window " << b << " of round " << round;
    }
  }
  // Masked targets and padding are ignored: doc 2's first window trains 32..34 and its EOS.
  std::vector<int64_t> in(4), tg(4);
  WindowSampler::Fill(s, w[2], 4, std::nullopt, in.data(), tg.data());
  EXPECT_EQ(in, (std::vector<int64_t>{30, 31, 32, 33}));
  EXPECT_EQ(tg, (std::vector<int64_t>{kIgnoreTarget, 32, 33, 34}));
  WindowSampler::Fill(s, w[3], 4, std::nullopt, in.data(), tg.data());
  EXPECT_EQ(in, (std::vector<int64_t>{34, 99, 99, 99}));
  EXPECT_EQ(tg, (std::vector<int64_t>{99, kIgnoreTarget, kIgnoreTarget, kIgnoreTarget}));
}

TEST(WindowsTest, StreamPackingCrossesDocumentsAndDropsUntrainedWindows) {
  const PreparedSplit s = ThreeDocs();
  int64_t dropped = -1;
  std::vector<Window> w = BuildWindows(s, 4, Packing::kStream, &dropped);
  // 18 tokens: windows at 0, 4, 8, 12; [8,13) trains nothing (doc 1, then 30 masked).
  EXPECT_EQ(dropped, 1);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[2].start, 12u);
}

TEST(WindowsTest, StreamSamplerEqualsBatchSamplerOnText) {
  std::vector<int32_t> ids;
  for (int i = 0; i < 203; ++i) ids.push_back(3 + i % 50);
  PreparedSplit s = SplitFromStream(ids, 2);
  WindowSampler a(&s, BuildWindows(s, 16, Packing::kStream), 16, 5, 1);
  BatchSampler b(&ids, 16, 5, 1);
  ASSERT_EQ(a.num_windows(), b.num_windows());
  a.set_position(3);
  b.set_position(3);
  for (int i = 0; i < 6; ++i) {
    std::vector<int64_t> ia, ta, ib, tb;
    a.Next(4, &ia, &ta);
    b.Next(4, &ib, &tb);
    EXPECT_EQ(ia, ib);
    EXPECT_EQ(ta, tb);
  }
}

TEST(TrainingStreamTest, EosBetweenDocumentsOnlyForTraining) {
  const std::string dir = ::testing::TempDir() + "/qatk_stream_" + std::to_string(::getpid());
  ASSERT_TRUE(MakeDirs(dir).ok());
  {
    std::ofstream f(dir + "/t.txt");
    for (int i = 0; i < 200; ++i) f << "Sentence " << i % 13 << " about the stream.\n";
  }
  auto tok = Tokenizer::Train(dir + "/t.txt", 300, 1);
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::ofstream(dir + "/d.txt") << "First doc line.\nSecond line.\n\nThe second document.\n\nThird.\n";
  auto whole = LoadTokenStream(dir + "/d.txt", *tok);
  auto docs = LoadTokenStream(dir + "/d.txt", *tok, nullptr, /*documents=*/true);
  ASSERT_TRUE(whole.ok() && docs.ok());
  EXPECT_EQ(*whole, tok->Encode("First doc line.\nSecond line.\n\nThe second document.\n\nThird.\n"));
  std::vector<int32_t> want = tok->Encode("First doc line.\nSecond line.");
  for (const char* d : {"The second document.", "Third.\n"}) {
    want.push_back(tok->eos_id());
    std::vector<int32_t> e = tok->Encode(d);
    want.insert(want.end(), e.begin(), e.end());
  }
  EXPECT_EQ(*docs, want);
  bool hit = false;
  ASSERT_TRUE(LoadTokenStream(dir + "/d.txt", *tok, &hit, true).ok());
  EXPECT_TRUE(hit);
  EXPECT_EQ(*LoadTokenStream(dir + "/d.txt", *tok, &hit), *whole);  // its own cache
  EXPECT_TRUE(hit);
  PreparedSplit s = SplitFromStream(*docs, tok->eos_id());
  EXPECT_EQ(s.num_docs(), 3u);
  // A text without blank lines: the same ids either way.
  EXPECT_EQ(*LoadTokenStream(dir + "/t.txt", *tok, nullptr, true), *LoadTokenStream(dir + "/t.txt", *tok));
  (void)RemoveAll(dir);
}

TEST(TrainingLossTest, MaskedTargetsAreLeftOutAndAllMaskedIsAnError) {
  torch::manual_seed(3);
  torch::Tensor logits = torch::randn({6, 11}), teacher = torch::randn({6, 11});
  torch::Tensor y = torch::tensor({1, 2, 3, 4, 5, 6}, torch::kInt64);
  // No masked target: the unmasked formulas.
  auto full = qat::TrainingLoss(logits, y, teacher, 0.5, 2.0);
  ASSERT_TRUE(full.ok());
  torch::Tensor kl = torch::kl_div(torch::log_softmax(logits / 2.0, -1), torch::log_softmax(teacher / 2.0, -1),
                                   at::Reduction::Sum, true) / 6.0;
  EXPECT_EQ(full->item<double>(), (torch::cross_entropy_loss(logits, y) * 0.5 + kl * 2.0).item<double>());
  // Rows 1 and 4 masked: the same as the loss over the other rows.
  torch::Tensor ym = y.clone();
  ym[1] = kIgnoreTarget;
  ym[4] = kIgnoreTarget;
  torch::Tensor keep = torch::tensor({0, 2, 3, 5}, torch::kInt64);
  auto masked = qat::TrainingLoss(logits, ym, teacher, 0.5, 2.0);
  auto kept = qat::TrainingLoss(logits.index_select(0, keep), y.index_select(0, keep), teacher.index_select(0, keep),
                                0.5, 2.0);
  ASSERT_TRUE(masked.ok() && kept.ok());
  EXPECT_NEAR(masked->item<double>(), kept->item<double>(), 1e-5);
  auto none = qat::TrainingLoss(logits, torch::full({6}, kIgnoreTarget, torch::kInt64), teacher, 0.5, 2.0);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace qatk::data
