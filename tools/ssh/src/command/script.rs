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
//! rest of the line. Here-document bodies are read as commands (too many,
//! never too few).
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

/// Every simple command of `text`, in source order.
pub(crate) fn commands(text: &str) -> Vec<Command> {
    scan(text, 0)
}

/// Deepest backquote nesting read (a deeper one is not read: the call is a
/// raw shell call anyway, and it takes 2^16 backslashes to get there).
const MAX_BACKQUOTE_DEPTH: u32 = 16;

fn scan(text: &str, depth: u32) -> Vec<Command> {
    let mut scanner = Scanner {
        text: text.as_bytes(),
        source: text,
        i: 0,
        depth,
        modes: vec![Mode::List],
        lists: vec![List::new(ListKind::Top)],
        out: Vec::new(),
    };
    scanner.run();
    let mut out = scanner.finish();
    out.sort_by_key(|c| c.start);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A command list (top of `lists`).
    List,
    /// Inside `"..."`.
    DQuote,
    /// Inside `${...}`, with the depth of inner braces.
    Param(u32),
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
    modes: Vec<Mode>,
    lists: Vec<List>,
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
                Mode::Param(depth) => self.in_param(c, depth),
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
            b'\n' | b'\r' | b';' | b'&' | b'|' => {
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
    /// (and capped at [`MAX_BACKQUOTE_DEPTH`]).
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
        if self.depth >= MAX_BACKQUOTE_DEPTH {
            return;
        }
        let text = String::from_utf8_lossy(&inner);
        for mut command in scan(&text, self.depth + 1) {
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
        self.i += 1;
        while matches!(self.peek(0), Some(b'<' | b'>' | b'&' | b'|' | b'-')) {
            self.i += 1;
        }
        self.list().skip_next = true;
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
                self.modes.push(Mode::Param(0));
            }
            (Some(b'\''), _) if in_list => {
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

    fn in_param(&mut self, c: u8, depth: u32) {
        match c {
            b'}' => {
                self.i += 1;
                self.modes.pop();
                if depth > 0 {
                    self.modes.push(Mode::Param(depth - 1));
                }
            }
            b'{' => {
                self.i += 1;
                self.modes.pop();
                self.modes.push(Mode::Param(depth + 1));
            }
            b'\\' => self.i += 2,
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
