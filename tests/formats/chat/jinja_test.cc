#include "formats/chat/jinja.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "formats/chat/chat_template.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qatk::chat {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

absl::StatusOr<std::string> Render(const std::string& source, const Json& context = Json::object(),
                                   const JinjaLimits& limits = {}) {
  absl::StatusOr<JinjaTemplate> t = JinjaTemplate::Parse(source, limits);
  if (!t.ok()) return t.status();
  return t->Render(context);
}

std::string R(const std::string& source, const Json& context = Json::object()) {
  absl::StatusOr<std::string> out = Render(source, context);
  EXPECT_TRUE(out.ok()) << source << ": " << out.status();
  return out.ok() ? *out : "<error>";
}

TEST(JinjaExpressions, Arithmetic) {
  EXPECT_EQ(R("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}"),
            "7|3|-4|1|1024");
  EXPECT_EQ(R("{{ 7 / 2 }}|{{ 1.0 }}|{{ 2.5 * 2 }}|{{ 0.1 + 0.2 }}|{{ -0.0 }}"),
            "3.5|1.0|5.0|0.30000000000000004|-0.0");
  EXPECT_EQ(R("{{ 10 ** 21 }}|{{ 1 / 0 }}|{{ 0.0000001 * 1 }}"), "1e+21|Infinity|1e-7");
}

TEST(JinjaExpressions, ConcatenationFollowsJavaScript) {
  // `~` and `+` use String(value): floats lose ".0"; printing keeps it.
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ 2.0 ~ true }}|{{ 'x' + [1, 'b'] }}|{{ 2.0 }}"), "a12true|x1,b|2.0");
}

TEST(JinjaExpressions, LogicAndComparison) {
  EXPECT_EQ(R("{{ 0 or 'x' }}|{{ '' and 1 }}|{{ [] or 'e' }}|{{ not none }}"), "x||e|true");
  EXPECT_EQ(R("{{ 1 == 1.0 }}|{{ '1' == 1 }}|{{ none == missing }}|{{ [1] == [1] }}"),
            "true|true|true|false");
  EXPECT_EQ(
      R("{{ 'a' in 'cat' }}|{{ 2 in [1, 2] }}|{{ 'k' in {'k': 1} }}|{{ 'x' not in missing }}"),
      "true|true|true|true");
  EXPECT_EQ(R("{{ 'y' if 1 > 2 else 'n' }}{{ 'z' if false }}"), "n");
}

TEST(JinjaExpressions, MembersAndSlices) {
  const Json ctx = {{"m", {{"role", "user"}, {"list", {1, 2, 3, 4}}}}};
  EXPECT_EQ(
      R("{{ m.role }}{{ m['role'] }}{{ m.list[-1] }}{{ m.list[1:3] }}{{ m.list[::-1] }}", ctx),
      "useruser4[2, 3][4, 3, 2, 1]");
  EXPECT_EQ(R("{{ 'héllo'[1] }}|{{ 'hello'[::-1] }}|{{ '😀'|length }}"), "é|olleh|2");
  EXPECT_EQ(R("{{ m.missing }}|{{ m.missing.deeper }}|{{ none.x }}", ctx), "||");
}

