//! Quoting an argv for the remote POSIX shell, so that the remote side runs
//! exactly these words.
//!
//! The SSH exec request carries one string, which the account's login shell
//! runs with `-c`. Each word is wrapped in single quotes, with a `'` written
//! as `'\''` (close, escaped quote, reopen): inside single quotes no
//! character is special in sh, bash, dash, ksh or zsh. A word other than the
//! first made only of plain characters (`is_plain`, and not starting with
//! `=`) is left bare for readability. The first word is always quoted, so
//! that the remote shell never reads it as a reserved word (`if`, `time`,
//! `coproc`), an assignment or an alias.
//!
//! Assumes a POSIX login shell on the host (sh, bash, dash, ksh, zsh): fish
//! and csh read quotes differently.

use super::words::is_plain;

/// One word quoted for a POSIX shell.
pub(crate) fn quote_word(word: &str, first: bool) -> String {
    if !first
        && !word.is_empty()
        && !word.starts_with('=')
        && word.chars().all(|c| is_plain(c) || c == '=')
    {
        return word.to_owned();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for c in word.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// The words quoted and joined by spaces.
pub(crate) fn quote_words(argv: &[String]) -> String {
    let mut line = String::new();
    for (i, word) in argv.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&quote_word(word, i == 0));
    }
    line
}
