# Writes snippets.jsonl: engine-level cases that run_chat_ref.sh renders with
# both qatk_render_chat and @huggingface/jinja and compares byte for byte.
import json
cases = []
def c(t, ctx=None):
    cases.append((t, ctx or {}))
# whitespace control and preprocessing
for t in ["a  {%- if true -%}  b  {%- endif -%}  c", "  {% if true %}\n  x\n  {% endif %}\ny\n",
          "{{- ' x ' -}}", "a {# c #}\nb", "a  {#- c -#}  b", "a\n{% set x = 1 %}\nb", "line\n  {{ 1 }}  \nz",
          "x\n", "x\n\n", "\t{% if true %}y{% endif %}", "a {% generation %} b {% endgeneration %} c",
          "a {%- generation -%} b {%- endgeneration -%} c", "a\n  {%- generation %}\n b", "  {#x#}\n  {{ 1 }}",
          "{% if true %}\n\n{% endif %}", "{%- if true %}  a  {% endif -%}  ", "a-}\nb", "{{ 1 }}\n{{ 2 }}\n",
          "{%- for i in range(3) -%}\n  {{ i }},\n{%- endfor %}", "{% for i in range(2) %}\n  {{ i }}\n{% endfor %}",
          "x \u3000{%- if true %}y{% endif %}", "{{ 'a' }}{{- '  b' }}", "{% if true -%}\n\u00a0 z{%- endif %}",
          "{# only comment #}", "{#- -#}", "{{ 'x' -}}   \n\n  y", "\r\n  {% if true %}r{% endif %}"]:
    c(t)
# literals and arithmetic
for e in ["1", "-1", "1.5", "-0.5", "1.0", "-0.0", "2 ** 10", "2 ** -1", "2 ** 0.5", "7 // 2", "-7 // 2", "7 % 3", "-7 % 3",
          "7 / 2", "1 + 1.0", "3 - 1.5", "2 * 3", "2.0 * 3", "0.1 + 0.2", "1 / 3", "1 / 0", "1 // 0", "1 % 0", "10 ** 21",
          "10 ** 20", "12345678901234567890", "0.000001", "0.0000001 * 1", "1e3", "'a' ~ 1 ~ 1.0 ~ true", "'a' + 1.0",
          "1 + 'a'", "[1, 2] ~ 'x'", "'x' + [1, 2.0, 'a']", "{'a': 1} ~ ''", "none ~ 'a'", "'ab' * 2", "2 < 3", "2.5 >= 2",
          "'a' < 'b'", "-(3)", "+'a'", "- - 2", "not 0", "not not []", "true + 1", "true ** 2", "0 ** -1", "(-8) ** 0.5",
          "(1, 2)", "[(1, 2)]", "[1, (2, 3)] | length", "{'a': (1, 2)}", "(1)", "()", "[1, 2,]", "{'a': 1,}"]:
    c("{{ " + e + " }}")
# strings
for e in ["'x'.upper()", "'Hello World'.lower()", "' a b '.strip()", "'\\n\\ta b\\n'.strip('\\n')", "'xxaxx'.lstrip('x')",
          "'a,b,,c'.split(',')", "' a b  c '.split()", "' a b c '.split(none, 1)", "'a-b-c'.split('-', 1)",
          "'a-b-c'.split('-', 0)", "'a-b-c'.split('-', -2)", "'abc'.split('')", "'abc'.startswith(('x', 'a'))",
          "'abc'.endswith('bc')", "'abc'.startswith()", "'hello'.replace('l', 'L')", "'hello'.replace('l', 'L', 1)",
          "'hello' | replace('l', 'L')", "'hello' | replace('l', 'L', count=1)", "'ab'.replace('', '-')",
          "'hello world-foo_bar' | title", "'hello'.title()", "'hELLO' | capitalize", "'x\\ny\\n\\nz' | indent",
          "'x\\ny' | indent(2, true)", "'x\\n\\ny' | indent(width=1, blank=true)", "'  x  ' | trim", "'abc' | length",
          "'日本語' | length", "'😀' | length", "'😀a'.length", "'12abc' | int", "'3.5e2x' | float", "'abc' | int",
          "'abc' | int(7)", "' -12' | int", "'0x1A' | int", "'.5' | float", "'abc' | float(1.5)", "3.7 | int", "-3.7 | int",
          "true | int", "5 | abs", "-5.5 | abs", "2.0 | string", "2 | string", "[1, 2] | string", "'abc'[1]", "'abc'[-1]",
          "'abc'[5]", "'héllo'[1]", "'héllo'[1:3]", "'hello'[::-1]", "'hello'[1:-1]", "'😀é'[::-1]", "'abc' | join('-')",
          "'abc' | list", "'it\\'s' ~ \"\\\"q\\\"\"", "'\\x41\\u00e9\\\\'", "'a' 'b' \"c\"", "'\\ud83d\\ude00'",
          "'abc' | upper | lower", "'Hello' is lower", "'hello' is lower", "'HI' is upper", "'a' in 'cat'",
          "'x' not in 'cat'", "'abc'.foo", "'abc'.foo()", "'\\u3000 x \\u00a0' | trim | length"]:
    c("{{ " + e + " }}")
