#!/usr/bin/env python3
"""Writes tests/vectors/assess_reference.txt: NIST SP 800-90B estimates of the
fixed data sets that tests/assess_reference.rs generates (the same splitmix64
streams, rebuilt here). Needs the PyPI package sp800-90b 0.1.1 (a binding of
NIST's SP800-90B_EntropyAssessment C++ code); the tests do not: they read the
numbers this script wrote.

    python3 -m venv venv && venv/bin/pip install pybind11 setuptools wheel
    apt-get install libbz2-dev libdivsufsort-dev
    venv/bin/pip install --no-build-isolation sp800-90b==0.1.1
    venv/bin/python tests/vectors/assess_reference.py \
        | grep -E '^(#|[a-z])' > tests/vectors/assess_reference.txt
"""
import contextlib, io, os, sys
import sp800_90b

M = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)


def iid(n):
    g = SplitMix64(1)
    return bytes(g.next() >> 56 for _ in range(n)), 8


def biased_coin(n):
    g = SplitMix64(2)
    return bytes(1 if (g.next() >> 32) < 858993459 else 0 for _ in range(n)), 1


def nibble(n):
    g = SplitMix64(3)
    return bytes((((g.next() >> 60) & 0xF) << 2) | 0x41 for _ in range(n)), 8


def periodic(n):
    g = SplitMix64(4)
    pattern = [g.next() >> 56 for _ in range(17)]
    return bytes(pattern[i % 17] for i in range(n)), 8


def markov(n):
    g = SplitMix64(5)
    s, out = 0, []
    for _ in range(n):
        z = g.next()
        if (z >> 32) >= 3221225472:  # leave the state with probability 1/4
            s = z >> 61
        out.append(s)
    return bytes(out), 3


SETS = [("iid", iid, 100_000), ("biased-coin", biased_coin, 200_000),
        ("nibble", nibble, 100_000), ("periodic", periodic, 100_000),
        ("markov", markov, 100_000)]


def fmt(x):
    return "none" if x < 0 else "%.17g" % x


def run(name, data, bits):
    rows = []
    with contextlib.redirect_stdout(io.StringIO()):
        d = sp800_90b.Data(data, bits)
        rows.append(("original", "most_common", d.h_most_common()))
        if d.is_binary:
            rows.append(("original", "collision", d.h_collision()))
            rows.append(("original", "markov", d.h_markov()))
            rows.append(("original", "compression", d.h_compression()))
        t, l = d.h_t_tuple_and_lrs()
        rows += [("original", "t_tuple", t), ("original", "lrs", l)]
        rows.append(("original", "multi_mcw", d.h_multi_most_common()))
        rows.append(("original", "lag", d.h_lag_prediction()))
        rows.append(("original", "multi_mmc", d.h_multi_markov()))
        rows.append(("original", "lz78y", d.h_lz78y()))
        if not d.is_binary:
            rows.append(("bitstring", "most_common", d.h_bitstring_most_common()))
            rows.append(("bitstring", "collision", d.h_bitstring_collision()))
            rows.append(("bitstring", "markov", d.h_bitstring_markov()))
            rows.append(("bitstring", "compression", d.h_bitstring_compression()))
            t, l = d.h_bitstring_t_tuple_and_lrs()
            rows += [("bitstring", "t_tuple", t), ("bitstring", "lrs", l)]
            rows.append(("bitstring", "multi_mcw", d.h_bitstring_multi_most_common()))
            rows.append(("bitstring", "lag", d.h_bitstring_lag_prediction()))
            rows.append(("bitstring", "multi_mmc", d.h_bitstring_multi_markov()))
            rows.append(("bitstring", "lz78y", d.h_bitstring_lz78y()))
        rows.append(("assessed", "min_entropy", d.h_initial()))
    for part, est, v in rows:
        print(f"{name} {bits} {len(data)} {part} {est} {fmt(v)}")


def restart_matrix():
    """The 1000 x 1000 restart matrix of tests/assess_restart.rs: restart i
    (a row) is the top 3 bits of splitmix64 seeded with 1000 + i."""
    rows = []
    for i in range(1000):
        g = SplitMix64(1000 + i)
        rows.append([g.next() >> 61 for _ in range(1000)])
    return rows


def restart():
    """SP 800-90B 3.1.4.2: the 6.3 estimates of the row and column data sets
    (the binding has no restart test; the sanity check's cutoff is not NIST's
    simulation in the crate, so only these estimates are compared)."""
    m = restart_matrix()
    row_data = bytes(v for row in m for v in row)
    col_data = bytes(m[i][j] for j in range(1000) for i in range(1000))
    for name, data in (("restart-rows", row_data), ("restart-cols", col_data)):
        rows = []
        with contextlib.redirect_stdout(io.StringIO()):
            d = sp800_90b.Data(data, 3)
            rows.append(("original", "most_common", d.h_most_common()))
            t, l = d.h_t_tuple_and_lrs()
            rows += [("original", "t_tuple", t), ("original", "lrs", l)]
            rows.append(("original", "multi_mcw", d.h_multi_most_common()))
            rows.append(("original", "lag", d.h_lag_prediction()))
            rows.append(("original", "multi_mmc", d.h_multi_markov()))
            rows.append(("original", "lz78y", d.h_lz78y()))
        for part, est, v in rows:
            print(f"{name} 3 {len(data)} {part} {est} {fmt(v)}", flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--restart"]:
    # Appended to assess_reference.txt:
    # python3 tests/vectors/assess_reference.py --restart | grep -E '^[a-z]' >> assess_reference.txt
    restart()
elif __name__ == "__main__":
    print("# SP 800-90B non-IID estimates, min-entropy bits per sample, of the data sets")
    print("# tests/assess_reference.rs builds (splitmix64 streams; see that file).")
    print("# Tool: PyPI sp800-90b 0.1.1 (pybind11 binding of NIST's")
    print("# SP800-90B_EntropyAssessment C++ code, built with libdivsufsort 2.0.1, g++ 12),")
    print("# command: python3 tests/vectors/assess_reference.py | grep -E '^(#|[a-z])' > assess_reference.txt")
    print("# Columns: set bits_per_sample samples part estimator value ('none': not applicable).")
    for name, f, n in SETS:
        data, bits = f(n)
        run(name, data, bits)
