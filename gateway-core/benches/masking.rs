//! Masking throughput benchmark (`cargo bench -p gateway-core --bench masking`).
//!
//! Prints a table: MB/s and values/s of `mask_text` on a generated corpus (a
//! mixture of clean text and PII, several MB), rows/s of `mask_planned_row`
//! on generated SQL-like rows, and a streaming run that masks 1M rows one at a
//! time (never holding them) and reports peak RSS (VmHWM).
//!
//! `-- --export DIR` also writes, for `bench/presidio/compare.py`:
//! `DIR/throughput.jsonl` (the generated corpus, one `{"text"}` a line),
//! `DIR/tollgate_findings.jsonl` (Tollgate's findings on the labelled corpus)
//! and `DIR/tollgate.json` (Tollgate's throughput on that same file).

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use gateway_core::connector::FieldPath;
use gateway_core::mask::{MaskConfig, MaskCounts, Masker};
use serde_json::{Value, json};

/// Deterministic xorshift, so every run masks the same corpus.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "the",
    "order",
    "was",
    "shipped",
    "customer",
    "asked",
    "for",
    "a",
    "refund",
    "after",
    "delivery",
    "delayed",
    "warehouse",
    "invoice",
    "status",
    "pending",
    "approved",
    "note",
    "review",
    "quarterly",
    "report",
    "items",
    "returned",
    "priority",
    "Überprüfung",
    "livraison",
    "déjà",
    "payé",
    "東京",
    "配送",
];
const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];
const CARDS: &[&str] = &[
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "378282246310005",
    "6011111111111117",
];
const IBANS: &[&str] = &[
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "NL91ABNA0417164300",
];

fn sentence(r: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        match r.below(12) {
            0 => s.push_str(&format!("#{}", r.below(100_000))),
            1 => s.push_str(&format!(
                "2026-0{}-1{}T10:{}:00Z",
                1 + r.below(9),
                r.below(10),
                10 + r.below(50)
            )),
            2 => s.push_str(&format!(
                "v{}.{}.{}",
                r.below(10),
                r.below(30),
                r.below(100)
            )),
            _ => s.push_str(r.pick(WORDS)),
        }
    }
    s
}

fn pii(r: &mut Rng) -> String {
    match r.below(8) {
        0 => format!("{}.{}@example.com", r.pick(FIRST), r.below(1000)),
        1 => format!("+1 415 555 {:04}", r.below(10_000)),
        2 => r.pick(CARDS).to_string(),
        3 => r.pick(IBANS).to_string(),
        4 => format!("10.{}.{}.{}", r.below(256), r.below(256), r.below(256)),
        5 => format!("password={}x{}", r.pick(FIRST), r.below(1_000_000)),
        6 => format!(
            "{:03}-{:02}-{:04}",
            100 + r.below(500),
            1 + r.below(98),
            1 + r.below(9998)
        ),
        _ => format!("postgres://app:pw{}@db.internal/shop", r.below(10_000)),
    }
}