# arrays and objects
for e in ["[3, 1, 2] | sort", "['b', 'A', 'c'] | sort", "['b', 'A', 'c'] | sort(case_sensitive=true)",
          "[3, 1, 2] | sort(reverse=true)", "[1, 'a'] | sort", "[1, 2, 3] | reverse | join(',')", "[1, 'a', none, true, 2.0] | join('-')",
          "[1, 1, 2, '1', 1.0] | unique | tojson", "[1, 2, 3] | first", "[1, 2, 3] | last", "[] | first", "[1, 2] | length",
          "[1, 2] + [3]", "[1] + 'a'", "1 in [1, 2]", "'1' in [1, 2]", "1.0 in [1]", "[1] in [[1]]", "'k' in {'k': 1}",
          "'x' not in {'k': 1}", "1 in {'1': 1}", "[1, 2][::-1]", "[1, 2, 3, 4][1:3]", "[1, 2, 3, 4][::2]", "[0, 1, 2][5:]",
          "[0, 1, 2][-2:]", "[1, 2, 3][::0]", "[1, 2, 3][none:]", "[1, 2, 3][1.0:]", "[1, 2][5]", "[1, 2][-1]", "[1, 2]['length']",
          "[1, 2].length", "[10, 20].1", "{'a': {'b': 1}}", "{'a': {'b': 1}}.a.b", "{'a': 1}.get('a')", "{'a': 1}.get('b', 'd')",
          "{'a': 1}.get('b')", "{'b': 2, 'a': 1} | items", "{'b': 2, 'a': 1} | dictsort", "{'b': 2, 'a': 1} | dictsort(by='value', reverse=true)",
          "{'a': 1} | length", "{'a': 1}.items()", "{'a': 1}.keys()", "{'a': 1}.values()", "{'items': 5}.items",
          "{1: 2}", "{'a': 1}['a']", "{'a': 1}[0]", "{'a': 1} | tojson", "[] | tojson", "{} | tojson(indent=2)",
          "{'a': 1, 'b': [1, 2.5, 'x', none, true, {}]} | tojson", "{'a': 1, 'b': [1, {'c': []}]} | tojson(indent=2)",
          "{'b': 1, 'a': 2} | tojson(sort_keys=true)", "{'a': [1, 2]} | tojson(separators=(',', ':'))",
          "'é😀\\x7f' | tojson(ensure_ascii=true)", "'é😀\\n\\u0001' | tojson", "1.0 | tojson", "(10 ** 21) | tojson",
          "(1 / 0) | tojson", "none | tojson", "undefined_var | tojson", "[undefined_var]", "[undefined_var] | tojson",
          "(1, 2) | tojson", "[1, 2] | tojson(indent='x')", "{'a': 1} | tojson(indent=2, separators=(', ', ' = '))",
          "[{'n': 'b', 'v': 2}, {'n': 'a', 'v': 1}] | sort(attribute='n') | map(attribute='v') | join",
          "[{'n': 'b', 'x': 2}, {'n': 'a'}] | map(attribute='x', default=0) | list",
          "[{'n': 'b', 'ok': true}, {'n': 'a', 'ok': false}, {'n': 'c'}] | selectattr('ok') | map(attribute='n') | join",
          "[{'n': 'b', 'ok': true}, {'n': 'a', 'ok': false}] | rejectattr('ok') | map(attribute='n') | join",
          "[{'n': 'b'}, {'n': 'a'}] | selectattr('n', 'equalto', 'a') | list", "[{'n': 5}, {'n': 'a'}] | selectattr('n', 'string') | list",
          "[1, 2] | map('x')", "[1, 2] | foo", "{'a': 1} | foo", "5 | length", "none | length", "[[1, 2], [3, 4]] | first | last"]:
    c("{{ " + e + " }}")
