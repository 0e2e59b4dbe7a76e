//! Source positions for diagnostics: byte offsets into a file's text as
//! 1-based `line:col`, the way `file:line:col: message` reports them.

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Join displayable errors one per line.
pub fn lines<E: std::fmt::Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions() {
        assert_eq!(super::line_col("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(super::line_col("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(super::line_col("ab\ncdé\nf", 8), (3, 1));
        assert_eq!(super::line_col("é", 1), (1, 1), "inside a char: no panic");
    }
}
