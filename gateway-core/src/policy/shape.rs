//! A bound on how deep a policy can nest, checked before Cedar parses it.
//!
//! Cedar's parser, validator and AST drop recurse once per level of an
//! expression without a limit (cedar-policy/cedar#2383 proposes one), so a
//! policy file with 10,000 nested parentheses — or a 10,000-long `&&` chain,
//! which becomes a 10,000-deep tree — overflows the thread's stack and ends
//! the process. Policies are the operator's files, but the file watcher
//! reloads whatever is written to the folder, so a bad file must be an
//! error, never a crash.
//!
//! The check reads each policy statement's tokens (strings and `//`
//! comments skipped) and counts every token that can add a level to the
//! tree: an opening bracket, `if`, a unary or binary operator, `.` and the
//! keyword operators. That count bounds the statement's depth from above,
//! so a statement under [`MAX_STRUCTURE`] cannot be deeper than that.
//!
//! Cedar's parser takes some 40 KiB of stack a level in a debug build
//! (parentheses overflowed a 2 MiB stack at 50 levels), so policies are
//! loaded on a stack of their own ([`super::LOAD_STACK`], 256 MiB reserved,
//! touched pages only); the bound keeps the deepest accepted policy well
//! inside it, and Cedar's evaluator and type checker stop at their own
//! recursion limits (an error, which denies). The bound is far above real
//! policies (the shipped ones hold under 60 such tokens each; see the
//! tests below and gateway-core's `fuzz.rs`).

/// The most depth-adding tokens one policy statement may hold.
pub const MAX_STRUCTURE: usize = 1_000;

/// Where a statement goes over [`MAX_STRUCTURE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// Byte offset of the statement's first token.
    pub offset: usize,
}

/// The first statement of `text` holding more than [`MAX_STRUCTURE`]
/// depth-adding tokens, if any. Linear in the text, no recursion.
pub fn too_deep(text: &str) -> Option<TooDeep> {
    too_deep_at(text, MAX_STRUCTURE)
}

/// [`too_deep`] with another bound.
fn too_deep_at(text: &str, max: usize) -> Option<TooDeep> {
    let b = text.as_bytes();
    let (mut i, mut count) = (0usize, 0usize);
    let mut start: Option<usize> = None;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let statement = *start.get_or_insert(i);
        let adds = match c {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            b';' => {
                start = None;
                count = 0;
                i += 1;
                continue;
            }
            // The second character of `&&`, `||`, `==`, `!=`, `<=`, `>=` adds
            // nothing: the operator was counted at its first.
            b'&' | b'|' | b'=' if i > 0 && second_of_pair(b[i - 1], c) => 0,
            b'(' | b'[' | b'{' | b'.' | b'!' | b'-' | b'+' | b'*' | b'<' | b'>' | b'=' => 1,
            b'&' | b'|' => 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let from = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let adds = matches!(&text[from..i], "if" | "in" | "has" | "like" | "is");
                count += usize::from(adds);
                if count > max {
                    return Some(TooDeep { offset: statement });
                }
                continue;
            }
            _ => 0,
        };
        count += adds;
        if count > max {
            return Some(TooDeep { offset: statement });
        }
        i += 1;
    }
    None
}

/// Whether `c` after `prev` completes a two-character operator.
fn second_of_pair(prev: u8, c: u8) -> bool {
    match c {
        b'&' | b'|' => prev == c,
        b'=' => matches!(prev, b'=' | b'!' | b'<' | b'>'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_policies_are_far_under_the_bound() {
        let policy = r#"
            @id("reads") // a comment with (((( and &&&&
            permit(principal in Tollgate::Group::"analysts", action == Tollgate::Action::"sql:select",
                   resource in Tollgate::Connection::"shop")
            when { context.tables.containsAny(["a", "b"]) && !(context.columns.contains("x.y.z"))
                   && (if context.statement_count > 1 then false else true) && "((((((" like "*" };
        "#;
        assert_eq!(too_deep(policy), None);
    }

    #[test]
    fn deep_shapes_are_found_at_their_statement() {
        let head = "permit(principal, action, resource);\n";
        for body in [
            format!("{}true{}", "(".repeat(2_000), ")".repeat(2_000)),
            format!("true{}", " && true".repeat(2_000)),
            format!("context{}", ".a".repeat(2_000)),
            format!("{}true", "if true then ".repeat(2_000)),
            format!("{}1", "-".repeat(2_000)),
        ] {
            let text = format!("{head}permit(principal, action, resource) when {{ {body} }};");
            assert_eq!(too_deep(&text), Some(TooDeep { offset: head.len() }));
        }
    }

    /// Every policy this repository ships holds under 60 depth-adding
    /// tokens per policy: the bound is far from what real policies need.
    #[test]
    fn shipped_policies_are_far_under_the_bound() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut dirs = vec![root.join("policies")];
        for example in std::fs::read_dir(root.join("examples")).unwrap().flatten() {
            dirs.push(example.path().join("policies"));
        }
        let mut files = 0;
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if path.extension().is_some_and(|x| x == "cedar") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert_eq!(too_deep_at(&text, 60), None, "{}", path.display());
                    files += 1;
                }
            }
        }
        assert!(files >= 5, "found {files} policy files");
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        let text = format!(
            "permit(principal, action, resource) when {{ \"{}\" == \"a\\\"(\" }}; // {}",
            "(".repeat(5_000),
            "&&".repeat(5_000)
        );
        assert_eq!(too_deep(&text), None);
    }

    #[test]
    fn each_statement_counts_alone() {
        let one = format!(
            "permit(principal, action, resource) when {{ true{} }};\n",
            " && true".repeat(400)
        );
        assert_eq!(too_deep(&one.repeat(10)), None);
    }
}
