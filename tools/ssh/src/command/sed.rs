//! `sed`: GNU sed runs commands from its script (the `e` command, the `e`
//! flag of `s///`). The script is read command by command (addresses,
//! `s` and `y` with their delimiters and escapes, `a i c` text, file names
//! of `r R w W`, labels, comments, `{ }`): an `e` anywhere it is a command or
//! an `s` flag, a command the reader does not know, or a script from a file
//! (`-f`) is a raw shell call. `--sandbox` (GNU: no `e`, `r`, `w`) makes any
//! script an exec of sed. One pass over the script.

use super::follow::{Ctx, Next, Trace};
use super::opts::{self, Spec};
use super::script::DYNAMIC;

const SED: Spec = Spec {
    short_flags: "nErsuzb",
    short_values: "efl",
    short_optional: "i",
    long_flags: &[
        "quiet",
        "silent",
        "debug",
        "follow-symlinks",
        "posix",
        "regexp-extended",
        "separate",
        "sandbox",
        "unbuffered",
        "null-data",
        "zero-terminated",
        "binary",
        "help",
        "version",
    ],
    long_values: &["expression", "file", "line-length"],
    long_optional: &["in-place"],
};

/// `sed [options] [script] [files]` (GNU: options and files interleave).
pub(crate) fn sed(t: &mut Trace, w: &[String], _: &Ctx) -> Next {
    let Ok((options, operands)) = opts::parse_permuted(&SED, w, 1) else {
        return Next::Raw;
    };
    if options.iter().any(|o| o.is('f', "file")) {
        return Next::Raw;
    }
    let mut scripts: Vec<&str> = options
        .iter()
        .filter(|o| o.is('e', "expression"))
        .filter_map(|o| o.value)
        .collect();
    if scripts.is_empty() {
        match operands.first() {
            Some(&i) => scripts.push(&w[i]),
            None => return Next::Raw,
        }
    }
    if options.iter().any(|o| o.long == Some("sandbox")) {
        return Next::Done;
    }
    let script = scripts.join("\n");
    if script.contains(DYNAMIC) || executes(&script) {
        t.shell = true;
        return Next::Raw;
    }
    Next::Done
}