# lone UTF-16 surrogates (indexing into an astral character)
for e in ["'é😀'[-1]", "'😀'[0] ~ '😀'[1]", "('😀'[0] ~ '😀'[1]) == '😀'", "'\\ud83d'", "'\\ude00' | tojson",
          "'a😀'[1:] | length", "('😀'[1] ~ 'x') | length", "['😀'[0], '😀'[1]] | join", "'😀'[0] | tojson",
          "'\\ud83d\\ude00' == '😀'", "'😀x'[0] + '😀x'[1:]"]:
    c("{{ " + e + " }}")
# equality and truthiness
for e in ["1 == 1.0", "'1' == 1", "true == 1", "none == undefined_var", "[] == ''", "[1] == [1]", "'a' != 'b'", "0 == false",
          "none == false", "'' == 0", "' 1 ' == 1", "'1.5' == 1.5", "'x' == 0", "[1, 2] == '1,2'", "{} == '[object Map]'",
          "0 or 'x'", "'' and 1", "[] or 'e'", "none or 0", "{} or 'e'", "1 and [1]", "undefined_var or 'u'"]:
    c("{{ " + e + " }}")
c("{% set a = [1] %}{% set b = a %}{{ a == b }}{{ a == [1] }}")
# tests
for v in ["1", "1.5", "'s'", "none", "undefined_var", "true", "[1]", "{'a': 1}", "(1,)", "range", "namespace()"]:
    c("{% set v = " + v + " %}" + "".join("{{ v is %s }}," % t for t in
        ["defined", "undefined", "none", "string", "number", "integer", "boolean", "iterable", "mapping", "sequence",
         "callable", "true", "false", "not none"]))
for e in ["3 is odd", "4 is even", "3.5 is odd", "'a' is odd", "1 is equalto", "1 is foo", "x is divisibleby(3)"]:
    c("{{ " + e + " }}")
# undefined handling
for t in ["{{ undefined_var }}", "{{ undefined_var.attr }}", "{{ undefined_var.attr.deeper }}", "{{ none.attr }}", "{{ 5.attr }}",
          "{{ undefined_var | default('d') }}", "{{ undefined_var | default }}", "{{ none | default('d') }}",
          "{{ '' | default('d', true) }}", "{{ 0 | default('d', boolean=true) }}", "{{ undefined_var + 1 }}",
          "{{ 'a' in undefined_var }}", "{{ 'a' not in undefined_var }}", "{{ undefined_var in [1] }}", "{{ undefined_var[0] }}",
          "{{ undefined_var['a'] }}", "{{ undefined_var() }}", "{% if undefined_var %}y{% else %}n{% endif %}",
          "{% for x in undefined_var %}{{ x }}{% endfor %}", "{{ undefined_var | length }}", "{{ undefined_var | trim }}",
          "{{ none }}", "{{ [none] }}", "{{ none + 1 }}", "{{ none == none }}", "{{ not undefined_var }}", "{{ -undefined_var }}"]:
    c(t)
# loops
for t in ["{% for x in [1, 2, 3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
          "{% for x in ['a', 'b', 'c'] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.previtem is defined }};{% endfor %}",
          "{% for x in [] %}a{% else %}empty{% endfor %}", "{% for x in [1, 2, 3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
          "{% for x in [1, 2, 3] %}{{ x }}{% if x == 2 %}{% continue %}{% endif %}.{% endfor %}",
          "{% for x in [1] %}a{% continue %}{% else %}else{% endfor %}", "{% for x in [1, 2] %}{% break %}{% else %}else{% endfor %}",
          "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", "{% for a, b in [[1, 2, 3]] %}{{ a }}{% endfor %}",
          "{% for a, b in [(1, 2)] %}{{ a }}{% endfor %}", "{% for x in [1, 2, 3] if x > 1 %}{{ x }}{{ loop.index }}{% endfor %}",
          "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}", "{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
          "{% for x in 'abc' %}{{ x }}{% endfor %}", "{% for x in 5 %}{% endfor %}", "{% for x in namespace(a=1) %}{% endfor %}",
          "{% set c = 0 %}{% for x in [1, 2] %}{% set c = c + x %}{{ c }}{% endfor %}{{ c }}",
          "{% set ns = namespace(c=0) %}{% for x in [1, 2] %}{% set ns.c = ns.c + x %}{% endfor %}{{ ns.c }}",
          "{% for i in [1, 2] %}{% for j in [3, 4] %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }};{% endfor %}",
          "{% for x in [1, 2] %}{% set y = x * 10 %}{% endfor %}{{ y }}", "{% for i in [1, 2] %}{% if loop.first %}f{% endif %}{{ i }}{% endfor %}",
          "{% break %}", "{% for x in [1] %}{{ loop }}{% endfor %}", "{% for x in range(3) %}{{ x }}{% endfor %}",
          "{{ range(1, 10, 3) }}", "{{ range(5, 0, -2) }}", "{{ range(0) }}", "{{ range(3, step=1) }}", "{{ range(1, 2, 0) }}"]:
    c(t)
