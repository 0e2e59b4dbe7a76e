//! What reviewers see of a `sql_query` call ([`summary`]): a title (kinds
//! and tables), each statement, and the tables it touches. A statement is
//! shown as its canonical SQL (exactly what will run) cut into code parts
//! and literal parts, so the gateway masks each literal
//! on its own and a value can never hide the predicates around it from a
//! reviewer (issue #8: `note = '-----BEGIN PRIVATE KEY-----' OR id > 0`).
//!
//! Cut with sqlparser's tokenizer in the connection's dialect, by token
//! positions in the text (no re-printing): every string, byte, hex,
//! national, escaped and dollar-quoted string and every number is a
//! [`TextPart::Literal`]; a quoted identifier is a code part of its own;
//! everything else is code. The tokenizer sees strings the AST keeps outside
//! `Value` too (`COMMENT ... IS '...'`, `PASSWORD '...'`).
//!
//! If the text cannot be cut (a tokenizer error, positions that do not add
//! up), the statement is one code part and is masked whole, as it was before
//! parts existed; never an error, never a panic.

use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText, TextPart};
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::analysis::Dialect;
use crate::prepared::PreparedStatement;

/// What a reviewer is asked about for `sql_query`: the title says which
/// kinds of statement run on which tables (`UPDATE on public.orders`), each
/// statement runs as its canonical SQL cut into code and literal parts (in
/// `dialect`; `None`: one code part each, masked whole), and the resources
/// are every table, each once.
pub fn summary(dialect: Option<Dialect>, statements: &[PreparedStatement]) -> ReviewSummary {
    let mut kinds: Vec<String> = Vec::new();
    let mut tables: Vec<String> = Vec::new();
    for s in statements {
        let kind = s.kind.to_uppercase();
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        for t in &s.tables {
            if !tables.contains(t) {
                tables.push(t.clone());
            }
        }
    }
    let what = match statements.len() {
        1 => kinds.join(""),
        n => format!("{n} statements: {}", kinds.join(", ")),
    };
    let title = if tables.is_empty() {
        what
    } else {
        format!("{what} on {}", tables.join(", "))
    };
    let runs = statements
        .iter()
        .map(|s| ReviewItem {
            label: s.kind.clone(),
            resources: s.tables.clone(),
            text: match dialect {
                Some(d) => ReviewText {
                    parts: parts(d, &s.sql),
                },
                None => ReviewText::code(s.sql.clone()),
            },
        })
        .collect();
    ReviewSummary {
        title,
        runs,
        resources: tables,
        diff: None,
    }
}

/// `sql` (one canonical statement) as code and literal parts; joined, the
/// parts are `sql` byte for byte.
pub fn parts(dialect: Dialect, sql: &str) -> Vec<TextPart> {
    try_parts(dialect, sql).unwrap_or_else(|| vec![TextPart::Code(sql.to_string())])
}

fn tokenize(dialect: Dialect, sql: &str) -> Option<Vec<TokenWithSpan>> {
    let result = match dialect {
        Dialect::Postgres => Tokenizer::new(&PostgreSqlDialect {}, sql)
            .with_unescape(false)
            .tokenize_with_location(),
        Dialect::MySql => Tokenizer::new(&MySqlDialect {}, sql)
            .with_unescape(false)
            .tokenize_with_location(),
        Dialect::Sqlite => Tokenizer::new(&SQLiteDialect {}, sql)
            .with_unescape(false)
            .tokenize_with_location(),
    };
    result.ok()
}

/// What a token is for the review form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Code,
    /// A quoted identifier: code, but a part of its own.
    QuotedName,
    Literal,
}

fn role(t: &Token) -> Role {
    match t {
        Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => Role::Literal,
        Token::Word(w) if w.quote_style.is_some() => Role::QuotedName,
        _ => Role::Code,
    }
}

/// Byte offset of every token's start, from its line and column (columns
/// count characters). `None` when a position is not in `sql` or positions
/// go backwards.
fn offsets(sql: &str, tokens: &[TokenWithSpan]) -> Option<Vec<usize>> {
    let mut line_starts = vec![0usize];
    line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
    let mut out = Vec::with_capacity(tokens.len());
    let mut last = 0usize;
    for t in tokens {
        let loc = t.span.start;
        let line = usize::try_from(loc.line).ok()?.checked_sub(1)?;
        let col = usize::try_from(loc.column).ok()?.checked_sub(1)?;
        let start = *line_starts.get(line)?;
        let rest = &sql[start..];
        let at = match rest.char_indices().nth(col) {
            Some((i, _)) => start + i,
            None if rest.chars().count() == col => sql.len(),
            None => return None,
        };
        if at < last {
            return None;
        }
        last = at;
        out.push(at);
    }
    Some(out)
}

