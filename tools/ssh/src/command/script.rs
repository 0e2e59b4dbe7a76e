//! A best-effort reader of shell text: finds every simple command of a raw
//! shell call, at every nesting level, so that `runs` can name the programs.
//!
//! It is not a shell parser and does not decide anything on its own: a text
//! it reads is already a raw shell call (`ssh:shell`). It errs towards
//! finding too many commands rather than too few: `;` `&` `|` newlines and
//! carriage returns end a command; `( )` subshells, `$( )` and backquote
//! substitutions, `<( )` / `>( )` process substitutions and the insides of
//! `${ }` and `$(( ))` are read as nested command lists (backquotes, whose
//! nesting is written with backslashes, by reading their unescaped text); a `)` that closes
//! nothing (a `case` pattern) ends a command; reserved words that start a
//! command (`if then else elif fi do done while until { } !`) are skipped,
//! `for`/`select`/`case`/`[[` commands are skipped up to their end (their
//! substitutions still count) and `function NAME` drops the name; leading
//! assignments (`X=1 cmd`) and redirection targets (`> file`, `2>&1`) are
//! not words of the command; a `#` at the start of a word comments out the
//! rest of the line; here-document bodies are data, read only for the
//! substitutions of an unquoted delimiter's body. Where bash and dash quote
//! differently (`$'...'`, a `'` inside `"${x:-...}"`), the commands either
//! would find are all kept.
//!
//! A word whose value the shell computes (a parameter, a substitution, a
//! glob, a tilde, a brace expansion, `$'...'`) is *dynamic*: it is handed on
//! as [`DYNAMIC`], the literal text before the first expansion, [`DYNAMIC`]
//! and the word's source text. Callers never take such a word for a program
//! name or an option (it starts with a NUL, which no real word holds: NUL
//! bytes are refused before analysis).
//!
//! One pass over the bytes with an explicit stack (no backtracking): linear
//! in the length of the text whatever the nesting of `$( )`, `( )`, `${ }`
//! and quotes; backquotes are read again once per level, and their levels
//! are logarithmic in the length.

/// First byte of a dynamic word (see the module doc).
pub(crate) const DYNAMIC: char = '\0';

/// A simple command: where it starts in the text and its words (quotes
/// removed; dynamic words encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    /// Byte offset of its first word.
    pub start: usize,
    /// Its words.
    pub words: Vec<String>,
}

/// The parts of a dynamic word: (literal prefix, source text).
pub(crate) fn dynamic_parts(word: &str) -> Option<(&str, &str)> {
    word.strip_prefix(DYNAMIC)?.split_once(DYNAMIC)
}

/// Every simple command of `text`, in source order: the union of what
/// bash and a POSIX shell (dash) would find, where their quoting differs.
pub(crate) fn commands(text: &str) -> Vec<Command> {
    let mut out = scan(text, 0, BASH);
    out.extend(scan(text, 0, POSIX));
    out.sort_by(|a, b| (a.start, &a.words).cmp(&(b.start, &b.words)));
    out.dedup();
    out
}

/// How a shell reads the quoting the analysis cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dialect {
    /// `$'...'` is an ANSI-C string (bash, ksh, zsh); in dash it is `$`
    /// followed by a single-quoted string, so `$'\'; id; #'` runs `id` in
    /// dash only.
    ansi_c: bool,
    /// A `'` inside `"${x:-...}"` opens a quoted string (bash); dash keeps it
    /// as a character.
    quotes_in_dquoted_param: bool,
}

const BASH: Dialect = Dialect {
    ansi_c: true,
    quotes_in_dquoted_param: true,
};

const POSIX: Dialect = Dialect {
    ansi_c: false,
    quotes_in_dquoted_param: false,
};

/// Deepest nesting of texts read again (backquotes, here-document bodies);
/// deeper ones are not read (the call is a raw shell call anyway; nested
/// backquotes need 2^16 backslashes to get there).
const MAX_NESTED_SCANS: u32 = 16;

fn scanner(text: &str, depth: u32, dialect: Dialect) -> Scanner<'_> {
    Scanner {
        text: text.as_bytes(),
        source: text,
        i: 0,
        depth,
        dialect,
        modes: vec![Mode::List],
        lists: vec![List::new(ListKind::Top)],
        pending: Vec::new(),
        out: Vec::new(),
    }
}

fn scan(text: &str, depth: u32, dialect: Dialect) -> Vec<Command> {
    let mut scanner = scanner(text, depth, dialect);
    scanner.run();
    let mut out = scanner.finish();
    out.sort_by_key(|c| c.start);
    out
}

