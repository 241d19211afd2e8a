// Mobile format: code packing, writer -> reader round trip of every field
// type, and writer-side validation.
#include "formats/mobile/mobile_format.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "formats/quant/fp16.h"
#include "gtest/gtest.h"

namespace qatk::mobile {
namespace {

// Per-process names: ctest runs the cases of this binary in parallel processes.
std::string TmpPath(const std::string& name) {
  return ::testing::TempDir() + "/qatk_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<int8_t> RandomCodes(DType t, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(CodeMin(t), CodeMax(t));
  std::vector<int8_t> q(n);
  for (auto& v : q) v = static_cast<int8_t>(d(rng));
  return q;
}

TEST(MobilePackTest, NibbleAndCrumbOrderAreAsDocumented) {
  const int8_t q4[3] = {1, -2, 7};  // row of K=3: padded to 2 bytes
  uint8_t p4[2] = {0xAA, 0xAA};
  PackRow(DType::kInt4Channel, q4, 3, p4);
  EXPECT_EQ(p4[0], 0xE1);  // element 0 low nibble (1), element 1 high (-2 = 0xE)
  EXPECT_EQ(p4[1], 0x07);  // padding nibble zero
  const int8_t q2[5] = {1, -2, 0, -1, -1};
  uint8_t p2[2];
  PackRow(DType::kInt2Channel, q2, 5, p2);
  EXPECT_EQ(p2[0], 0x01 | (0x2 << 2) | (0x0 << 4) | (0x3 << 6));
  EXPECT_EQ(p2[1], 0x03);
}

TEST(MobilePackTest, PackUnpackRoundTripsEveryType) {
  for (DType t : {DType::kInt8Channel, DType::kInt4Channel, DType::kInt2Channel}) {
    for (uint64_t k : {1, 2, 3, 4, 5, 31, 64, 67}) {
      auto q = RandomCodes(t, k, static_cast<uint32_t>(k));
      std::vector<uint8_t> packed(PackedRowBytes(t, k));
      PackRow(t, q.data(), k, packed.data());
      std::vector<int8_t> back(k);
      UnpackRow(t, packed.data(), k, back.data());
      EXPECT_EQ(q, back) << DTypeName(t) << " k=" << k;
    }
  }
}

Tokenizer SmallTokenizer() {
  Tokenizer t;
  t.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81the", "<0x0A>"};
  t.scores = {0.0f, 0.0f, 0.0f, -1.5f, -7.25f};
  t.types = {2, 3, 3, 1, 6};
  t.unk_id = 0, t.bos_id = 1, t.eos_id = 2, t.pad_id = -1;
  t.add_bos = true, t.add_eos = false, t.add_space_prefix = false;
  return t;
}

struct IntTensor {
  TensorInfo info;
  std::vector<int8_t> codes;
  std::vector<float> scales;
};

IntTensor MakeInt(const std::string& name, DType dt, uint64_t rows, uint64_t k, ScaleType st,
                  ActMethod am, float act, uint32_t seed) {
  IntTensor x;
  x.info.name = name;
  x.info.dtype = dt;
  x.info.dims = {rows, k};
  x.info.scale_type = st;
  x.info.act_method = am;
  x.info.act_scale = act;
  if (am != ActMethod::kNone) x.info.act_bits = 8;
  x.codes = RandomCodes(dt, rows * k, seed);
  for (uint64_t r = 0; r < rows; ++r) {
    float s = 0.01f * static_cast<float>(r + 1) + 0.001f * static_cast<float>(seed);
    x.scales.push_back(st == ScaleType::kF16 ? RoundToFp16(s) : s);
  }
  return x;
}

TEST(MobileRoundTripTest, EveryFieldTypeSurvives) {
  const std::string path = TmpPath("roundtrip.qmob");
  const std::string config = R"({"model_type":"llama","hidden_size":8})";
  const std::string recipe = R"({"recipe":null,"provenance":{"tool":"qatkit","method":"ptq"}})";
  std::vector<IntTensor> ints = {
      MakeInt("model.embed_tokens.weight", DType::kInt8Channel, 5, 8, ScaleType::kF32,
              ActMethod::kNone, 0.0f, 1),
      MakeInt("model.layers.0.self_attn.q_proj.weight", DType::kInt4Channel, 6, 9,
              ScaleType::kF16, ActMethod::kLearned, 0.125f, 2),
      MakeInt("lm_head.weight", DType::kInt2Channel, 5, 6, ScaleType::kF16,
              ActMethod::kCalibrated, 0.5f, 3),
  };
  ints[1].info.act_narrow = true;
  ints[1].info.act_rounding = Rounding::kHalfEven;
  const std::vector<float> norm = {1.0f, -2.5f, 3.25f, 0.0f};
  const std::vector<float> half = {0.5f, 1.0f / 3.0f, -7.0f, 65504.0f, 1e-3f, 2.0f};
  {
    auto w = MobileWriter::Create(path);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->SetConfigJson(config).ok());
    ASSERT_TRUE(w->SetRecipeJson(recipe).ok());
    ASSERT_TRUE(w->SetTokenizer(SmallTokenizer()).ok());
    for (auto& t : ints) ASSERT_TRUE(w->DeclareTensor(t.info).ok());
    TensorInfo n{"model.norm.weight", DType::kF32, {4}};
    ASSERT_TRUE(w->DeclareTensor(n).ok());
    TensorInfo h{"model.layers.0.input_layernorm.weight", DType::kF16, {2, 3}};
    ASSERT_TRUE(w->DeclareTensor(h).ok());
    TensorInfo ks{"model.layers.0.self_attn.k_scale", DType::kF32, {1}};
    ks.act_method = ActMethod::kCalibrated, ks.act_scale = 0.03125f, ks.act_bits = 8;
    ASSERT_TRUE(w->DeclareTensor(ks).ok());
    for (auto& t : ints) ASSERT_TRUE(w->WriteCodes(t.codes, t.scales).ok());
    ASSERT_TRUE(w->WriteFloats(norm).ok());
    ASSERT_TRUE(w->WriteFloats(half).ok());
    const float kscale = 0.03125f;
    ASSERT_TRUE(w->WriteFloats({&kscale, 1}).ok());
    ASSERT_TRUE(w->Finish().ok());
  }
  auto f = MobileFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 1u);
  EXPECT_EQ(f->config_json(), config);
  EXPECT_EQ(f->recipe_json(), recipe);
  const Tokenizer want = SmallTokenizer();
  EXPECT_EQ(f->tokenizer().tokens, want.tokens);
  EXPECT_EQ(f->tokenizer().scores, want.scores);
  EXPECT_EQ(f->tokenizer().types, want.types);
  EXPECT_EQ(f->tokenizer().bos_id, 1);
  EXPECT_EQ(f->tokenizer().pad_id, -1);
  EXPECT_TRUE(f->tokenizer().add_bos);
  EXPECT_FALSE(f->tokenizer().add_eos);
  EXPECT_FALSE(f->tokenizer().add_space_prefix);
  ASSERT_EQ(f->tensors().size(), 6u);
  for (const IntTensor& t : ints) {
    const TensorInfo* r = f->FindTensor(t.info.name);
    ASSERT_NE(r, nullptr) << t.info.name;
    EXPECT_EQ(r->dtype, t.info.dtype);
    EXPECT_EQ(r->dims, t.info.dims);
    EXPECT_EQ(r->scale_type, t.info.scale_type);
    EXPECT_EQ(r->act_method, t.info.act_method);
    EXPECT_EQ(r->act_scale, t.info.act_scale);
    EXPECT_EQ(r->act_bits, t.info.act_bits);
    EXPECT_EQ(r->act_narrow, t.info.act_narrow);
    EXPECT_EQ(r->act_rounding, t.info.act_rounding);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->Codes(*r)) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->ScalesData(*r)) % 64, 0u);
    const uint64_t k = r->row_len();
    std::vector<float> row(k);
    for (uint64_t i = 0; i < r->rows(); ++i) {
      EXPECT_EQ(f->Scale(*r, i), t.scales[i]);
      f->DequantizeRow(*r, i, row.data());
      for (uint64_t j = 0; j < k; ++j) {
        ASSERT_EQ(row[j], t.codes[i * k + j] * t.scales[i]) << t.info.name << " " << i << "," << j;
      }
    }
  }
  std::vector<float> got(4);  // 1-D: rows = dims[0], one element each
  for (int i = 0; i < 4; ++i) f->DequantizeRow(*f->FindTensor("model.norm.weight"), i, &got[i]);
  EXPECT_EQ(got, norm);
  const TensorInfo* h = f->FindTensor("model.layers.0.input_layernorm.weight");
  std::vector<float> hrow(3);
  for (int r = 0; r < 2; ++r) {
    f->DequantizeRow(*h, r, hrow.data());
    for (int j = 0; j < 3; ++j) EXPECT_EQ(hrow[j], RoundToFp16(half[r * 3 + j]));
  }
  const TensorInfo* ks = f->FindTensor("model.layers.0.self_attn.k_scale");
  EXPECT_EQ(ks->act_method, ActMethod::kCalibrated);
  EXPECT_EQ(ks->act_scale, 0.03125f);
}

