//! A getopt-style reader for the options of wrapper programs (`sudo -u root`,
//! `timeout --signal=KILL 5`, `xargs -I{}`): short clusters, values attached
//! or in the next word, optional values (attached only), GNU long options
//! with `=value` or the next word, unambiguous abbreviations of long options
//! (`--us=root` is `--user=root`, as getopt_long reads it) and `--`.
//!
//! It answers one question for the analysis: where do the wrapper's options
//! end and what did they say. An option it does not know, a missing value
//! or an ambiguous abbreviation is a [`BadOption`]; the caller then cannot
//! tell where the wrapped command starts and treats the call as a raw shell
//! call (the stricter side). Hand-rolled: the option crates parse a
//! program's own arguments into a struct, not somebody else's arguments
//! against a table.

/// The options one program accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    /// Short options without a value.
    pub short_flags: &'static str,
    /// Short options with a value: attached (`-uroot`) or the next word.
    pub short_values: &'static str,
    /// Short options with an optional value, attached only (`-i.bak`).
    pub short_optional: &'static str,
    /// Long options without a value.
    pub long_flags: &'static [&'static str],
    /// Long options with a value: `--name=value` or the next word.
    pub long_values: &'static [&'static str],
    /// Long options with an optional value, `--name=value` only.
    pub long_optional: &'static [&'static str],
}

impl Spec {
    /// No options at all (every word starting with `-` is unknown).
    pub const NONE: Spec = Spec {
        short_flags: "",
        short_values: "",
        short_optional: "",
        long_flags: &[],
        long_values: &[],
        long_optional: &[],
    };
}

/// An option word the program would refuse or that the analysis cannot
/// place (unknown, missing value, ambiguous abbreviation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadOption;

/// One option as the program reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opt<'a> {
    /// The short letter, or `None` for a long option.
    pub short: Option<char>,
    /// The full long name (abbreviations resolved), or `None`.
    pub long: Option<&'static str>,
    /// The value, if any.
    pub value: Option<&'a str>,
}

impl Opt<'_> {
    /// Whether this is `-short` or `--long`.
    pub fn is(&self, short: char, long: &str) -> bool {
        self.short == Some(short) || self.long == Some(long)
    }
}

/// Options read from `words[start..]`, stopping at the first operand (POSIX
/// and `+` getopt: the rest is the wrapped command). Returns the options and
/// the index of the first operand (`words.len()` when there is none); a `--`
/// is consumed.
pub(crate) fn parse<'a>(
    spec: &Spec,
    words: &'a [String],
    start: usize,
) -> Result<(Vec<Opt<'a>>, usize), BadOption> {
    let mut opts = Vec::new();
    let mut i = start;
    while let Some(word) = words.get(i) {
        if word == "--" {
            return Ok((opts, i + 1));
        }
        if !is_option(word) {
            return Ok((opts, i));
        }
        i = read_one(spec, words, i, &mut opts)?;
    }
    Ok((opts, i))
}

/// Options read from `words[start..]` the GNU way: options may follow
/// operands until `--`. Returns the options and the indexes of the operands.
pub(crate) fn parse_permuted<'a>(
    spec: &Spec,
    words: &'a [String],
    start: usize,
) -> Result<(Vec<Opt<'a>>, Vec<usize>), BadOption> {
    let mut opts = Vec::new();
    let mut operands = Vec::new();
    let mut i = start;
    while let Some(word) = words.get(i) {
        if word == "--" {
            operands.extend(i + 1..words.len());
            break;
        }
        if !is_option(word) {
            operands.push(i);
            i += 1;
            continue;
        }
        i = read_one(spec, words, i, &mut opts)?;
    }
    Ok((opts, operands))
}

/// Whether a word is an option word (`-x...` or `--x...`; `-` alone is an
/// operand; a word standing for an expansion never starts with `-`).
pub(crate) fn is_option(word: &str) -> bool {
    word.len() > 1 && word.starts_with('-')
}

/// Reads the option word at `i` (and its value word, if any) into `opts`;
/// returns the index after it.
fn read_one<'a>(
    spec: &Spec,
    words: &'a [String],
    i: usize,
    opts: &mut Vec<Opt<'a>>,
) -> Result<usize, BadOption> {
    let word = words[i].as_str();
    if let Some(long) = word.strip_prefix("--") {
        let (name, attached) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (long, None),
        };
        let (full, kind) = resolve_long(spec, name)?;
        let (value, next) = match kind {
            LongKind::Flag if attached.is_some() => return Err(BadOption),
            LongKind::Flag | LongKind::Optional => (attached, i + 1),
            LongKind::Value => match attached {
                Some(value) => (Some(value), i + 1),
                None => (Some(words.get(i + 1).ok_or(BadOption)?.as_str()), i + 2),
            },
        };
        opts.push(Opt {
            short: None,
            long: Some(full),
            value,
        });
        return Ok(next);
    }
    let cluster = &word[1..];
    for (at, letter) in cluster.char_indices() {
        let rest = &cluster[at + letter.len_utf8()..];
        if spec.short_flags.contains(letter) {
            opts.push(short(letter, None));
        } else if spec.short_values.contains(letter) {
            if rest.is_empty() {
                let value = words.get(i + 1).ok_or(BadOption)?;
                opts.push(short(letter, Some(value)));
                return Ok(i + 2);
            }
            opts.push(short(letter, Some(rest)));
            return Ok(i + 1);
        } else if spec.short_optional.contains(letter) {
            opts.push(short(letter, (!rest.is_empty()).then_some(rest)));
            return Ok(i + 1);
        } else {
            return Err(BadOption);
        }
    }
    Ok(i + 1)
}