/// The commands in the substitutions of an expanded here-document body.
fn scan_here_document(body: &str, depth: u32, dialect: Dialect) -> Vec<Command> {
    let mut scanner = scanner(body, depth, dialect);
    scanner.modes.push(Mode::HereDoc);
    scanner.run();
    // The body itself is not a command: end only the lists opened in it.
    while scanner.lists.len() > 1 {
        scanner.end_word();
        scanner.end_command();
        scanner.lists.pop();
    }
    scanner.out
}

/// A here-document whose body starts at the next newline.
#[derive(Debug)]
struct HereDoc {
    delimiter: Vec<u8>,
    /// `<<-`: leading tabs are removed from the lines.
    strip_tabs: bool,
    /// The delimiter was not quoted: the body is expanded.
    expand: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A command list (top of `lists`).
    List,
    /// Inside `"..."`.
    DQuote,
    /// Inside `${...}`, with the depth of inner braces and whether it is
    /// inside double quotes (or a here-document).
    Param(u32, bool),
    /// An expanded here-document body (`$` and backquotes are special).
    HereDoc,
    /// Inside `$((...))`, with the depth of inner parentheses.
    Arith(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Top,
    Subshell,
    CmdSubst,
    ProcSubst,
}

/// The state of one command list.
#[derive(Debug)]
struct List {
    kind: ListKind,
    cmd: Vec<String>,
    cmd_start: usize,
    word: Option<Word>,
    /// The next word is a redirection target or a function name.
    skip_next: bool,
    /// The next word is a here-document delimiter (`<<-`: true).
    here_doc: Option<bool>,
    /// The rest of this command is not commands (`for`, `case`, `[[`, a
    /// `case` pattern).
    skip_rest: bool,
    /// Open `case` commands (their `)` end patterns, not this list).
    cases: u32,
}

impl List {
    fn new(kind: ListKind) -> Self {
        List {
            kind,
            cmd: Vec::new(),
            cmd_start: 0,
            word: None,
            skip_next: false,
            here_doc: None,
            skip_rest: false,
            cases: 0,
        }
    }
}

/// A word being read.
#[derive(Debug)]
struct Word {
    start: usize,
    text: Vec<u8>,
    quoted: bool,
    /// The literal text before the first expansion, once there is one.
    prefix: Option<Vec<u8>>,
}

struct Scanner<'a> {
    text: &'a [u8],
    source: &'a str,
    i: usize,
    depth: u32,
    dialect: Dialect,
    modes: Vec<Mode>,
    lists: Vec<List>,
    /// Here-documents whose bodies start at the next newline.
    pending: Vec<HereDoc>,
    out: Vec<Command>,
}

/// Reserved words skipped at the start of a command.
const SKIPPED: &[&str] = &[
    "!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until",
];
/// Reserved words whose command is not a program (its substitutions still are).
const NOT_COMMANDS: &[&str] = &["for", "select", "case", "[["];

