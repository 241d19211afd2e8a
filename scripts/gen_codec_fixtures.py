#!/usr/bin/env python3
"""Writes golden codec fixtures produced by llama.cpp's own reference code.

Loads libggml-base.so from the npm package node-llama-cpp (prebuilt llama.cpp)
and runs ggml's reference quantizers and fp16/bf16 conversions on fixed inputs:
pseudo-random blocks from xorshift32 plus hand-picked edge cases. The C++ test
tests/formats/codecs_test.cc reproduces the PRNG and compares our codecs to the
stored bytes, byte for byte.

Usage: python3 scripts/gen_codec_fixtures.py [--lib PATH] [--out DIR]

Fixture file (little-endian), one per type, tests/formats/testdata/<name>.qcf:
  magic "QCF1" | u32 ggml type id | u32 n_values | u32 n_random | u32 seed |
  f32 inputs[n_values] | u32 n_bytes | u8 expected[n_bytes]
The first n_random inputs are Random(seed) (see below); the rest are edge cases.

PRNG (documented so the C++ side can reproduce it): xorshift32 with
  x ^= x << 13; x ^= x >> 17; x ^= x << 5   (mod 2^32), state starts at seed;
each value = float32(((x >> 8) * 2^-23) - 1) * scale, in [-1, 1) * scale, where
scale cycles per block through SCALES (all products rounded to float32).

q8_0_act.qcf holds Q8_0 blocks as llama.cpp's x86 CPU backend quantizes
activations (quantize_row_q8_0 from libggml-cpu-haswell.so: id = 127/amax,
round half to even), which tests/formats/codecs_test.cc checks against
QuantizeBlockQ8_0Act.

fp16_tables.txt holds FNV-1a-64 hashes of ggml's fp16->fp32 outputs for all
65536 halves and of ggml's fp32->fp16 / fp32->bf16 outputs for a sweep of
floats (see Sweep()).
"""
import argparse
import ctypes
import glob
import math
import os
import struct
import sys

SCALES = [1.0, 0.01, 100.0, 3e-5, 1000.0, 6.0e4]


def f32(v):
    return struct.unpack('<f', struct.pack('<f', v))[0]


def bits_f32(u):
    return struct.unpack('<f', struct.pack('<I', u & 0xFFFFFFFF))[0]


def xorshift32(seed):
    x = seed
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        yield x


def random_values(seed, n_blocks, block):
    gen = xorshift32(seed)
    out = []
    for b in range(n_blocks):
        scale = f32(SCALES[b % len(SCALES)])
        for _ in range(block):
            u = next(gen) >> 8
            out.append(f32(f32(u * 2.0 ** -23 - 1.0) * scale))
    return out


def edge_blocks(block):
    """Edge cases for a block codec, each `block` values long."""
    zeros = [0.0] * block
    # Exact ties after scaling: extreme -8 (Q4_0 d = 1), 127 (Q8_0 d = 1), 2 (Q2_0 d = 2).
    ties = [float(k) + 0.5 for k in range(-8, 8)] * (block // 16)
    ties[0] = -8.0
    ties_pos = [-(v) for v in ties]
    ties_q8 = [(k % 255) - 127 + 0.5 for k in range(block)]
    ties_q8[1] = 127.0
    ties_q2 = [(-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, -2.0)[k % 8] for k in range(block)]
    first_pos = [3.0, -3.0] + [0.25 * (k % 7) for k in range(block - 2)]
    first_neg = [-3.0, 3.0] + [0.25 * (k % 7) for k in range(block - 2)]
    neg_ext = [-7.3] + [-(k % 9) * 0.7 for k in range(block - 1)]
    tiny = [1e-40 if k % 3 == 0 else (-3e-41 if k % 3 == 1 else 0.0) for k in range(block)]
    small = [1e-36 * ((k % 5) - 2) for k in range(block)]
    subnormal_half = [6e-8 * ((k % 9) - 4) for k in range(block)]  # fp16 subnormal scales
    huge = [6.0e4 * ((k % 11) - 5) / 5.0 for k in range(block)]
    over = [1.0e6 * ((k % 7) - 3) / 3.0 for k in range(block)]
    over[3] = -7.0e4
    one_nonzero = [0.0] * block
    one_nonzero[block - 1] = -2.5
    blocks = [zeros, ties, ties_pos, ties_q8, ties_q2, first_pos, first_neg, neg_ext, tiny,
              small, subnormal_half, huge, over, one_nonzero]
    return [f32(v) for b in blocks for v in b[:block]]


def scalar_edges():
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, 65504.0, 65519.99, 65520.0, -65520.0, 1e6,
            6.1035156e-05, 6.097555e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08,
            8.940697e-08, 1e-10, 1e-40, -1e-45, 3.14159265, 1.0009765625, 1.00048828125,
            1.000732421875, 1.000244140625, 2049.0, 2051.0, 4097.0, -0.33333334,
            float('inf'), float('-inf')]
    # Exact fp16 ties (half-way between two halves) in the normal and subnormal range.
    for m in range(0, 1024, 37):
        vals.append(1.0 + (2 * m + 1) * 2.0 ** -11)
        vals.append((2 * m + 1) * 2.0 ** -25)
    return [f32(v) for v in vals]