/// Whether a sed script can run a program (or cannot be read).
pub(crate) fn executes(script: &str) -> bool {
    Reader {
        b: script.as_bytes(),
        i: 0,
    }
    .executes()
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_line(&mut self) {
        while self.peek().is_some_and(|b| b != b'\n') {
            self.i += 1;
        }
    }

    /// A label: up to a newline or `;`.
    fn label(&mut self) {
        while self.peek().is_some_and(|b| b != b'\n' && b != b';') {
            self.i += 1;
        }
    }

    /// Text delimited by `delim` with backslash escapes; false when the
    /// delimiter never comes.
    fn delimited(&mut self, delim: u8) -> bool {
        while let Some(b) = self.peek() {
            self.i += 1;
            if b == b'\\' {
                self.i += 1;
            } else if b == delim {
                return true;
            }
        }
        false
    }

    /// An address (`N`, `$`, `/re/`, `\cREc`, `first~step`), optionally
    /// followed by `I`/`M`; false when malformed.
    fn address(&mut self) -> bool {
        match self.peek() {
            Some(b'0'..=b'9') => {
                while self.peek().is_some_and(|b| b.is_ascii_digit() || b == b'~') {
                    self.i += 1;
                }
            }
            Some(b'$') => self.i += 1,
            Some(b'/') => {
                self.i += 1;
                if !self.delimited(b'/') {
                    return false;
                }
                self.regex_flags();
            }
            Some(b'\\') => {
                self.i += 1;
                let Some(delim) = self.peek() else {
                    return false;
                };
                self.i += 1;
                if !self.delimited(delim) {
                    return false;
                }
                self.regex_flags();
            }
            _ => {}
        }
        true
    }

    fn regex_flags(&mut self) {
        while matches!(self.peek(), Some(b'I' | b'M')) {
            self.i += 1;
        }
    }

    fn executes(&mut self) -> bool {
        loop {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b';')) {
                self.i += 1;
            }
            let Some(_) = self.peek() else {
                return false;
            };
            if !self.address() {
                return true;
            }
            self.skip_blanks();
            if self.peek() == Some(b',') {
                self.i += 1;
                self.skip_blanks();
                if matches!(self.peek(), Some(b'+' | b'~')) {
                    self.i += 1;
                }
                if !self.address() {
                    return true;
                }
            }
            self.skip_blanks();
            while self.peek() == Some(b'!') {
                self.i += 1;
                self.skip_blanks();
            }
            let Some(command) = self.peek() else {
                return true;
            };
            self.i += 1;
            match command {
                b'{' | b'}' | b'=' | b'd' | b'D' | b'g' | b'G' | b'h' | b'H' | b'n' | b'N'
                | b'p' | b'P' | b'x' | b'z' | b'F' => {}
                b'#' => self.skip_line(),
                b':' | b'b' | b't' | b'T' | b'v' => self.label(),
                b'q' | b'Q' | b'l' | b'L' => {
                    self.skip_blanks();
                    while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                        self.i += 1;
                    }
                }
                b'r' | b'R' | b'w' | b'W' => self.skip_line(),
                b'a' | b'i' | b'c' => self.text(),
                b's' => {
                    let Some(delim) = self.peek() else {
                        return true;
                    };
                    if delim == b'\n' || delim == b'\\' {
                        return true;
                    }
                    self.i += 1;
                    if !self.delimited(delim) || !self.delimited(delim) {
                        return true;
                    }
                    loop {
                        match self.peek() {
                            Some(b'e') => return true,
                            Some(b'w') => {
                                self.skip_line();
                                break;
                            }
                            Some(b'g' | b'p' | b'i' | b'I' | b'm' | b'M' | b'0'..=b'9') => {
                                self.i += 1
                            }
                            _ => break,
                        }
                    }
                }
                b'y' => {
                    let Some(delim) = self.peek() else {
                        return true;
                    };
                    self.i += 1;
                    if !self.delimited(delim) || !self.delimited(delim) {
                        return true;
                    }
                }
                // `e`, and any command this reader does not know.
                _ => return true,
            }
        }
    }

    /// The text of `a`, `i`, `c`: to the end of the line, continued while a
    /// line ends in a backslash.
    fn text(&mut self) {
        let mut escaped = false;
        while let Some(b) = self.peek() {
            if b == b'\n' && !escaped {
                break;
            }
            escaped = b == b'\\' && !escaped;
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::executes;

    #[test]
    fn scripts_that_run_programs() {
        for script in [
            "e",
            "1e id",
            "s/a/id/e",
            "s/a/b/ge",
            "s|a|b|e",
            "/x/e",
            "$!e",
            "1,3{e\n}",
            "s/a/b/;e",
            "p;s/x/y/;1e",
            "y/a/b",
            "s/a",
            "k",
            "/unterminated",
        ] {
            assert!(
                executes(script),
                "{script:?} must count as running a program"
            );
        }
    }

    #[test]
    fn scripts_that_do_not() {
        for script in [
            "s/hello/world/",
            "s/e/E/g",
            "s/\\/e/x/",
            "s,e,f,;p",
            "/echo/d",
            "/e/,/f/s/e/x/2",
            "1d;$d",
            "y/abe/xyz/",
            "a\\\nsome e text",
            "a append e here",
            "i\\\ninserted e\\\nmore e",
            "# a comment with e\np",
            ":loop e\nb loop",
            "w /tmp/e.txt",
            "s/a/b/w /tmp/e",
            "0~2d",
            "\\,e,d",
        ] {
            assert!(!executes(script), "{script:?} runs nothing");
        }
    }
}
