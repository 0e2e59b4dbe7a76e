#!/usr/bin/env python3
"""Presidio vs Tollgate on the same files.

Presidio runs with its predefined *pattern* recognizers only (email, phone,
credit card, IBAN, US SSN, IP), called directly: no NLP engine, no spaCy model.
That is Presidio's fastest and most comparable configuration; its NER-based
recognizers (names, locations) have no Tollgate counterpart.

Inputs (written by `cargo bench -p gateway-core --bench masking -- --export DIR`):
  DIR/throughput.jsonl        generated corpus, one {"text"} per line
  DIR/tollgate_findings.jsonl Tollgate's findings on the labelled corpus
  DIR/tollgate.json           Tollgate's throughput on throughput.jsonl
and the labelled corpus itself (tests/corpus/mask/*.jsonl).

Matching (both tools alike): a finding is a true positive when it overlaps a
label of the same type; every other finding is a false positive (on
distractor lines, any finding is one).
"""
import argparse
import glob
import json
import logging
import os
import time

logging.getLogger("tldextract").setLevel(logging.CRITICAL)
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

PRESIDIO_TO_TOLLGATE = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
}
CHECKSUM_TYPES = {"CREDIT_CARD", "IBAN"}


def recognizers():
    return [
        (EmailRecognizer(), ["EMAIL_ADDRESS"]),
        (PhoneRecognizer(), ["PHONE_NUMBER"]),
        (CreditCardRecognizer(), ["CREDIT_CARD"]),
        (IbanRecognizer(), ["IBAN_CODE"]),
        (UsSsnRecognizer(), ["US_SSN"]),
        (IpRecognizer(), ["IP_ADDRESS"]),
    ]


def presidio_find(recs, text):
    out = []
    for rec, ents in recs:
        for r in rec.analyze(text, ents, None) or []:
            if r.score > 0:
                out.append((PRESIDIO_TO_TOLLGATE[r.entity_type], r.start, r.end))
    return out


def load_corpus(corpus_dir):
    cases = []
    for path in sorted(glob.glob(os.path.join(corpus_dir, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                c = json.loads(line)
                spans, used = [], set()
                for lab in c["expect"]:
                    start = -1
                    while True:
                        start = c["text"].find(lab["value"], start + 1)
                        if start < 0 or start not in used:
                            break
                    used.add(start)
                    spans.append((lab["type"], start, start + len(lab["value"])))
                cases.append((c["text"], spans))
    return cases


def score(cases, findings_per_case, types):
    s = {t: [0, 0, 0] for t in types}  # tp, fp, fn
    for (text, labels), found in zip(cases, findings_per_case):
        found = [f for f in found if f[0] in types]
        hit = set()
        for f in found:
            match = [i for i, l in enumerate(labels) if l[0] == f[0] and f[1] < l[2] and l[1] < f[2]]
            if match:
                hit.update(match)
            else:
                s[f[0]][1] += 1
        for i, l in enumerate(labels):
            if l[0] not in types:
                continue
            if i in hit:
                s[l[0]][0] += 1
            else:
                s[l[0]][2] += 1
    return s


def pr(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--corpus", default="tests/corpus/mask")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds Presidio may spend on the throughput corpus")
    a = ap.parse_args()

    recs = recognizers()
    cases = load_corpus(a.corpus)
    tollgate = []
    with open(os.path.join(a.dir, "tollgate_findings.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            tollgate.append([(x["type"], x["start"], x["end"]) for x in d["findings"]])
    assert len(tollgate) == len(cases), "findings and corpus out of step: re-run the bench export"
    presidio = [presidio_find(recs, text) for text, _ in cases]

    types = sorted({l[0] for _, labels in cases for l in labels})
    ts, ps = score(cases, tollgate, set(types)), score(cases, presidio, set(PRESIDIO_TO_TOLLGATE.values()))
    distractors = [i for i, (_, labels) in enumerate(cases) if not labels]
    t_clean = sum(1 for i in distractors if not tollgate[i])
    p_clean = sum(1 for i in distractors if not presidio[i])

    print(f"\nlabelled corpus: {len(cases)} strings, {len(distractors)} distractors (overlap matching)")
    print(f"{'type':<16} {'Tollgate P':>10} {'R':>6} {'Presidio P':>11} {'R':>6}  checksum")
    for t in types:
        tp, tr = pr(*ts[t])
        if t in ps:
            pp, prr = pr(*ps[t])
            pcol = f"{pp:>11.3f} {prr:>6.3f}"
        else:
            pcol = f"{'n/a':>11} {'n/a':>6}"
        print(f"{t:<16} {tp:>10.3f} {tr:>6.3f} {pcol}  {'yes' if t in CHECKSUM_TYPES else ''}")
    print(f"distractors left untouched: Tollgate {t_clean}/{len(distractors)}, Presidio {p_clean}/{len(distractors)}")

    # Throughput on the generated corpus.
    with open(os.path.join(a.dir, "tollgate.json")) as f:
        tg = json.load(f)
    texts = []
    with open(os.path.join(a.dir, tg["throughput_file"]), encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
    done_bytes, n, t0 = 0, 0, time.perf_counter()
    for text in texts:
        presidio_find(recs, text)
        done_bytes += len(text.encode("utf-8"))
        n += 1
        if time.perf_counter() - t0 > a.budget:
            break
    secs = time.perf_counter() - t0
    p_mbps = done_bytes / 1e6 / secs
    print(f"\nthroughput corpus: {tg['bytes'] / 1e6:.1f} MB, {tg['values']} values")
    print(f"Tollgate : {tg['mb_per_s']:.2f} MB/s (all {tg['values']} values, 10 types)")
    print(f"Presidio : {p_mbps:.4f} MB/s ({n} values, {done_bytes / 1e6:.2f} MB in {secs:.1f} s, 6 pattern recognizers)")
    print(f"ratio Tollgate/Presidio: {tg['mb_per_s'] / p_mbps:.0f}x")


if __name__ == "__main__":
    main()
