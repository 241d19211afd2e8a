#!/usr/bin/env python3
"""Checks that llama.cpp's own GGUF loader accepts what qatkit writes.

Runs gguf_ggml_check_writer (a qatkit GGUF writer) and loads the result with
gguf_init_from_file from libggml-base.so (npm node-llama-cpp's prebuilt
llama.cpp): once with no_alloc=true (as llama.cpp's model loader does) to
compare header, metadata and tensor table with the writer's manifest, and
once with no_alloc=false, which makes ggml read every tensor's bytes
(including the padding after the last tensor) so the data can be compared.

Usage: gguf_ggml_check.py WRITER_BINARY [--lib libggml-base.so]
Exits 0 with a SKIP message when the npm package is not installed.
"""
import ctypes
import glob
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77  # ctest SKIP_RETURN_CODE
HERE = os.path.dirname(os.path.abspath(__file__))


class InitParams(ctypes.Structure):
    _fields_ = [('no_alloc', ctypes.c_bool), ('ctx', ctypes.POINTER(ctypes.c_void_p))]


def load(lib_path):
    lib = ctypes.CDLL(lib_path)
    sig = {
        'gguf_init_from_file': (ctypes.c_void_p, [ctypes.c_char_p, InitParams]),
        'gguf_free': (None, [ctypes.c_void_p]),
        'gguf_get_version': (ctypes.c_uint32, [ctypes.c_void_p]),
        'gguf_get_alignment': (ctypes.c_size_t, [ctypes.c_void_p]),
        'gguf_get_data_offset': (ctypes.c_size_t, [ctypes.c_void_p]),
        'gguf_get_n_kv': (ctypes.c_int64, [ctypes.c_void_p]),
        'gguf_get_key': (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_kv_type': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_arr_type': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_arr_n': (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_arr_str': (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t]),
        'gguf_get_val_str': (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_val_data': (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_n_tensors': (ctypes.c_int64, [ctypes.c_void_p]),
        'gguf_get_tensor_name': (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_tensor_type': (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_tensor_offset': (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_tensor_size': (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        'gguf_get_tensor_ne': (ctypes.POINTER(ctypes.c_int64), [ctypes.c_void_p, ctypes.c_int64]),
        'ggml_get_tensor': (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
        'ggml_get_data': (ctypes.c_void_p, [ctypes.c_void_p]),
        'ggml_nbytes': (ctypes.c_size_t, [ctypes.c_void_p]),
        'ggml_free': (None, [ctypes.c_void_p]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


SCALAR_CTYPES = {0: ctypes.c_uint8, 1: ctypes.c_int8, 2: ctypes.c_uint16, 3: ctypes.c_int16,
                 4: ctypes.c_uint32, 5: ctypes.c_int32, 6: ctypes.c_float, 7: ctypes.c_bool,
                 10: ctypes.c_uint64, 11: ctypes.c_int64, 12: ctypes.c_double}


def check_meta(lib, ctx, m, errors):
    def expect(cond, what):
        if not cond:
            errors.append(what)
    expect(lib.gguf_get_version(ctx) == 3, 'version')
    expect(lib.gguf_get_alignment(ctx) == m['alignment'], 'alignment %d' % lib.gguf_get_alignment(ctx))
    expect(lib.gguf_get_data_offset(ctx) == m['data_offset'], 'data offset')
    expect(lib.gguf_get_n_kv(ctx) == len(m['kv']), 'n_kv %d vs %d' % (lib.gguf_get_n_kv(ctx), len(m['kv'])))
    for i, e in enumerate(m['kv'][:lib.gguf_get_n_kv(ctx)]):
        key = lib.gguf_get_key(ctx, i).decode()
        t = lib.gguf_get_kv_type(ctx, i)
        expect(key == e['key'] and t == e['type'], 'kv %d: %s/%d vs %s/%d' % (i, key, t, e['key'], e['type']))
        if t == 9:
            expect(lib.gguf_get_arr_type(ctx, i) == e['elem_type'], key + ' elem type')
            expect(lib.gguf_get_arr_n(ctx, i) == e['n'], key + ' n')
            for j, s in enumerate(e.get('strings', [])):
                expect(lib.gguf_get_arr_str(ctx, i, j).decode() == s, '%s[%d]' % (key, j))
        elif t == 8:
            expect(lib.gguf_get_val_str(ctx, i).decode() == e['string'], key)
        else:
            got = ctypes.cast(lib.gguf_get_val_data(ctx, i), ctypes.POINTER(SCALAR_CTYPES[t]))[0]
            expect(got == e['value'], '%s = %r vs %r' % (key, got, e['value']))
    n = lib.gguf_get_n_tensors(ctx)
    expect(n == len(m['tensors']), 'n_tensors %d' % n)
    for i, e in enumerate(m['tensors'][:n]):
        name = lib.gguf_get_tensor_name(ctx, i).decode()
        ne = lib.gguf_get_tensor_ne(ctx, i)
        want_ne = e['ne'] + [1] * (4 - len(e['ne']))
        expect(name == e['name'], 'tensor %d name %s' % (i, name))
        expect(lib.gguf_get_tensor_type(ctx, i) == e['type'], name + ' type')
        expect(lib.gguf_get_tensor_offset(ctx, i) == e['offset'], name + ' offset')
        expect(lib.gguf_get_tensor_size(ctx, i) == e['nbytes'], name + ' size')
        expect([ne[d] for d in range(4)] == want_ne, name + ' ne')


def check_data(lib, path, m, errors):
    gctx = ctypes.c_void_p()
    ctx = lib.gguf_init_from_file(path.encode(), InitParams(False, ctypes.pointer(gctx)))
    if not ctx:
        errors.append('ggml could not load the tensor data (no_alloc=false)')
        return
    for k, e in enumerate(m['tensors']):
        t = lib.ggml_get_tensor(gctx, e['name'].encode())
        if not t or lib.ggml_nbytes(t) != e['nbytes']:
            errors.append('tensor %s missing in ggml context' % e['name'])
            continue
        got = ctypes.string_at(lib.ggml_get_data(t), e['nbytes'])
        want = bytes((i * 31 + k * 7 + (i >> 8)) & 0xFF for i in range(e['nbytes']))
        if got != want:
            errors.append('tensor %s data differs' % e['name'])
    lib.ggml_free(gctx)
    lib.gguf_free(ctx)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    writer = sys.argv[1]
    lib_path = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == '--lib' else None
    if lib_path is None:
        hits = sorted(glob.glob(os.path.join(HERE, '..', 'interop', 'node_modules', '@node-llama-cpp',
                                             'linux-x64', 'bins', '*', 'libggml-base.so')))
        lib_path = hits[0] if hits else None
    if not lib_path or not os.path.exists(lib_path):
        print('SKIP: libggml-base.so not found (npm ci in tests/interop installs node-llama-cpp)')
        return SKIP
    lib = load(lib_path)
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for alignment in (32, 64, 256):
            path = os.path.join(tmp, 'check_%d.gguf' % alignment)
            subprocess.run([writer, path, str(alignment)], check=True)
            with open(path + '.json') as f:
                m = json.load(f)
            ctx = lib.gguf_init_from_file(path.encode(), InitParams(True, None))
            if not ctx:
                errors.append('alignment %d: gguf_init_from_file rejected the file' % alignment)
                continue
            before = len(errors)
            check_meta(lib, ctx, m, errors)
            lib.gguf_free(ctx)
            check_data(lib, path, m, errors)
            errors[before:] = ['alignment %d: %s' % (alignment, e) for e in errors[before:]]
            print('alignment %d: %d kv, %d tensors checked' % (alignment, len(m['kv']), len(m['tensors'])))
    for e in errors:
        print('MISMATCH:', e)
    print('OK' if not errors else 'FAILED (%d mismatches)' % len(errors))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