def sweep():
    """Float bit patterns (i * 65521 * 997) mod 2^32 for i in 0..65535, NaNs skipped."""
    out = []
    for i in range(65536):
        u = (i * 65521 * 997) & 0xFFFFFFFF
        if (u & 0x7F800000) == 0x7F800000 and (u & 0x7FFFFF):
            continue
        out.append(u)
    return out


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def find_lib():
    here = os.path.dirname(os.path.abspath(__file__))
    pat = os.path.join(here, '..', 'tests', 'interop', 'node_modules', '@node-llama-cpp',
                       'linux-x64', 'bins', '*', 'libggml-base.so')
    hits = sorted(glob.glob(pat))
    return hits[0] if hits else None


def quantize(lib, fn, xs, block, type_size):
    arr = (ctypes.c_float * len(xs))(*xs)
    out = (ctypes.c_uint8 * (len(xs) // block * type_size))()
    getattr(lib, fn)(arr, out, ctypes.c_int64(len(xs)))
    return bytes(out)


def write_fixture(path, type_id, seed, n_random, xs, expected):
    with open(path, 'wb') as f:
        f.write(b'QCF1')
        f.write(struct.pack('<IIII', type_id, len(xs), n_random, seed))
        f.write(struct.pack('<%df' % len(xs), *xs))
        f.write(struct.pack('<I', len(expected)))
        f.write(expected)
    print('wrote %s (%d values, %d bytes)' % (path, len(xs), os.path.getsize(path)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--lib', default=find_lib())
    ap.add_argument('--out', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                                                  'tests', 'formats', 'testdata'))
    args = ap.parse_args()
    if not args.lib or not os.path.exists(args.lib):
        sys.exit('libggml-base.so not found; run npm ci in tests/interop or pass --lib')
    lib = ctypes.CDLL(args.lib, mode=ctypes.RTLD_GLOBAL)
    lib.ggml_fp32_to_fp16.restype = ctypes.c_uint16
    lib.ggml_fp32_to_fp16.argtypes = [ctypes.c_float]
    lib.ggml_fp16_to_fp32.restype = ctypes.c_float
    lib.ggml_fp16_to_fp32.argtypes = [ctypes.c_uint16]
    lib.ggml_fp32_to_bf16.restype = ctypes.c_uint16
    lib.ggml_fp32_to_bf16.argtypes = [ctypes.c_float]
    os.makedirs(args.out, exist_ok=True)

    # (name, ggml type id, block, type size, ggml function, seed, random blocks)
    codecs = [('q4_0', 2, 32, 18, 'quantize_row_q4_0_ref', 0x12345678, 6),
              ('q8_0', 8, 32, 34, 'quantize_row_q8_0_ref', 0x9E3779B9, 6),
              ('q2_0', 42, 64, 18, 'quantize_row_q2_0_ref', 0x2545F491, 6)]
    for name, tid, block, tsize, fn, seed, nb in codecs:
        rnd = random_values(seed, nb, block)
        xs = rnd + edge_blocks(block)
        write_fixture(os.path.join(args.out, name + '.qcf'), tid, seed, len(rnd), xs,
                      quantize(lib, fn, xs, block, tsize))

    # llama.cpp's x86 activation quantizer (AVX2 build of the CPU backend).
    cpu_lib = os.path.join(os.path.dirname(args.lib), 'libggml-cpu-haswell.so')
    if not os.path.exists(cpu_lib):
        sys.exit('%s not found (needed for q8_0_act.qcf)' % cpu_lib)
    cpu = ctypes.CDLL(cpu_lib)
    seed = 0x51ED270B
    rnd = random_values(seed, 6, 32)
    xs = rnd + edge_blocks(32)
    write_fixture(os.path.join(args.out, 'q8_0_act.qcf'), 8, seed, len(rnd), xs,
                  quantize(cpu, 'quantize_row_q8_0', xs, 32, 34))

    seed = 0x0BADF00D
    rnd = random_values(seed, 2, 32)
    xs = rnd + scalar_edges()
    f16 = b''.join(struct.pack('<H', lib.ggml_fp32_to_fp16(v)) for v in xs)
    write_fixture(os.path.join(args.out, 'f16.qcf'), 1, seed, len(rnd), xs, f16)
    bf16 = b''.join(struct.pack('<H', lib.ggml_fp32_to_bf16(v)) for v in xs)
    write_fixture(os.path.join(args.out, 'bf16.qcf'), 30, seed, len(rnd), xs, bf16)

    h2f = b''.join(struct.pack('<f', lib.ggml_fp16_to_fp32(h)) for h in range(65536))
    sw = sweep()
    f2h = b''.join(struct.pack('<H', lib.ggml_fp32_to_fp16(bits_f32(u))) for u in sw)
    f2b = b''.join(struct.pack('<H', lib.ggml_fp32_to_bf16(bits_f32(u))) for u in sw)
    path = os.path.join(args.out, 'fp16_tables.txt')
    with open(path, 'w') as f:
        f.write('# FNV-1a-64 of ggml outputs; see scripts/gen_codec_fixtures.py\n')
        f.write('fp16_to_fp32_all %016x\n' % fnv1a64(h2f))
        f.write('fp32_to_fp16_sweep %016x %d\n' % (fnv1a64(f2h), len(sw)))
        f.write('fp32_to_bf16_sweep %016x %d\n' % (fnv1a64(f2b), len(sw)))
    print('wrote %s' % path)


if __name__ == '__main__':
    main()
