#!/usr/bin/env python
"""Labelling throughput of `bilstm_kd.teacher.teacher_logits` on SST-2 train sentences, fp32 and int8; prints JSON.

    python tools/bench_label.py --n 10000 [--teacher runs/teacher_sst2] [--threads 1 2] [--data-dir D]

Measures, on the same seeded sample of `--n` train sentences:
  * `naive`: batches of 64 in sample order, each padded to its longest row (the baseline the issue quotes), run on
    the first `--naive-n` sentences only (it is slow);
  * `fp32` and `int8`: `teacher_logits` (length-sorted dynamic padding; int8 = dynamic quantisation of nn.Linear);
  * with a fine-tuned `--teacher`: dev accuracy in fp32 and int8, and the int8 logit difference.
Timings are wall-clock on whatever else the machine is doing: the JSON records the load average before and after.
"""
import argparse, json, os, random, sys, time

import numpy as np
import torch


def naive(teacher, texts, batch_size=64):
    "The baseline: file order, `tokenizer(..., padding=True)` per batch of 64."
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = teacher.tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=128,
                                    return_tensors='pt')
            teacher.model(**enc)


def timed(fn, n):
    t0 = time.perf_counter(); out = fn(); dt = time.perf_counter() - t0
    return out, dict(n=n, seconds=round(dt, 2), per_s=round(n / dt, 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=10000, help='train sentences to label')
    ap.add_argument('--naive-n', type=int, default=2000, help='sentences for the naive baseline')
    ap.add_argument('--teacher', default=None, help='fine-tuned teacher folder (default: packaged MiniLM, fresh head)')
    ap.add_argument('--data-dir', default=None)
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--max-tokens', type=int, default=None)
    ap.add_argument('--threads', type=int, nargs='+', default=[torch.get_num_threads()],
                    help='torch thread counts to compare (each passed as num_threads=)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--skip-naive', action='store_true')
    a = ap.parse_args(argv)
    from bilstm_kd.data import compute_metrics, load_task, texts_of
    from bilstm_kd.teacher import load_teacher, teacher_logits, quantize_int8
    dd = load_task('sst2', a.data_dir, verbose=False)
    train = texts_of(dd['train'])
    texts = random.Random(a.seed).sample(train, min(a.n, len(train)))
    t = load_teacher(a.teacher, task=None if a.teacher else 'sst2')
    lens = [len(x) for x in t.tokenizer(texts, truncation=True)['input_ids']]
    res = dict(task='sst2', n=len(texts), mean_tokens=round(float(np.mean(lens)), 2), teacher=t.path,
               batch_size=a.batch_size, max_tokens=a.max_tokens, torch=torch.__version__, cpus=os.cpu_count(),
               loadavg_before=[round(x, 2) for x in os.getloadavg()], runs=[])
    quant_s = None
    for th in a.threads:
        torch.set_num_threads(th)
        run = dict(threads=th)
        if not a.skip_naive:
            _, run['naive'] = timed(lambda: naive(t, texts[:a.naive_n], a.batch_size), min(a.naive_n, len(texts)))
        z, run['fp32'] = timed(lambda: teacher_logits(t, texts, batch_size=a.batch_size, max_tokens=a.max_tokens,
                                                      num_threads=th, progress=False), len(texts))
        if quant_s is None:
            t0 = time.perf_counter(); t._int8 = (t.fingerprint, quantize_int8(t.model)); quant_s = time.perf_counter() - t0
        q, run['int8'] = timed(lambda: teacher_logits(t, texts, batch_size=a.batch_size, max_tokens=a.max_tokens,
                                                      quantize=True, num_threads=th, progress=False), len(texts))
        d = np.abs(q - z)
        run['int8_vs_fp32_train'] = dict(max_abs_diff=round(float(d.max()), 4), mean_abs_diff=round(float(d.mean()), 4),
                                         argmax_agreement=round(float((q.argmax(1) == z.argmax(1)).mean()), 4))
        res['runs'].append(run)
        print(json.dumps(run), file=sys.stderr, flush=True)
    res['quantize_seconds'] = round(quant_s, 2)
    if a.teacher:
        dev = dd['validation']; y = np.array(dev['label'])
        zf = teacher_logits(t, texts_of(dev), progress=False)
        zq = teacher_logits(t, texts_of(dev), quantize=True, progress=False)
        d = np.abs(zq - zf)
        res['dev'] = dict(n=len(y), fp32=compute_metrics('sst2', y, zf.argmax(1)),
                          int8=compute_metrics('sst2', y, zq.argmax(1)),
                          max_abs_diff=round(float(d.max()), 4), mean_abs_diff=round(float(d.mean()), 4),
                          mean_abs_logit=round(float(np.abs(zf).mean()), 4),
                          argmax_agreement=round(float((zq.argmax(1) == zf.argmax(1)).mean()), 4))
        res['dev']['int8_accuracy_cost'] = round(res['dev']['fp32']['accuracy'] - res['dev']['int8']['accuracy'], 4)
    res['loadavg_after'] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