// A byte-level BPE tokenizer (pre name, merges) makes a version-2 file; the
// reader gives every field back.
TEST(MobileRoundTripTest, BpeTokenizerWritesVersion2) {
  const std::string path = ::testing::TempDir() + "/bpe.qmob";
  Tokenizer tok;
  tok.model = "gpt2";
  tok.pre = "llama-bpe";
  tok.tokens = {"a", "b", "ab", "\xC4\xA0" "a", "<|eot|>"};
  tok.scores.assign(5, 0.0f);
  tok.types = {1, 1, 1, 1, 3};
  tok.merges = {"a b", "\xC4\xA0 a"};
  tok.bos_id = 4, tok.eos_id = 4;
  tok.add_bos = false, tok.add_space_prefix = false;
  {
    auto w = MobileWriter::Create(path);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(w->SetConfigJson("{}").ok());
    ASSERT_TRUE(w->SetTokenizer(tok).ok());
    TensorInfo n{"model.norm.weight", DType::kF32, {2}};
    ASSERT_TRUE(w->DeclareTensor(n).ok());
    const std::vector<float> x = {1.0f, 2.0f};
    ASSERT_TRUE(w->WriteFloats(x).ok());
    ASSERT_TRUE(w->Finish().ok());
  }
  auto f = MobileFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->tokenizer().model, "gpt2");
  EXPECT_EQ(f->tokenizer().pre, "llama-bpe");
  EXPECT_EQ(f->tokenizer().merges, tok.merges);
  EXPECT_EQ(f->tokenizer().tokens, tok.tokens);
  EXPECT_FALSE(f->tokenizer().add_bos);
}