impl Scanner<'_> {
    fn run(&mut self) {
        while self.i < self.text.len() {
            let c = self.text[self.i];
            match self.modes.last().copied().unwrap_or(Mode::List) {
                Mode::List => self.in_list(c),
                Mode::DQuote => self.in_dquote(c),
                Mode::Param(depth, dquoted) => self.in_param(c, depth, dquoted),
                Mode::HereDoc => self.in_here_document(c),
                Mode::Arith(depth) => self.in_arith(c, depth),
            }
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.i + ahead).copied()
    }

    fn list(&mut self) -> &mut List {
        // `lists` always holds the top list; a push and a pop of `List` modes
        // keep both stacks in step.
        let last = self.lists.len() - 1;
        &mut self.lists[last]
    }

    fn cases(&self) -> u32 {
        self.lists.last().map_or(0, |l| l.cases)
    }

    fn word(&mut self) -> &mut Word {
        let start = self.i;
        self.list().word.get_or_insert_with(|| Word {
            start,
            text: Vec::new(),
            quoted: false,
            prefix: None,
        })
    }

    fn push_byte(&mut self, b: u8) {
        self.word().text.push(b);
    }

    /// The current word becomes dynamic (an expansion starts here).
    fn expand(&mut self) {
        let word = self.word();
        if word.prefix.is_none() {
            word.prefix = Some(word.text.clone());
        }
    }

    fn push_list(&mut self, kind: ListKind) {
        self.modes.push(Mode::List);
        self.lists.push(List::new(kind));
    }

    /// Ends the innermost list (its last command included).
    fn pop_list(&mut self) {
        self.end_word();
        self.end_command();
        if self.lists.len() > 1 {
            self.lists.pop();
            self.modes.pop();
        }
    }

    fn in_list(&mut self, c: u8) {
        let kind = self.list().kind;
        match c {
            b' ' | b'\t' => {
                self.end_word();
                self.i += 1;
            }
            b';' if self.cases() > 0 && matches!(self.peek(1), Some(b';' | b'&')) => {
                // `;;`, `;&`, `;;&` in a `case`: a pattern follows.
                self.end_word();
                self.end_command();
                self.i += 2;
                if self.peek(0) == Some(b'&') {
                    self.i += 1;
                }
                self.list().skip_rest = true;
            }
            b'\n' => {
                self.end_word();
                self.end_command();
                self.i += 1;
                if !self.pending.is_empty() {
                    self.here_document_bodies();
                }
            }
            b'|' if self.cases() > 0 && self.list().skip_rest => {
                // `a|b)`: alternatives of a `case` pattern.
                self.end_word();
                self.i += 1;
            }
            b'\r' | b';' | b'&' | b'|' => {
                self.end_word();
                self.end_command();
                self.i += 1;
            }
            b'(' if self.cases() > 0 => {
                // The optional `(` of a `case` pattern.
                self.end_word();
                self.i += 1;
            }
            b'(' => {
                self.end_word();
                self.i += 1;
                self.push_list(ListKind::Subshell);
            }
            b')' => {
                self.i += 1;
                if self.cases() == 0
                    && matches!(
                        kind,
                        ListKind::Subshell | ListKind::CmdSubst | ListKind::ProcSubst
                    )
                {
                    self.pop_list();
                    if kind == ListKind::Subshell {
                        // `(a) b` and `f() { b; }`: what follows is a new command.
                        self.end_word();
                        self.end_command();
                    }
                } else {
                    // The end of a `case` pattern, or a stray one.
                    self.end_word();
                    self.end_command();
                }
            }
            b'`' => self.backquoted(),
            b'<' | b'>' if self.peek(1) == Some(b'(') => {
                self.expand();
                self.i += 2;
                self.push_list(ListKind::ProcSubst);
            }
            b'<' | b'>' => self.redirection(),
            b'\'' => self.single_quoted(),
            b'"' => {
                self.word().quoted = true;
                self.i += 1;
                self.modes.push(Mode::DQuote);
            }
            b'\\' => self.escaped(),
            b'$' => self.dollar(true),
            b'#' if self.list().word.is_none() => {
                while self.i < self.text.len() && self.text[self.i] != b'\n' {
                    self.i += 1;
                }
            }
            b'*' | b'?' | b'[' | b']' | b'~' | b'{' | b'}' => {
                // Globs, tildes and brace expansions: the value is computed.
                self.expand();
                self.push_byte(c);
                self.i += 1;
            }
            _ => {
                self.push_byte(c);
                self.i += 1;
            }
        }
    }

    /// A backquoted substitution: its text, unescaped (`\\` `\``
    /// `\$`), is read as a script of its own. Nesting needs the backslashes
    /// to double at each level, so the depth is logarithmic in the length
    /// (and capped at [`MAX_NESTED_SCANS`]).
    fn backquoted(&mut self) {
        self.expand();
        let open = self.i;
        self.i += 1;
        let mut inner = Vec::new();
        while let Some(b) = self.peek(0) {
            self.i += 1;
            match b {
                b'`' => break,
                b'\\' => match self.peek(0) {
                    Some(n @ (b'`' | b'\\' | b'$')) => {
                        inner.push(n);
                        self.i += 1;
                    }
                    _ => inner.push(b'\\'),
                },
                _ => inner.push(b),
            }
        }
        if self.depth >= MAX_NESTED_SCANS {
            return;
        }
        let text = String::from_utf8_lossy(&inner);
        for mut command in scan(&text, self.depth + 1, self.dialect) {
            command.start = open;
            self.out.push(command);
        }
    }

    /// `<`, `>`, `>>`, `2>&1`, `<<EOF`, `<<<`...: the next word is a target.
    fn redirection(&mut self) {
        let digits_only = self.list().word.as_ref().is_some_and(|w| {
            !w.quoted
                && w.prefix.is_none()
                && !w.text.is_empty()
                && w.text.iter().all(u8::is_ascii_digit)
        });
        if digits_only {
            // `2>`: the word is the file descriptor.
            self.list().word = None;
        } else {
            self.end_word();
        }
        let start = self.i;
        self.i += 1;
        while matches!(self.peek(0), Some(b'<' | b'>' | b'&' | b'|' | b'-')) {
            self.i += 1;
        }
        let operator = &self.text[start..self.i];
        let here_doc = match operator {
            b"<<" => Some(false),
            b"<<-" => Some(true),
            _ => None,
        };
        let list = self.list();
        list.skip_next = true;
        list.here_doc = here_doc;
    }

    /// Skips the bodies of the pending here-documents (the text after a
    /// newline up to each delimiter line); an expanded body is read for its
    /// substitutions.
    fn here_document_bodies(&mut self) {
        for doc in std::mem::take(&mut self.pending) {
            let body_start = self.i;
            let mut body_end = self.text.len();
            while self.i < self.text.len() {
                let line_start = self.i;
                let line_end = self.text[line_start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(self.text.len(), |at| line_start + at);
                self.i = (line_end + 1).min(self.text.len());
                let mut line = &self.text[line_start..line_end];
                if doc.strip_tabs {
                    while let [b'\t', rest @ ..] = line {
                        line = rest;
                    }
                }
                if line == doc.delimiter.as_slice() {
                    body_end = line_start;
                    break;
                }
            }
            if doc.expand && self.depth < MAX_NESTED_SCANS {
                let body = String::from_utf8_lossy(&self.text[body_start..body_end]);
                for mut command in scan_here_document(&body, self.depth + 1, self.dialect) {
                    command.start = body_start;
                    self.out.push(command);
                }
            }
        }
    }

    fn single_quoted(&mut self) {
        self.word().quoted = true;
        self.i += 1;
        while let Some(b) = self.peek(0) {
            self.i += 1;
            if b == b'\'' {
                return;
            }
            self.push_byte(b);
        }
    }

    fn escaped(&mut self) {
        match self.peek(1) {
            Some(b'\n') => self.i += 2,
            Some(b) => {
                self.word().quoted = true;
                self.push_byte(b);
                self.i += 2;
            }
            None => {
                self.push_byte(b'\\');
                self.i += 1;
            }
        }
    }

    /// `$` in a list, in double quotes, in `${ }` or in `$(( ))`.
    fn dollar(&mut self, in_list: bool) {
        match (self.peek(1), self.peek(2)) {
            (Some(b'('), Some(b'(')) => {
                self.expand();
                self.i += 3;
                self.modes.push(Mode::Arith(0));
            }
            (Some(b'('), _) => {
                self.expand();
                self.i += 2;
                self.push_list(ListKind::CmdSubst);
            }
            (Some(b'{'), _) => {
                self.expand();
                self.i += 2;
                let dquoted = matches!(self.modes.last(), Some(Mode::DQuote | Mode::HereDoc));
                self.modes.push(Mode::Param(0, dquoted));
            }
            (Some(b'\''), _) if in_list && self.dialect.ansi_c => {
                // $'...' (bash, ksh, zsh): escapes are decoded by the shell.
                self.expand();
                self.i += 2;
                while let Some(b) = self.peek(0) {
                    self.i += if b == b'\\' { 2 } else { 1 };
                    if b == b'\'' {
                        break;
                    }
                }
            }
            (Some(b'"'), _) if in_list => {
                self.word().quoted = true;
                self.i += 2;
                self.modes.push(Mode::DQuote);
            }
            (Some(b), _) if b.is_ascii_alphabetic() || b == b'_' => {
                self.expand();
                self.i += 1;
                while self
                    .peek(0)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    self.i += 1;
                }
            }
            (Some(b), _) if b.is_ascii_digit() || b"@*#?-$!".contains(&b) => {
                self.expand();
                self.i += 2;
            }
            _ => {
                self.push_byte(b'$');
                self.i += 1;
            }
        }
    }

    fn in_dquote(&mut self, c: u8) {
        match c {
            b'"' => {
                self.i += 1;
                self.modes.pop();
            }
            b'\\' => match self.peek(1) {
                Some(b'\n') => self.i += 2,
                Some(b @ (b'$' | b'`' | b'"' | b'\\')) => {
                    self.push_byte(b);
                    self.i += 2;
                }
                _ => {
                    self.push_byte(b'\\');
                    self.i += 1;
                }
            },
            b'$' => self.dollar(false),
            b'`' => self.backquoted(),
            _ => {
                self.push_byte(c);
                self.i += 1;
            }
        }
    }

    fn in_param(&mut self, c: u8, depth: u32, dquoted: bool) {
        match c {
            b'}' => {
                self.i += 1;
                self.modes.pop();
                if depth > 0 {
                    self.modes.push(Mode::Param(depth - 1, dquoted));
                }
            }
            b'{' => {
                self.i += 1;
                self.modes.pop();
                self.modes.push(Mode::Param(depth + 1, dquoted));
            }
            b'\\' => self.i += 2,
            b'\'' if dquoted && !self.dialect.quotes_in_dquoted_param => self.i += 1,
            b'\'' => {
                self.i += 1;
                while let Some(b) = self.peek(0) {
                    self.i += 1;
                    if b == b'\'' {
                        break;
                    }
                }
            }
            b'"' => {
                self.i += 1;
                self.modes.push(Mode::DQuote);
            }
            b'$' => self.dollar(false),
            b'`' => self.backquoted(),
            _ => self.i += 1,
        }
    }

    /// An expanded here-document body: like double quotes, but a `"` is a
    /// character and only the end of the body ends it.
    fn in_here_document(&mut self, c: u8) {
        match c {
            b'\\' => self.i += 2,
            b'$' => self.dollar(false),
            b'`' => self.backquoted(),
            _ => self.i += 1,
        }
    }

    fn in_arith(&mut self, c: u8, depth: u32) {
        match c {
            b'(' => {
                self.i += 1;
                self.modes.pop();
                self.modes.push(Mode::Arith(depth + 1));
            }
            b')' => {
                self.modes.pop();
                if depth > 0 {
                    self.i += 1;
                    self.modes.push(Mode::Arith(depth - 1));
                } else {
                    self.i += if self.peek(1) == Some(b')') { 2 } else { 1 };
                }
            }
            b'$' => self.dollar(false),
            b'`' => self.backquoted(),
            _ => self.i += 1,
        }
    }

    /// Ends the word being read in the innermost list.
    fn end_word(&mut self) {
        let end = self.i.min(self.text.len());
        let source = self.source;
        let list = self.list();
        let Some(word) = list.word.take() else {
            return;
        };
        if list.skip_next {
            list.skip_next = false;
            if let Some(strip_tabs) = list.here_doc.take() {
                self.pending.push(HereDoc {
                    delimiter: word.text,
                    strip_tabs,
                    expand: !word.quoted,
                });
            }
            return;
        }
        // Reserved words and assignments are recognised on the source text:
        // a quoted or escaped one (`"if"`, `\if`, `'X'=1`) is a plain word.
        let raw = source.get(word.start..end).unwrap_or("");
        if list.cmd.is_empty() && raw == "esac" {
            list.cases = list.cases.saturating_sub(1);
            list.skip_rest = false;
            return;
        }
        if list.skip_rest {
            return;
        }
        if list.cmd.is_empty() {
            if SKIPPED.contains(&raw) || is_assignment(raw) {
                return;
            }
            if NOT_COMMANDS.contains(&raw) {
                if raw == "case" {
                    list.cases += 1;
                }
                list.skip_rest = true;
                return;
            }
            if raw == "function" {
                list.skip_next = true;
                return;
            }
        }
        let encoded = match word.prefix {
            Some(prefix) => format!(
                "{DYNAMIC}{}{DYNAMIC}{}",
                String::from_utf8_lossy(&prefix),
                shortened(raw)
            ),
            None => String::from_utf8_lossy(&word.text).into_owned(),
        };
        if list.cmd.is_empty() {
            list.cmd_start = word.start;
        }
        list.cmd.push(encoded);
    }

    /// Ends the command being read in the innermost list.
    fn end_command(&mut self) {
        let list = self.list();
        list.skip_next = false;
        list.here_doc = None;
        list.skip_rest = false;
        if list.cmd.is_empty() {
            return;
        }
        let words = std::mem::take(&mut list.cmd);
        let start = list.cmd_start;
        self.out.push(Command { start, words });
    }

    /// Ends every open word, command and list at the end of the text.
    fn finish(mut self) -> Vec<Command> {
        loop {
            self.end_word();
            self.end_command();
            if self.lists.len() <= 1 {
                break;
            }
            self.lists.pop();
        }
        self.out
    }
}