TEST(JinjaStatements, Loops) {
  EXPECT_EQ(R("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ x }}{{ ',' if not loop.last }}{% "
              "endfor %}"),
            "1a,2b,3c");
  EXPECT_EQ(R("{% for x in [1, 2, 3] %}{{ loop.previtem is defined }}{% endfor %}"),
            "falsetruetrue");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{% endfor %}"), "24");
  EXPECT_EQ(R("{% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(R("{% for x in [1, 2, 3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "1");
  // As in the reference, `continue` drops what the iteration printed so far.
  EXPECT_EQ(R("{% for x in [1, 2] %}{{ x }}{% continue %}{% endfor %}"), "");
}

TEST(JinjaStatements, ScopesAndNamespaces) {
  EXPECT_EQ(R("{% set c = 0 %}{% for x in [1, 2] %}{% set c = c + x %}{{ c }}{% endfor %}{{ c }}"),
            "130");
  EXPECT_EQ(R("{% set ns = namespace(c=0) %}{% for x in [1, 2] %}{% set ns.c = ns.c + x %}{% "
              "endfor %}{{ ns.c }}"),
            "3");
  EXPECT_EQ(R("{% set x %}a{{ 1 }}{% endset %}[{{ x }}]"), "[a1]");
  EXPECT_EQ(R("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
}

TEST(JinjaStatements, Macros) {
  EXPECT_EQ(R("{% macro m(a, b='d') %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(b=3, a=2) }}"),
            "1-d 2-3");
  EXPECT_EQ(
      R("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}"),
      "321");
  EXPECT_FALSE(Render("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").ok());
}

TEST(JinjaFilters, Strings) {
  EXPECT_EQ(R("[{{ '  x \u3000' | trim }}]|{{ 'ab' | upper }}|{{ 'hello world' | title }}|{{ 'abc' "
              "| length }}"),
            "[x]|AB|Hello World|3");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a-b-c'.split('-', 1) }}"),
            "[\"a\", \"b\", \"\", \"c\"]|[\"a\", \"b\"]|[\"a\", \"b-c\"]");
  // The reference ignores strip()'s argument and trims whitespace.
  EXPECT_EQ(R("[{{ '\\n x\\n'.strip('\\n') }}][{{ '\\n x'.lstrip('\\n') }}][{{ 'x "
              "\\n'.rstrip('\\n') }}]"),
            "[x][x][x]");
  EXPECT_EQ(R("{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'hello' | "
              "replace('l', 'L') }}"),
            "truetrueheLLo");
  EXPECT_EQ(R("{{ 'x\\ny' | indent(2, true) }}|{{ '12ab' | int }}|{{ 'x' | int(7) }}"),
            "  x\n  y|12|7");
}

TEST(JinjaFilters, Collections) {
  EXPECT_EQ(R("{{ [3, 1, 2] | sort | join(',') }}|{{ [1, 2] | reverse | list }}|{{ [1, 1, 2] | "
              "unique | length }}"),
            "1,2,3|[2, 1]|2");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | dictsort }}|{{ {'a': 1} | items }}|{{ {'a': 1} | length }}"),
            "[[\"a\", 2], [\"b\", 1]]|[[\"a\", 1]]|1");
  EXPECT_EQ(R("{{ [{'n': 'x', 'ok': true}, {'n': 'y'}] | selectattr('ok') | map(attribute='n') | "
              "join }}"),
            "x");
  EXPECT_EQ(R("{{ missing | default('d') }}|{{ '' | default('e', true) }}"), "d|e");
}

TEST(JinjaFilters, ToJson) {
  const Json ctx = {{"v", {{"b", 1}, {"a", {1, 2.5, "é", nullptr, true}}}}};
  EXPECT_EQ(R("{{ v | tojson }}", ctx), "{\"b\": 1, \"a\": [1, 2.5, \"é\", null, true]}");
  EXPECT_EQ(
      R("{{ v | tojson(indent=2) }}", ctx),
      "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2.5,\n    \"é\",\n    null,\n    true\n  ]\n}");
  EXPECT_EQ(R("{{ v | tojson(separators=(',', ':'), sort_keys=true) }}", ctx),
            "{\"a\":[1,2.5,\"é\",null,true],\"b\":1}");
  EXPECT_EQ(R("{{ 'é😀\\n' | tojson(ensure_ascii=true) }}"), "\"\\u00e9\\ud83d\\ude00\\n\"");
  // JSON numbers: integral floats are integers (JSON.parse), 2.5 stays.
  EXPECT_EQ(R("{{ x }}|{{ y }}", {{"x", 2.0}, {"y", 2.5}}), "2|2.5");
}

TEST(JinjaTests, Builtins) {
  EXPECT_EQ(
      R("{{ x is defined }}{{ y is defined }}{{ x is string }}{{ n is none }}{{ n is not none }}",
        {{"x", "s"}, {"n", nullptr}}),
      "truefalsetruetruefalse");
  EXPECT_EQ(R("{{ [1] is iterable }}{{ {} is mapping }}{{ 3 is odd }}{{ 1.5 is number }}{{ 1 is "
              "integer }}"),
            "truetruetruetruetrue");
}

TEST(JinjaWhitespace, Control) {
  EXPECT_EQ(R("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(R("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(R("a  {#- note -#}  c"), "ac");
}

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
  // lstrip_blocks and trim_blocks are on (as in transformers.js): the
  // indentation before a block tag and the newline after it go.
  EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\ny"), "  x\ny");
  // Not for expressions.
  EXPECT_EQ(R("  {{ 1 }}\nz"), "  1\nz");
  // One trailing newline of the template is dropped.
  EXPECT_EQ(R("x\n\n"), "x\n");
  // The transformers {% generation %} tag renders nothing.
  EXPECT_EQ(R("a {% generation %}b{% endgeneration %} c"), "a b c");
}

TEST(JinjaErrors, SyntaxErrorsNameLineAndColumn) {
  absl::StatusOr<JinjaTemplate> t =
      JinjaTemplate::Parse("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("line 3, column"));

  t = JinjaTemplate::Parse("ok\n  {% for x in xs %}{{ x }}");
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("line 2, column 3"));
  EXPECT_THAT(t.status().message(), HasSubstr("endfor"));

  t = JinjaTemplate::Parse("{{ 'unterminated }}");
  EXPECT_FALSE(t.ok());
  t = JinjaTemplate::Parse("{{ a ! b }}");
  EXPECT_FALSE(t.ok());
}

TEST(JinjaErrors, UnsupportedSyntaxIsAnError) {
  for (const char* source :
       {"{% filter upper %}x{% endfilter %}", "{% call m() %}x{% endcall %}", "{{ f(*args) }}",
        "{{ f(**kw) }}", "{{ x is divisibleby(3) }}", "{% raw %}x{% endraw %}"}) {
    absl::StatusOr<JinjaTemplate> t = JinjaTemplate::Parse(source);
    ASSERT_FALSE(t.ok()) << source;
    EXPECT_THAT(t.status().message(), HasSubstr("line 1, column")) << source;
  }
}

TEST(JinjaErrors, RenderErrorsNameTheLine) {
  absl::StatusOr<std::string> out =
      Render("a\nb\n{% if true %}\n  {{ raise_exception('roles must alternate') }}\n{% endif %}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(out.status().message(), HasSubstr("line 4, column 6"));
  EXPECT_THAT(out.status().message(), HasSubstr("roles must alternate"));

  out = Render("{{ missing + 1 }}");
  EXPECT_FALSE(out.ok());
  out = Render("{{ 1 | trim }}");
  EXPECT_FALSE(out.ok());
  out = Render("{% for x in 5 %}{% endfor %}");
  EXPECT_FALSE(out.ok());
}

TEST(JinjaErrors, ContextCannotRedefineBuiltins) {
  EXPECT_FALSE(Render("{{ 1 }}", {{"range", 1}}).ok());
  EXPECT_FALSE(Render("{{ 1 }}", {{"true", 1}}).ok());
}

void ExpectExhausted(const std::string& source, const JinjaLimits& limits = {}) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> out = Render(source, Json::object(), limits);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok()) << source;
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted)
      << source << ": " << out.status();
  EXPECT_LT(seconds, 30) << source;
}