fn short(letter: char, value: Option<&str>) -> Opt<'_> {
    Opt {
        short: Some(letter),
        long: None,
        value,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LongKind {
    Flag,
    Value,
    Optional,
}

/// The long option `name` stands for: an exact name, or the only one it
/// abbreviates.
fn resolve_long(spec: &Spec, name: &str) -> Result<(&'static str, LongKind), BadOption> {
    let tables = [
        (spec.long_flags, LongKind::Flag),
        (spec.long_values, LongKind::Value),
        (spec.long_optional, LongKind::Optional),
    ];
    let mut found = None;
    for (table, kind) in tables {
        for full in table {
            if *full == name {
                return Ok((full, kind));
            }
            if !name.is_empty() && full.starts_with(name) {
                if found.is_some() {
                    return Err(BadOption);
                }
                found = Some((*full, kind));
            }
        }
    }
    found.ok_or(BadOption)
}

/// Whether a long-option word (`--name` or `--name=value`) names, or
/// abbreviates, one of `names` (for programs whose other options the
/// analysis does not need to know, such as `tar --to-command`).
pub(crate) fn long_abbreviates(word: &str, names: &[&str]) -> bool {
    let Some(long) = word.strip_prefix("--") else {
        return false;
    };
    let name = long.split_once('=').map_or(long, |(name, _)| name);
    !name.is_empty() && names.iter().any(|full| full.starts_with(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        short_flags: "ab",
        short_values: "u",
        short_optional: "i",
        long_flags: &["login", "list"],
        long_values: &["user"],
        long_optional: &["preserve-env"],
    };

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn clusters_values_and_the_first_operand() {
        let w = words(&["x", "-aburoot", "-u", "bob", "-i.bak", "cmd", "-a"]);
        let (opts, rest) = parse(&SPEC, &w, 1).unwrap();
        assert_eq!(rest, 5);
        let users: Vec<_> = opts
            .iter()
            .filter(|o| o.is('u', "user"))
            .map(|o| o.value)
            .collect();
        assert_eq!(users, [Some("root"), Some("bob")]);
        assert!(
            opts.iter()
                .any(|o| o.short == Some('i') && o.value == Some(".bak"))
        );
    }

    #[test]
    fn long_options_and_abbreviations() {
        let w = words(&["x", "--us=root", "--preserve-env", "--login", "--", "-cmd"]);
        let (opts, rest) = parse(&SPEC, &w, 1).unwrap();
        assert_eq!(rest, 5);
        assert_eq!(opts[0].long, Some("user"));
        assert_eq!(opts[0].value, Some("root"));
        // `--l` abbreviates both --login and --list.
        assert_eq!(parse(&SPEC, &words(&["x", "--l", "c"]), 1), Err(BadOption));
        assert_eq!(
            parse(&SPEC, &words(&["x", "--nope", "c"]), 1),
            Err(BadOption)
        );
        assert_eq!(
            parse(&SPEC, &words(&["x", "--login=yes", "c"]), 1),
            Err(BadOption)
        );
        assert_eq!(parse(&SPEC, &words(&["x", "-u"]), 1), Err(BadOption));
        assert_eq!(parse(&SPEC, &words(&["x", "-z", "c"]), 1), Err(BadOption));
    }

    #[test]
    fn permuted_operands() {
        let w = words(&["x", "root", "-u", "bob", "arg", "--", "-a"]);
        let (opts, operands) = parse_permuted(&SPEC, &w, 1).unwrap();
        assert_eq!(opts.len(), 1);
        assert_eq!(operands, [1, 4, 6]);
    }

    #[test]
    fn abbreviation_check() {
        assert!(long_abbreviates("--to-c=sh", &["to-command"]));
        assert!(long_abbreviates("--use", &["use-compress-program"]));
        assert!(!long_abbreviates("--totals", &["to-command"]));
        assert!(!long_abbreviates("-t", &["to-command"]));
        assert!(!long_abbreviates("--", &["to-command"]));
    }
}