/// Longest source text kept for a dynamic word (nested words overlap:
/// keeping them whole would make the work quadratic).
const MAX_SOURCE: usize = 200;

/// The source text of a dynamic word, cut at [`MAX_SOURCE`] bytes (with `…`).
fn shortened(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.len() <= MAX_SOURCE {
        return raw.into();
    }
    let mut end = MAX_SOURCE;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &raw[..end]).into()
}

/// `NAME=...` or `NAME+=...` at the start of a command (source text); reads
/// only the name.
fn is_assignment(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let name = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    let rest = &bytes[name..];
    name > 0 && !bytes[0].is_ascii_digit() && (rest.starts_with(b"=") || rest.starts_with(b"+="))
}

#[cfg(test)]
mod tests {
    use super::{DYNAMIC, commands, dynamic_parts};

    /// The program words found, dynamic ones as their source text (a
    /// command both dialects read with different words appears once).
    fn programs(text: &str) -> Vec<String> {
        let mut found: Vec<(usize, String)> = commands(text)
            .into_iter()
            .map(|c| {
                let first = &c.words[0];
                (
                    c.start,
                    dynamic_parts(first).map_or(first.clone(), |(_, s)| s.to_owned()),
                )
            })
            .collect();
        found.dedup();
        found.into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn separators_and_nesting() {
        assert_eq!(
            programs("a; b && c || d | e & f\ng\rh"),
            ["a", "b", "c", "d", "e", "f", "g", "h"]
        );
        assert_eq!(
            programs("a $(b $(c)) `d` <(e) >(f) \"$(g)\" ${x:-$(h)} $(( $(i) ))"),
            ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        );
        assert_eq!(programs("(a; (b)) { c; }"), ["a", "b", "c"]);
    }

    #[test]
    fn words_that_are_not_programs() {
        assert_eq!(programs("X=1 Y=\"a b\" a > f 2>&1 < g"), ["a"]);
        assert_eq!(
            programs("if a; then b; elif c; else d; fi"),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            programs("for x in 1 2; do a; done; while b; do c; done"),
            ["a", "b", "c"]
        );
        assert_eq!(
            programs("case $x in (p) a;; q|r) b;& s) c;;& esac; d"),
            ["a", "b", "c", "d"]
        );
        assert_eq!(programs("function f { a; }; g() { b; }"), ["a", "g", "b"]);
        assert_eq!(programs("a # b; c\nd"), ["a", "d"]);
        assert_eq!(programs("[[ -f x ]] && a"), ["a"]);
        assert_eq!(programs("\"if\" x; \\for y"), ["if", "for"]);
    }

    #[test]
    fn dynamic_words() {
        let found = commands("r$(echo m) -rf /");
        let (prefix, source) = dynamic_parts(&found[0].words[0]).unwrap();
        assert_eq!((prefix, source), ("r", "r$(echo m)"));
        assert!(found[0].words[0].starts_with(DYNAMIC));
        assert_eq!(
            programs("$X; ${Y}; ~/bin/z; /usr/bin/s?do; {a,b}"),
            ["$X", "${Y}", "~/bin/z", "/usr/bin/s?do", "{a,b}"]
        );
        let long = format!("$({})", "a ".repeat(500));
        assert!(
            dynamic_parts(&commands(&format!("x{long}"))[0].words[0])
                .unwrap()
                .1
                .ends_with('…')
        );
    }

    #[test]
    fn here_documents() {
        // A quoted body is data, apostrophes included.
        assert_eq!(programs("cat <<'EOF'\nit's $(a)\nEOF\nb"), ["cat", "b"]);
        assert_eq!(programs("cat <<-\"E\"\n\tit's\n\tE\nb"), ["cat", "b"]);
        // An unquoted body is expanded: its substitutions run.
        assert_eq!(
            programs("cat <<EOF; c\nit's $(a) `d`\nEOF\nb"),
            ["cat", "c", "a", "d", "b"]
        );
        // No delimiter line: the rest is body.
        assert_eq!(programs("cat <<E\nx; y"), ["cat"]);
        // `<<<` is a here-string, not a here-document.
        assert_eq!(programs("cat <<< x\nb"), ["cat", "b"]);
    }

    #[test]
    fn dialects_are_united() {
        // dash reads `$'\'` as `$` and the string `\`, so `a` runs there.
        assert_eq!(programs("echo $'\\'; a; #'"), ["echo", "a"]);
        // bash reads the `'` in "${x:-'...'}" as a quote; dash does not.
        let found = programs("echo \"${x:-it's}\"; a");
        assert!(found.contains(&"a".to_owned()), "{found:?}");
    }
}