/// One free-text value: 60% clean, 40% with one PII item inside.
fn text_value(r: &mut Rng) -> String {
    let len = 4 + r.below(40) as usize;
    let mut s = sentence(r, len);
    if r.below(10) < 4 {
        let at = s.len() / 2;
        let cut = (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s.insert_str(cut, &format!(" {} ", pii(r)));
    }
    s
}

fn row(r: &mut Rng, id: u64) -> Vec<Value> {
    vec![
        json!(id),
        json!(format!("{} {}", r.pick(FIRST), r.pick(FIRST))),
        json!(format!("{}{}@example.org", r.pick(FIRST), id)),
        json!(text_value(r)),
        json!(format!(
            "2026-03-{:02} 12:{:02}:00",
            1 + r.below(28),
            r.below(60)
        )),
        json!(format!("192.168.{}.{}", r.below(256), r.below(256))),
        json!(r.below(100_000) as f64 / 100.0),
        json!(format!("hash{}", r.next())),
    ]
}

const ORIGINS: [Option<&str>; 8] = [
    Some("public.users.id"),
    Some("public.users.name"),
    Some("public.users.email"),
    Some("public.users.note"),
    Some("public.users.created_at"),
    Some("public.users.last_ip"),
    Some("public.users.balance"),
    Some("public.users.password"),
];

fn vm_hwm_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn total(c: &MaskCounts) -> u64 {
    c.values().sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let export = args
        .iter()
        .position(|a| a == "--export")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let masker = Masker::new(&MaskConfig::default()).expect("default masker");
    if args.iter().any(|a| a == "--stream-child") {
        stream(&masker);
        return;
    }

    // 1. Free text.
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut values = Vec::new();
    let mut bytes = 0usize;
    while bytes < 8 * 1024 * 1024 {
        let v = text_value(&mut r);
        bytes += v.len();
        values.push(v);
    }
    let _ = masker.mask_text(&values[0]);
    let mut best = f64::MAX;
    let mut masked = 0;
    for _ in 0..3 {
        let t = Instant::now();
        masked = 0;
        for v in &values {
            let (out, c) = masker.mask_text(v);
            masked += total(&c);
            black_box(out);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let mb = bytes as f64 / 1e6;
    println!("masking benchmark (release, 1 thread, default config: all built-in types, redact)");
    println!(
        "{:<34} {:>10} {:>12} {:>14} {:>10}",
        "workload", "MB", "MB/s", "values|rows/s", "masked"
    );
    println!(
        "{:<34} {:>10.1} {:>12.1} {:>14.0} {:>10}",
        "text values (mask_text)",
        mb,
        mb / best,
        values.len() as f64 / best,
        masked
    );
    let text_mbps = mb / best;

    // 2. Rows with a precompiled plan (the streaming entry point).
    let paths: Vec<Option<FieldPath>> = ORIGINS
        .iter()
        .map(|o| o.map(|o| FieldPath::new(o.split('.'))))
        .collect();
    let fields: Vec<Option<&FieldPath>> = paths.iter().map(Option::as_ref).collect();
    let plan = masker.plan_rows("shop", &fields);
    let mut r = Rng(42);
    let rows: Vec<Vec<Value>> = (0..100_000).map(|i| row(&mut r, i)).collect();
    let row_bytes: usize = rows
        .iter()
        .map(|r| serde_json::to_string(r).map(|s| s.len()).unwrap_or(0))
        .sum();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut copy = rows.clone();
        let mut counts = MaskCounts::new();
        let t = Instant::now();
        for row in &mut copy {
            masker.mask_planned_row(&plan, row, &mut counts);
        }
        best = best.min(t.elapsed().as_secs_f64());
        masked = total(&counts);
        black_box(copy);
    }
    let rmb = row_bytes as f64 / 1e6;
    println!(
        "{:<34} {:>10.1} {:>12.1} {:>14.0} {:>10}",
        "rows x8 cols (mask_planned_row)",
        rmb,
        rmb / best,
        rows.len() as f64 / best,
        masked
    );
    drop(rows);

    // 3. Streaming, in a fresh process so its peak RSS is its own.
    let me = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(me)
        .arg("--stream-child")
        .output()
        .expect("run streaming child");
    print!("{}", String::from_utf8_lossy(&out.stdout));

    if let Some(dir) = export {
        export_for_presidio(&masker, &dir, &values, bytes, text_mbps);
    }
}

/// Mask 1M generated rows one at a time; print rows/s and VmHWM.
fn stream(masker: &Masker) {
    let paths: Vec<Option<FieldPath>> = ORIGINS
        .iter()
        .map(|o| o.map(|o| FieldPath::new(o.split('.'))))
        .collect();
    let fields: Vec<Option<&FieldPath>> = paths.iter().map(Option::as_ref).collect();
    let plan = masker.plan_rows("shop", &fields);
    let mut r = Rng(7);
    let mut counts = MaskCounts::new();
    let t = Instant::now();
    for i in 0..1_000_000u64 {
        let mut one = row(&mut r, i);
        masker.mask_planned_row(&plan, &mut one, &mut counts);
        black_box(&one);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:<34} {:>10} {:>12} {:>14.0} {:>10}",
        "stream 1M rows (incl. generation)",
        "-",
        "-",
        1e6 / secs,
        total(&counts)
    );
    println!(
        "streaming peak RSS (VmHWM of its own process): {:.1} MB (target < 100 MB)",
        vm_hwm_kb().unwrap_or(0) as f64 / 1024.0
    );
}

fn export_for_presidio(
    masker: &Masker,
    dir: &PathBuf,
    values: &[String],
    bytes: usize,
    _text_mbps: f64,
) {
    std::fs::create_dir_all(dir).expect("export dir");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(dir.join("throughput.jsonl")).expect("create"),
    );
    for v in values {
        writeln!(f, "{}", json!({ "text": v })).expect("write");
    }
    drop(f);
    // Tollgate on the exact file content, as compare.py will read it.
    let read: Vec<String> = std::fs::read_to_string(dir.join("throughput.jsonl"))
        .expect("read")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    let t = Instant::now();
    for v in &read {
        black_box(masker.mask_text(v));
    }
    let secs = t.elapsed().as_secs_f64();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/mask");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(dir.join("tollgate_findings.jsonl")).expect("create"),
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        for line in std::fs::read_to_string(&file).expect("read corpus").lines() {
            let Ok(case) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let text = case["text"].as_str().unwrap_or("");
            // Character offsets, as Python sees the string.
            let findings: Vec<Value> = masker
                .detect(text)
                .into_iter()
                .map(|f| {
                    json!({"type": f.type_name, "start": text[..f.start].chars().count(), "end": text[..f.end].chars().count()})
                })
                .collect();
            writeln!(out, "{}", json!({"text": text, "findings": findings})).expect("write");
        }
    }
    let summary = json!({
        "throughput_file": "throughput.jsonl",
        "bytes": bytes,
        "values": read.len(),
        "seconds": secs,
        "mb_per_s": bytes as f64 / 1e6 / secs,
    });
    std::fs::write(dir.join("tollgate.json"), summary.to_string()).expect("write summary");
    println!(
        "exported to {}: Tollgate {:.1} MB/s on throughput.jsonl",
        dir.display(),
        bytes as f64 / 1e6 / secs
    );
}
