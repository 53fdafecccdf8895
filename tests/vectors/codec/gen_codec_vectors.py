#!/usr/bin/env python3
"""Golden Tensor.buffer vectors for the Hivemind codecs (layouts in doc/ml-codec.md, after
hivemind/compression/*.py at 213bff98 and bitsandbytes 0.41.1).

An independent pure-Python implementation (no numpy/torch here): float32 arithmetic is
emulated by rounding every operation through struct.pack('<f'), fp16 uses struct 'e'
(round to nearest even). It follows hivemind's algorithms, and, where they leave
precision to torch, the choices documented in doc/ml-codec.md (sums in double, then rounded).
Writes codec_vectors.h next to this script:  python3 gen_codec_vectors.py > codec_vectors.h
"""
import math
import struct


def f32(v):
    return struct.unpack('<f', struct.pack('<f', v))[0]


def f32b(vals):
    return struct.pack('<%df' % len(vals), *vals)


def f16b(vals):
    return struct.pack('<%de' % len(vals), *vals)


def i64(v):
    return struct.pack('<q', v)


def lcg_floats(n, seed, scale):
    out, s = [], seed
    for _ in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(f32(((s >> 33) % 200001 - 100000) / 100000.0 * scale))
    return out


def clamp16(v):
    return 65504.0 if v > 65504.0 else -65504.0 if v < -65504.0 else v


def meanstd(x, d):
    rows = len(x) // d
    q, means, stds = [], [], []
    sd = f32(math.sqrt(d))
    for r in range(rows):
        row = x[r * d:(r + 1) * d]
        mean = f32(sum(row) / d)
        ss = sum(f32(v - mean) ** 2 for v in row)
        std = f32(f32(math.sqrt(ss)) / sd)  # norm / math.sqrt(d): a true division
        std = max(std, f32(1.1920929e-07))
        q += [clamp16(f32(f32(v - mean) / std)) for v in row]
        means.append(mean)
        stds.append(std)
    return f16b(q) + f32b(means) + f32b(stds)


def codebook(x, idx):
    sums, cnt = [0.0] * 256, [0] * 256
    for v, i in zip(x, idx):
        sums[i] += v
        cnt[i] += 1
    return i64(256) + f32b([f32(sums[i] / cnt[i]) if cnt[i] else 0.0 for i in range(256)])


def uniform(x):
    n = len(x)
    shift = f32(sum(x) / n)
    ss = sum(f32(v - shift) ** 2 for v in x)
    std = f32(f32(math.sqrt(ss)) / f32(math.sqrt(n - 1)))
    scale = f32(f32(6.0 * std) / 256.0)
    inv = f32(1.0 / scale)
    idx = []
    for v in x:
        t = f32(f32(v - shift) * inv)
        t = max(-200.0, min(200.0, t))
        idx.append(int(max(0, min(255, round(t) + 128))))  # round(): ties to even
    return codebook(x, idx) + bytes(idx)


def np_quantiles(a):  # numpy.quantile(sorted float32 a, linspace(0,1,257,float32)), linear
    m, out = len(a), []
    for j in range(257):
        p = f32(j / 256.0)
        vi = f32(f32(f32(m * p) + f32(1.0 - p)) - 1.0)
        if vi >= m - 1:
            out.append(a[m - 1])
            continue
        lo = int(math.floor(vi))
        g = f32(vi - lo)
        diff = f32(a[lo + 1] - a[lo])
        out.append(f32(a[lo + 1] - f32(diff * f32(1.0 - g))) if g >= 0.5 else f32(a[lo] + f32(diff * g)))
    return out


def quantile(x):  # single chunk (numel <= 1e5): quantile of the chunk's quantiles
    part = np_quantiles(sorted(x))
    borders = np_quantiles(sorted(part))[1:-1]
    idx = [min(255, sum(1 for b in borders if b < v)) for v in x]  # bucketize(right=False)
    return codebook(x, idx) + bytes(idx)


def blockwise(x, code):
    n = len(x)
    nb = (n + 4095) // 4096
    absmax, q = [], []
    for b in range(nb):
        blk = x[b * 4096:(b + 1) * 4096]
        am = max(abs(v) for v in blk)
        absmax.append(am)
        for v in blk:
            y = f32(v / am)
            lo = max(i for i in range(256) if code[i] <= y)  # left index (binary search)
            if lo < 255 and f32(abs(f32(y - code[lo + 1]))) < f32(abs(f32(y - code[lo]))):
                lo += 1
            q.append(lo)
    return i64(nb) + i64(256) + f32b(absmax) + f32b(code) + bytes(q)


def c_bytes(name, b):
    s = ', '.join('0x%02x' % c for c in b)
    lines, line = [], ''
    for tok in s.split(' '):
        if len(line) + len(tok) > 95:
            lines.append(line.rstrip())
            line = ''
        line += tok + ' '
    lines.append(line.rstrip())
    return 'static const uint8_t %s[%d] = {\n\t%s\n};\n' % (name, len(b), '\n\t'.join(lines))


def main():
    code_hex = open(__file__.rsplit('/', 1)[0] + '/blockwise_code.hex').read().split()
    code = list(struct.unpack('<256f', bytes.fromhex(''.join(code_hex))))

    small = [1.0, -2.0, 0.5]
    f16in = [1.0, -2.0, 0.5, 70000.0, -1e9, 1e-8, 65519.0, 3.14159265, 2.0 ** -24, -0.0]
    ms_in = [1.0, 3.0, -1.0, -1.0]
    uni_in = lcg_floats(200, 1, 3.0)
    qua_in = lcg_floats(300, 2, 1.0)
    bw_in = lcg_floats(5000, 3, 10.0)
    bw_in[17] = f32(-25.0)  # block 0 absmax from a negative value
    vecs = [
        ('none_f32', small, f32b(small)),
        ('none_bf16', small, bytes.fromhex('803f00c0003f')),
        ('float16', f16in, f16b([clamp16(v) for v in f16in])),
        ('meanstd', ms_in, meanstd(ms_in, 2)),
        ('uniform', uni_in, uniform(uni_in)),
        ('quantile', qua_in, quantile(qua_in)),
        ('blockwise', bw_in, blockwise(bw_in, code)),
    ]
    print('/* Generated by tests/vectors/codec/gen_codec_vectors.py; do not edit. */')
    print('#include <stdint.h>')
    for name, x, out in vecs:
        print(c_bytes('vec_%s_in' % name, f32b(x)))
        print(c_bytes('vec_%s_out' % name, out))


main()