/// [`parts`] without the fallback: `None` when `sql` cannot be cut.
pub fn try_parts(dialect: Dialect, sql: &str) -> Option<Vec<TextPart>> {
    let tokens = tokenize(dialect, sql)?;
    let starts = offsets(sql, &tokens)?;
    if starts.first().is_some_and(|s| *s != 0) {
        return None;
    }
    let mut parts: Vec<TextPart> = Vec::new();
    let mut code = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(sql.len());
        let text = sql.get(starts[i]..end)?;
        match role(&t.token) {
            Role::Code => code.push_str(text),
            r => {
                if !code.is_empty() {
                    parts.push(TextPart::Code(std::mem::take(&mut code)));
                }
                parts.push(if r == Role::Literal {
                    TextPart::Literal(text.to_string())
                } else {
                    TextPart::Code(text.to_string())
                });
            }
        }
    }
    if !code.is_empty() {
        parts.push(TextPart::Code(code));
    }
    // The parts must be the statement, byte for byte.
    let joined: String = parts.iter().map(TextPart::text).collect();
    (joined == sql).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis;

    fn lits(dialect: Dialect, sql: &str) -> Vec<String> {
        parts(dialect, sql)
            .into_iter()
            .filter_map(|p| match p {
                TextPart::Literal(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// Canonical text of `sql` as the analysis prints it.
    fn canonical(dialect: Dialect, sql: &str) -> String {
        analysis::parse(dialect, sql).unwrap()[0].to_string()
    }

    fn statement(kind: &str, tables: &[&str], sql: &str) -> PreparedStatement {
        PreparedStatement {
            kind: kind.into(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            sql: sql.into(),
            touches_session: false,
            lineage: Default::default(),
        }
    }

    #[test]
    fn the_summary_names_kinds_and_tables_and_cuts_each_statement() {
        let one = summary(
            Some(Dialect::Postgres),
            &[statement(
                "update",
                &["public.orders"],
                "UPDATE orders SET note = 'x' WHERE id = 1",
            )],
        );
        assert_eq!(one.title, "UPDATE on public.orders");
        assert_eq!(one.resources, vec!["public.orders"]);
        assert_eq!(one.runs.len(), 1);
        assert_eq!(one.runs[0].label, "update");
        assert_eq!(one.runs[0].resources, vec!["public.orders"]);
        assert_eq!(one.runs[0].text.parts[1], TextPart::Literal("'x'".into()));
        assert!(one.diff.is_none());
        let many = summary(
            None,
            &[
                statement("select", &["public.a"], "SELECT 1 FROM a"),
                statement("delete", &["public.b", "public.a"], "DELETE FROM b"),
                statement("select", &[], "SELECT 2"),
            ],
        );
        assert_eq!(
            many.title,
            "3 statements: SELECT, DELETE on public.a, public.b"
        );
        assert_eq!(many.resources, vec!["public.a", "public.b"]);
        // Without a dialect every statement is one code part.
        assert_eq!(many.runs[1].text, ReviewText::code("DELETE FROM b"));
        assert_eq!(
            summary(None, &[statement("select", &[], "SELECT 1")]).title,
            "SELECT"
        );
    }

    #[test]
    fn the_attack_keeps_its_predicate_in_code() {
        let sql = canonical(
            Dialect::Postgres,
            "DELETE FROM orders WHERE note = '-----BEGIN PRIVATE KEY-----' OR id > 0",
        );
        assert_eq!(
            parts(Dialect::Postgres, &sql),
            vec![
                TextPart::Code("DELETE FROM orders WHERE note = ".into()),
                TextPart::Literal("'-----BEGIN PRIVATE KEY-----'".into()),
                TextPart::Code(" OR id > ".into()),
                TextPart::Literal("0".into()),
            ]
        );
    }

    #[test]
    fn every_literal_form_is_a_literal() {
        let pg = canonical(
            Dialect::Postgres,
            "SELECT 'it''s', E'a\\'b', $tag$x$tag$, X'0A', N'n', 1.5e3, \"Name\" FROM t WHERE a = $1",
        );
        assert_eq!(
            lits(Dialect::Postgres, &pg),
            vec![
                "'it''s'",
                "E'a\\'b'",
                "$tag$x$tag$",
                "X'0A'",
                "N'n'",
                "1.5e3"
            ]
        );
        assert!(parts(Dialect::Postgres, &pg).contains(&TextPart::Code("\"Name\"".into())));
        let my = canonical(Dialect::MySql, "SELECT \"dq\", 'a\\'b', `c` FROM t");
        assert_eq!(lits(Dialect::MySql, &my), vec!["\"dq\"", "'a''b'"]);
        let lite = canonical(Dialect::Sqlite, "SELECT x'ff', 'q' FROM \"t\"");
        assert_eq!(lits(Dialect::Sqlite, &lite), vec!["X'ff'", "'q'"]);
    }

    #[test]
    fn strings_outside_values_are_literals_too() {
        let sql = canonical(Dialect::Postgres, "COMMENT ON TABLE t IS 'card 4111 1111'");
        assert_eq!(lits(Dialect::Postgres, &sql), vec!["'card 4111 1111'"]);
        let sql = canonical(Dialect::Postgres, "ALTER USER bob WITH PASSWORD 'pw'");
        assert_eq!(lits(Dialect::Postgres, &sql), vec!["'pw'"]);
    }

    #[test]
    fn parts_join_to_the_statement_across_lines_and_unicode() {
        for (d, sql) in [
            (
                Dialect::Postgres,
                "SELECT 'é€\n''x', 2 FROM \"tä\"\nWHERE b = 'ü'",
            ),
            (Dialect::MySql, "SELECT 'a\nb' FROM t"),
            (Dialect::Sqlite, "SELECT 1"),
            (Dialect::Postgres, "SELECT 'unterminated"),
        ] {
            let joined: String = parts(d, sql).iter().map(TextPart::text).collect();
            assert_eq!(joined, sql);
        }
        // What cannot be cut is one code part.
        assert_eq!(
            parts(Dialect::Postgres, "SELECT 'unterminated"),
            vec![TextPart::Code("SELECT 'unterminated".into())]
        );
    }
}
