#!/usr/bin/env python3
"""Peer side of bench/bench_tokenizer.c: Hugging Face `tokenizers` on the same
text, in the same run.

  tokenizer_peer.py --make-corpus PATH --mb N
      writes N MB of generated text (the generator of
      tests/fixtures/gen_tokenizer_vectors.py, another seed than training)
  tokenizer_peer.py --corpus PATH --fixtures DIR --threads T [--repeat R]
      encodes every line of PATH (no special tokens) with each tokenizer
      under DIR with encode_batch, T Rayon threads (0 = library default),
      and prints one JSON object: per tokenizer the best MB/s over R runs,
      the id count and a checksum of all ids in order
      (h = (h * 1000003 + id + 1) mod 2^64, from h = 0).
"""
import argparse
import json
import os
import sys
import time

NAMES = ['bpe_gpt2', 'bpe_llama3', 'bpe_qwen2', 'bpe_smollm', 'spm', 'wordpiece', 'minilm']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--make-corpus')
    ap.add_argument('--mb', type=float, default=4)
    ap.add_argument('--corpus')
    ap.add_argument('--fixtures')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--repeat', type=int, default=3)
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    if a.make_corpus:
        sys.path.insert(0, os.path.join(here, '..', 'tests', 'fixtures'))
        import gen_tokenizer_vectors as g
        text = g.build_corpus(int(a.mb * 1e6), seed=2)
        with open(a.make_corpus, 'w') as f:
            f.write(text)
        return
    if a.threads > 0:
        os.environ['RAYON_RS_NUM_THREADS'] = str(a.threads)  # read when the pool starts
        os.environ['RAYON_NUM_THREADS'] = str(a.threads)
    import tokenizers
    from tokenizers import Tokenizer
    with open(a.corpus, 'rb') as f:
        data = f.read()
    lines = data.decode('utf-8').split('\n')
    nbytes = len(data)
    out = {'version': tokenizers.__version__, 'threads': a.threads, 'bytes': nbytes, 'lines': len(lines),
           'tokenizers': {}}
    for name in NAMES:
        tok = Tokenizer.from_file(os.path.join(a.fixtures, name, 'tokenizer.json'))
        tok.no_truncation()
        tok.no_padding()
        best = None
        encs = None
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            encs = tok.encode_batch(lines, add_special_tokens=False)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        h, n = 0, 0
        for e in encs:
            for i in e.ids:
                h = (h * 1000003 + i + 1) & 0xFFFFFFFFFFFFFFFF
            n += len(e.ids)
        out['tokenizers'][name] = {'mb_s': nbytes / best / 1e6, 'seconds': best, 'ids': n, 'checksum': '%016x' % h}
    json.dump(out, sys.stdout)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