TEST(JinjaLimits, HostileTemplatesFailInsteadOfHanging) {
  // Unbounded loops.
  ExpectExhausted(
      "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}");
  ExpectExhausted("{{ range(1000000000) | length }}");
  // Unbounded recursion.
  ExpectExhausted("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  // Exponential string growth.
  ExpectExhausted(
      "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% "
      "endfor %}");
  // Deeply nested values.
  ExpectExhausted(
      "{% set ns = namespace(v=[]) %}{% for i in range(10000) %}{% set ns.v = [ns.v] %}{% endfor "
      "%}");
  // Deeply nested syntax.
  std::string nested = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  absl::StatusOr<JinjaTemplate> t = JinjaTemplate::Parse(nested);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  t = JinjaTemplate::Parse(chain + " }}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  // A namespace that contains itself: printing it is bounded, and the cycle
  // is freed after the render.
  ExpectExhausted("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}");
  // A small step budget.
  JinjaLimits small;
  small.max_steps = 1000;
  ExpectExhausted("{% for i in range(10000) %}{{ i }}{% endfor %}", small);
}

// --- ChatTemplate ------------------------------------------------------------

// Gemma-3-like: alternating roles are enforced with raise_exception.
constexpr char kAlternating[] =
    "{{ bos_token }}{%- for message in messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate') }}{%- endif -%}"
    "<{{ message['role'] }}>{{ message['content'] | trim }}{{ eos_token }}\n"
    "{%- endfor -%}{%- if add_generation_prompt -%}<assistant>{%- endif -%}";

class ChatTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("qatk_chat_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(ChatTemplateTest, FromTokenizerConfigString) {
  const Json config = {{"bos_token", "<s>"},
                       {"eos_token", {{"__type", "AddedToken"}, {"content", "</s>"}}},
                       {"pad_token", nullptr},
                       {"chat_template", kAlternating}};
  absl::StatusOr<ChatTemplate> t =
      ChatTemplate::FromTokenizerConfig(Write("tokenizer_config.json", config.dump()));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->special_tokens(), Json({{"bos_token", "<s>"}, {"eos_token", "</s>"}}));
  absl::StatusOr<std::string> out =
      t->Render({{"user", " hi "}, {"assistant", "hello"}, {"user", "bye"}}, true);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "<s><user>hi</s><assistant>hello</s><user>bye</s><assistant>");
  out = t->Render({{"user", "a"}, {"user", "b"}}, false);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("Conversation roles must alternate"));
  // Extra variables override the special tokens.
  out = t->Render({{"user", "a"}}, false, {{"eos_token", "<E>"}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<s><user>a<E>");
}

TEST_F(ChatTemplateTest, FromTokenizerConfigNamedList) {
  const Json config = {
      {"eos_token", "<eos>"},
      {"chat_template",
       {{{"name", "tool_use"}, {"template", "tools"}},
        {{"name", "default"}, {"template", "{{ messages | length }}{{ eos_token }}"}}}}};
  absl::StatusOr<ChatTemplate> t =
      ChatTemplate::FromTokenizerConfig(Write("tokenizer_config.json", config.dump()));
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::string> out = t->Render({{"user", "x"}}, false);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "1<eos>");
}