# set, macros, namespaces, ternaries
for t in ["{% set x %}abc {{ 1 }}{% endset %}[{{ x }}]", "{% set a, b = [1, 2] %}{{ a }}{{ b }}", "{% set a, b = 1, 2 %}{{ a }}{{ b }}",
          "{% set a, b = [1] %}", "{% set x = 1, 2 %}{{ x | length }}", "{% set ns = namespace(a=1) %}{% set ns.b = [ns.a] %}{{ ns.b }}{{ ns }}",
          "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}", "{% set ns = namespace([['a', 1]]) %}{{ ns.a }}",
          "{% set d = {'a': 1} %}{% set d.a = 2 %}", "{% set ns = namespace() %}{{ ns.missing }}{{ ns | tojson }}",
          "{{ namespace(a=1).a }}", "{% set ns = namespace(a=1) %}{{ ns['a'] }}{{ ns.get }}",
          "{% macro m(a, b=2) %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(b=5, a=4) }}",
          "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(c=1) }}",
          "{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
          "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
          "{% macro show() %}{{ outer }}{% endmacro %}{% set outer = 'o' %}{{ show() }}",
          "{% macro m(a, a) %}{% endmacro %}", "{% macro m(a=1, b) %}{% endmacro %}", "{{ m(a=1, 2) }}",
          "{{ 'y' if true else 'n' }}{{ 'y' if false else 'n' }}{{ 'y' if false }}|{{ 1 if false else 2 if false else 3 }}",
          "{{ raise_exception('boom') }}", "{{ raise_exception() }}", "{{ strftime_now('%Y') | length }}",
          "{{ true }}{{ True }}{{ False }}{{ None }}{{ none is none }}", "{{ 'x' | safe }}", "{{ [1, 2] | list }}",
          "{{ {'a': 1} | items | list }}"]:
    c(t)
# syntax errors
for t in ["{% if %}", "{{ 1 + }}", "{% endfor %}", "{% for x in y %}", "{{ 'abc }}", "{{ a | }}", "{% if true %}", "{{ }}",
          "{% foo %}", "{{ a.b.(c) }}", "{{ [1 }}", "{{ 1 ! 2 }}", "{% set %}", "{% for 1 in x %}{% endfor %}", "{# unclosed",
          "{{ 'a\\q' }}", "{{ f(**k) }}", "{{ f(*k) }}", "{{ x[] }}", "{{ x[1:2:3:4] }}",
          "-{{ 1 }}", "{{ 1 }", "{% if true %}{% elif %}{% endif %}", "{% else %}", "{{ 'a' is }}", "{{ a.1.5 }}"]:
    c(t)
# context values
ctx = {"s": "str", "i": 3, "f": 2.5, "f2": 2.0, "big": 12345678901234567890, "neg": -4, "n": None, "b": False,
       "arr": [1, "two", 3.5, None, True, {"k": "v"}], "obj": {"b": 1, "2": 2, "a": 3, "1": 4, "01": 5},
       "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}], "uni": "é😀\u3000"}
for t in ["{{ s }}{{ i }}{{ f }}{{ f2 }}{{ big }}{{ neg }}{{ n }}{{ b }}", "{{ arr }}", "{{ arr | tojson }}", "{{ obj }}",
          "{% for k in obj %}{{ k }},{% endfor %}", "{{ msgs[1].content is none }}{{ msgs[0]['role'] }}{{ msgs | length }}",
          "{{ uni | length }}{{ uni | trim }}{{ uni | tojson }}", "{{ f2 is integer }}{{ f is float }}", "{{ f2 ~ f }}",
          "{{ arr[1:] }}", "{{ obj.get('a') }}{{ obj['1'] }}{{ obj.items() | length }}", "{{ messages }}"]:
    c(t, ctx)
c("{{ x }}", {"true": 1})
c("{{ x }}", {"namespace": 1})
with open("snippets.jsonl", "w") as out:
    for k, (t, ctx) in enumerate(cases):
        out.write(json.dumps({"name": "case%03d" % k, "template": t, "context": ctx}, ensure_ascii=False) + "\n")
print(len(cases))