TEST(MobileWriterTest, RejectsBadInput) {
  auto w = MobileWriter::Create(TmpPath("bad.qmob"));
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(w->SetConfigJson("[1,2]").ok());
  TensorInfo a{"a", DType::kInt4Channel, {2, 4}, ScaleType::kF16};
  ASSERT_TRUE(w->DeclareTensor(a).ok());
  EXPECT_EQ(w->DeclareTensor(a).code(), absl::StatusCode::kInvalidArgument);  // duplicate
  TensorInfo no_scale{"b", DType::kInt4Channel, {2, 4}};
  EXPECT_FALSE(w->DeclareTensor(no_scale).ok());
  TensorInfo bad_act{"c", DType::kInt4Channel, {2, 4}, ScaleType::kF32, ActMethod::kLearned, -1.0f};
  EXPECT_FALSE(w->DeclareTensor(bad_act).ok());
  ASSERT_TRUE(w->SetTokenizer(SmallTokenizer()).ok());
  std::vector<int8_t> codes(8, 0);
  codes[3] = 8;  // out of int4 range
  EXPECT_FALSE(w->WriteCodes(codes, std::vector<float>{0.5f, 0.25f}).ok());
  // The failed tensor leaves the file incomplete: Finish must refuse.
  EXPECT_FALSE(w->Finish().ok());
}

TEST(MobileWriterTest, RejectsScaleThatIsNotFp16) {
  auto w = MobileWriter::Create(TmpPath("notfp16.qmob"));
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->SetTokenizer(SmallTokenizer()).ok());
  TensorInfo a{"a", DType::kInt8Channel, {1, 4}, ScaleType::kF16};
  ASSERT_TRUE(w->DeclareTensor(a).ok());
  std::vector<int8_t> codes(4, 1);
  EXPECT_EQ(w->WriteCodes(codes, std::vector<float>{0.1f}).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace qatk::mobile