TEST_F(ChatTemplateTest, ChatTemplateJinjaFile) {
  const std::string config = Write("tokenizer_config.json", Json({{"bos_token", "<B>"}}).dump());
  Write("chat_template.jinja",
        "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}\n{% endfor %}\n");
  absl::StatusOr<ChatTemplate> t = ChatTemplate::FromTokenizerConfig(config);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::string> out = t->Render({{"user", "q"}, {"assistant", "a"}}, false);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "<B>user:q\nassistant:a\n");

  t = ChatTemplate::FromJinjaFile((dir_ / "chat_template.jinja").string());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->Render({{"user", "q"}}, false), "user:q\n");
}

TEST_F(ChatTemplateTest, ConfigErrors) {
  EXPECT_EQ(ChatTemplate::FromTokenizerConfig((dir_ / "missing.json").string()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(ChatTemplate::FromTokenizerConfig(Write("a.json", "{not json")).ok());
  EXPECT_EQ(ChatTemplate::FromTokenizerConfig(Write("b.json", "{}")).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<ChatTemplate> bad = ChatTemplate::FromTokenizerConfig(
      Write("c.json", Json({{"chat_template", "x\n{% if %}"}}).dump()));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("line 2"));
}

TEST(ChatMessage, FieldsAndToolCalls) {
  absl::StatusOr<Message> m = Message::FromJson(Json::parse(
      R"({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]})"));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->role, "assistant");
  EXPECT_TRUE(m->fields.contains("tool_calls"));
  absl::StatusOr<ChatTemplate> t = ChatTemplate::FromSource(
      "{% for m in messages %}{% if m.tool_calls %}{{ m.tool_calls[0].function.name }}{% endif %}"
      "{{ m | tojson }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->Render({*m}, false),
            "f{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"function\": "
            "{\"name\": \"f\"}}]}");
  EXPECT_FALSE(Message::FromJson(Json::parse(R"({"content": "no role"})")).ok());
}

TEST(ChatTemplateFile, ToolsTemplateRenders) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::FromJinjaFile(
      std::string(QATK_SOURCE_DIR) + "/tests/formats/testdata/chat/tools_template.jinja");
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::string> out =
      t->Render({{"system", "sys"}, {"user", "hi"}}, true, {{"date_string", "01 Jan 2025"}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 01 Jan 2025\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            "hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

}  // namespace
}  // namespace qatk::chat
