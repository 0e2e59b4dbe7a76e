//! The plain-words lexer: splits a `command` string the way a POSIX shell
//! would **if** it is made only of words and quotes, and says "shell syntax"
//! for anything else.
//!
//! Accepted, outside quotes: ASCII letters and digits, `_ - . / , : @ + %`,
//! `=` (not in the first word, where it would be an assignment, nor at the
//! start of a word, where zsh expands `=cmd`), `{}` after the first word
//! (no shell expands it: `find -exec rm {} +`), a backslash before any
//! character but a control character (`\sudo` is `sudo`), spaces and tabs
//! between words. Inside `'...'`: anything but a control character. Inside
//! `"..."`: anything but `$`, a backquote and control characters, with `\"`
//! `\\` `\$` `` \` `` standing for the character and any other backslash kept
//! (POSIX). Everything else is shell syntax and makes the call a raw shell
//! call: `; & | < > ( ) $` backquotes, newlines and carriage returns, globs
//! `* ? [ ]`, `~`, `#`, braces, `!`, `^`, non-ASCII characters outside quotes
//! (an allow-list: what is not known to be a plain word character is
//! syntax), an unterminated quote or a trailing backslash.
//!
//! Hand-rolled, not `shell-words`: `shell_words::split` takes `;` and `|` as
//! word characters (`a;b` is one word to it) and so cannot tell plain words
//! from shell syntax, which is the one question asked here.

/// Whether `c` may stand unquoted in a plain word (besides `=`, which has
/// its own rule).
pub(crate) fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ',' | ':' | '@' | '+' | '%')
}

/// The words of `text` when it is made only of words and quotes; `None`
/// when it holds any other shell syntax. An empty or blank text gives no
/// words. Linear in the length of `text`.
pub(crate) fn split_plain(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has started (a quoted empty string starts one).
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        q if is_control(q) => return None,
                        q => word.push(q),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            e @ ('$' | '`' | '"' | '\\') => word.push(e),
                            e if is_control(e) => return None,
                            e => {
                                word.push('\\');
                                word.push(e);
                            }
                        },
                        '$' | '`' => return None,
                        q if is_control(q) => return None,
                        q => word.push(q),
                    }
                }
            }
            '\\' => match chars.next()? {
                e if is_control(e) => return None,
                e => {
                    in_word = true;
                    word.push(e);
                }
            },
            // `{}` (find, xargs -I) is never a brace expansion.
            '{' if !words.is_empty() && chars.clone().next() == Some('}') => {
                chars.next();
                in_word = true;
                word.push_str("{}");
            }
            '=' if words.is_empty() || !in_word => return None,
            '=' => word.push('='),
            c if is_plain(c) => {
                in_word = true;
                word.push(c);
            }
            _ => return None,
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Control characters (tab is one: a tab inside quotes is refused too,
/// which only errs on the strict side).
fn is_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::split_plain;

    fn split(text: &str) -> Option<Vec<String>> {
        split_plain(text)
    }

    fn words(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|w| (*w).to_owned()).collect())
    }

    #[test]
    fn plain_words_and_quotes() {
        assert_eq!(split("ls -la /tmp"), words(&["ls", "-la", "/tmp"]));
        assert_eq!(split("  ls \t x  "), words(&["ls", "x"]));
        assert_eq!(split("echo 'a b' \"c d\""), words(&["echo", "a b", "c d"]));
        assert_eq!(split("'su'\"do\" -u root"), words(&["sudo", "-u", "root"]));
        assert_eq!(split("\\sudo ls"), words(&["sudo", "ls"]));
        assert_eq!(split("s\\udo"), words(&["sudo"]));
        assert_eq!(split("echo '' x"), words(&["echo", "", "x"]));
        assert_eq!(
            split("echo \"a\\\"b\\\\c\\$d\\`e\\nf\""),
            words(&["echo", "a\"b\\c$d`e\\nf"])
        );
        assert_eq!(
            split("echo ';' '|' '$(id)' \\;"),
            words(&["echo", ";", "|", "$(id)", ";"])
        );
        assert_eq!(
            split("grep --color=auto a=b x"),
            words(&["grep", "--color=auto", "a=b", "x"])
        );
        assert_eq!(
            split("find . -exec rm {} \\;"),
            words(&["find", ".", "-exec", "rm", "{}", ";"])
        );
        assert_eq!(
            split("xargs -I{} cp {}x"),
            words(&["xargs", "-I{}", "cp", "{}x"])
        );
        assert_eq!(split("echo 'it'\\''s'"), words(&["echo", "it's"]));
        assert_eq!(split("echo 'é' \"ü\""), words(&["echo", "é", "ü"]));
        assert_eq!(split(""), words(&[]));
        assert_eq!(split("   "), words(&[]));
    }

    #[test]
    fn any_other_syntax_is_shell() {
        for text in [
            "ls; rm x",
            "ls && rm x",
            "ls || rm x",
            "ls | rm",
            "ls &",
            "ls\nrm",
            "ls\rrm",
            "echo $(id)",
            "echo `id`",
            "cat <(id)",
            "ls > x",
            "ls < x",
            "ls *",
            "ls ?",
            "ls [a]",
            "ls ~",
            "ls ~/x",
            "echo $HOME",
            "echo ${IFS}",
            "cat${IFS}/etc/passwd",
            "echo \"$HOME\"",
            "echo \"`id`\"",
            "X=1 ls",
            "a=b",
            "ls =ls",
            "ls # comment",
            "echo {a,b}",
            "echo {a..c}",
            "echo {",
            "{} x",
            "(ls)",
            "! ls",
            "ls ^x",
            "echo café",
            "echo 'unterminated",
            "echo \"unterminated",
            "echo x\\",
            "echo '\u{1b}[31m'",
            "echo \\\u{7}",
        ] {
            assert_eq!(split(text), None, "{text:?} must be shell syntax");
        }
    }
}
