//! Masking corpus: precision and recall per type on the labelled strings in
//! `tests/corpus/mask/*.jsonl` (true PII in many formats, and look-alike
//! distractors that must stay untouched). A finding counts only when its type
//! and exact span match a label. The table is printed to stderr and is part
//! of every assertion message.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gateway_core::mask::{MaskConfig, Masker};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    text: String,
    expect: Vec<Label>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Label {
    #[serde(rename = "type")]
    type_name: String,
    value: String,
}

#[derive(Default)]
struct Score {
    tp: u64,
    fp: u64,
    fn_: u64,
}

impl Score {
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/mask")
}

fn load() -> Vec<(String, usize, Case)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(&f).expect("read corpus");
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let case: Case =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
            cases.push((name.clone(), i + 1, case));
        }
    }
    cases
}

/// Byte spans of the labels: each label takes the next unused occurrence.
fn label_spans(case: &Case) -> Vec<(String, usize, usize)> {
    let mut spans: Vec<(String, usize, usize)> = Vec::new();
    for l in &case.expect {
        let start = case
            .text
            .match_indices(&l.value)
            .map(|(i, _)| i)
            .find(|i| !spans.iter().any(|(_, s, _)| s == i))
            .unwrap_or_else(|| panic!("label {:?} not in text {:?}", l.value, case.text));
        spans.push((l.type_name.clone(), start, start + l.value.len()));
    }
    spans
}

#[test]
fn corpus_precision_and_recall_per_type() {
    let masker = Masker::new(&MaskConfig::default()).expect("default config");
    let cases = load();
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut leaks = Vec::new();
    let (mut distractors, mut distractors_clean) = (0u64, 0u64);
    for (file, line, case) in &cases {
        let want = label_spans(case);
        let got: Vec<(String, usize, usize)> = masker
            .detect(&case.text)
            .into_iter()
            .map(|f| (f.type_name, f.start, f.end))
            .collect();
        for w in &want {
            let s = scores.entry(w.0.clone()).or_default();
            if got.contains(w) {
                s.tp += 1;
            } else {
                s.fn_ += 1;
                misses.push(format!(
                    "  miss {file}:{line} {} {:?}",
                    w.0,
                    &case.text[w.1..w.2]
                ));
            }
        }
        for g in got.iter().filter(|g| !want.contains(g)) {
            scores.entry(g.0.clone()).or_default().fp += 1;
            misses.push(format!(
                "  false {file}:{line} {} {:?} in {:?}",
                g.0,
                &case.text[g.1..g.2],
                case.text
            ));
        }
        if case.expect.is_empty() {
            distractors += 1;
            let (masked, counts) = masker.mask_text(&case.text);
            if masked == case.text && counts.is_empty() {
                distractors_clean += 1;
            }
        } else {
            let (masked, _) = masker.mask_text(&case.text);
            for l in &case.expect {
                if l.value.len() >= 6 && masked.contains(&l.value) {
                    leaks.push(format!("  leak {file}:{line} {}", l.type_name));
                }
            }
        }
    }
    let strings = cases.len();
    let mut table = format!(
        "\nmask corpus: {strings} strings ({distractors} distractors, {distractors_clean} left untouched)\n{:<16} {:>5} {:>5} {:>5} {:>9} {:>7}\n",
        "type", "tp", "fp", "fn", "precision", "recall"
    );
    for (t, s) in &scores {
        table.push_str(&format!(
            "{t:<16} {:>5} {:>5} {:>5} {:>9.3} {:>7.3}\n",
            s.tp,
            s.fp,
            s.fn_,
            s.precision(),
            s.recall()
        ));
    }
    for m in misses.iter().chain(leaks.iter()) {
        table.push_str(m);
        table.push('\n');
    }
    eprintln!("{table}");
    assert!(strings >= 300, "corpus too small{table}");
    for (t, s) in &scores {
        assert!(
            s.recall() >= 0.95,
            "{t} recall {:.3} < 0.95{table}",
            s.recall()
        );
        assert!(
            s.precision() >= 0.99,
            "{t} precision {:.3} < 0.99{table}",
            s.precision()
        );
    }
    assert!(
        leaks.is_empty(),
        "labelled values survived mask_text{table}"
    );
}
