//! Which tables a statement writes: a small tokenizer and a classifier over it.
//!
//! Not a parser: it finds the write verbs that start a statement (`INSERT [OR ..] [modifiers]
//! [INTO] t`, `REPLACE [INTO] t`, `UPDATE [OR ..] [modifiers] [ONLY] t`, `DELETE [modifiers]
//! FROM [ONLY] t`, MySQL's `DELETE t FROM ..`, `TRUNCATE [TABLE] [ONLY] t, ..`), at the start of
//! the text, after `;`, `(` or `)` (so a PostgreSQL data-modifying CTE, `WITH d AS (DELETE ..)`,
//! and the statement after a `WITH ..` clause are seen). A verb anywhere else is part of another
//! clause and writes nothing: `FOR UPDATE`, `FOR NO KEY UPDATE`, `ON CONFLICT .. DO UPDATE`,
//! `ON DUPLICATE KEY UPDATE`, `ON DELETE CASCADE`, a trigger's `AFTER UPDATE`. Comments, string
//! literals (with the backend's escapes), PostgreSQL dollar quotes and quoted identifiers are
//! skipped as whole tokens, so a verb inside them is never seen. It never panics, whatever the
//! input (a proptest checks it), and it borrows from the text: nothing is allocated.
//!
//! Only the verb and the table name ever leave this module; the text itself, which may hold
//! literals (secrets), is never copied into a report.

use sea_orm::DbBackend;

use std::fmt;

/// What a statement does to a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verb {
    /// `INSERT`.
    Insert,
    /// `REPLACE` (MySQL, SQLite).
    Replace,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `TRUNCATE`.
    Truncate,
}

impl Verb {
    /// The SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Insert => "INSERT",
            Verb::Replace => "REPLACE",
            Verb::Update => "UPDATE",
            Verb::Delete => "DELETE",
            Verb::Truncate => "TRUNCATE",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name as written: its text without quotes, and whether it was quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Name<'a> {
    pub(crate) text: &'a str,
    pub(crate) quoted: bool,
}

/// One write the statement makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Write<'a> {
    pub(crate) verb: Verb,
    pub(crate) schema: Option<Name<'a>>,
    pub(crate) table: Name<'a>,
}

impl Write<'_> {
    /// The same verb on the same table, however its names were quoted.
    #[cfg_attr(not(feature = "checked-layer"), allow(dead_code))]
    pub(crate) fn same_as(&self, other: &Write<'_>) -> bool {
        self.verb == other.verb
            && self.table.text == other.table.text
            && self.schema.map(|n| n.text) == other.schema.map(|n| n.text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// A bare word: keyword or unquoted identifier.
    Word(&'a str),
    /// A quoted identifier (`"x"`, `` `x` ``, SQLite's `[x]`).
    Quoted(&'a str),
    /// One of `( ) ; . ,`.
    Punct(u8),
    /// Anything else: literals, numbers, operators, placeholders.
    Other,
}

#[derive(Clone)]
struct Tokens<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// MySQL: backslash escapes in strings and `#` comments.
    mysql: bool,
    /// SQLite: `[x]` identifiers.
    sqlite: bool,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str, backend: DbBackend) -> Self {
        Tokens {
            sql,
            bytes: sql.as_bytes(),
            at: 0,
            mysql: backend == DbBackend::MySql,
            sqlite: backend == DbBackend::Sqlite,
        }
    }

    fn peek_byte(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    /// Skip to just after the next `close` (or to the end), treating a doubled `close` as an
    /// escaped one and, if `backslash`, `\x` as an escape. Returns where the content ends.
    fn skip_quoted(&mut self, close: u8, backslash: bool) -> usize {
        while let Some(&b) = self.bytes.get(self.at) {
            if backslash && b == b'\\' {
                self.at += 2;
                continue;
            }
            if b == close {
                if self.peek_byte(1) == Some(close) {
                    self.at += 2;
                    continue;
                }
                let end = self.at;
                self.at += 1;
                return end;
            }
            self.at += 1;
        }
        self.at = self.bytes.len();
        self.bytes.len()
    }

    /// Skip a `/* .. */` comment (nested ones too, as PostgreSQL reads them); `at` is on `/*`.
    fn skip_block_comment(&mut self) {
        self.at += 2;
        let mut depth = 1usize;
        while self.at < self.bytes.len() {
            match (self.peek_byte(0), self.peek_byte(1)) {
                (Some(b'*'), Some(b'/')) => {
                    self.at += 2;
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                (Some(b'/'), Some(b'*')) if !self.mysql => {
                    self.at += 2;
                    depth += 1;
                }
                _ => self.at += 1,
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(&b) = self.bytes.get(self.at) {
            self.at += 1;
            if b == b'\n' {
                return;
            }
        }
    }

    /// A PostgreSQL dollar quote (`$$ .. $$`, `$tag$ .. $tag$`) at `at`, skipped whole; `false`
    /// (nothing consumed) if `$` starts something else (a `$1` placeholder).
    fn skip_dollar_quote(&mut self) -> bool {
        let start = self.at;
        let mut end = start + 1;
        while let Some(&b) = self.bytes.get(end) {
            if b == b'$' {
                break;
            }
            if !(b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80)
                || (end == start + 1 && b.is_ascii_digit())
            {
                return false;
            }
            end += 1;
        }
        let Some(tag) = self.bytes.get(start..=end) else {
            return false;
        };
        if tag.len() < 2 || tag.last() != Some(&b'$') {
            return false;
        }
        let mut at = end + 1;
        while at < self.bytes.len() {
            if self.bytes.get(at..at + tag.len()) == Some(tag) {
                self.at = at + tag.len();
                return true;
            }
            at += 1;
        }
        self.at = self.bytes.len();
        true
    }

    fn text(&self, from: usize, to: usize) -> &'a str {
        self.sql.get(from..to).unwrap_or_default()
    }

    /// The next token, not consumed.
    fn peek(&self) -> Option<Tok<'a>> {
        self.clone().next()
    }

    /// Move past the next `;` outside literals, quotes and comments (or to the end), without
    /// producing tokens: a scan for the bytes that can end a statement or open a literal, a
    /// quoted name or a comment; comments and dollar quotes are skipped, and a quote read as
    /// one token by [`Iterator::next`].
    fn skip_statement(&mut self) {
        // No `;` left at all (nearly every statement SeaORM sends): nothing follows.
        if !self
            .bytes
            .get(self.at..)
            .unwrap_or_default()
            .contains(&b';')
        {
            self.at = self.bytes.len();
            return;
        }
        loop {
            let rest = self.bytes.get(self.at..).unwrap_or_default();
            let Some(i) = rest.iter().position(|&b| {
                matches!(
                    b,
                    b';' | b'\'' | b'"' | b'`' | b'[' | b'-' | b'/' | b'#' | b'$'
                )
            }) else {
                self.at = self.bytes.len();
                return;
            };
            self.at += i;
            // `$` inside a word (`a$b`) is part of a name, never a dollar quote.
            let in_word = self
                .at
                .checked_sub(1)
                .and_then(|p| self.bytes.get(p))
                .is_some_and(|&b| is_word_byte(b));
            match self.peek_byte(0) {
                Some(b';') => {
                    self.at += 1;
                    return;
                }
                Some(b'-') if self.peek_byte(1) == Some(b'-') => self.skip_line(),
                Some(b'#') if self.mysql => self.skip_line(),
                Some(b'/') if self.peek_byte(1) == Some(b'*') => self.skip_block_comment(),
                Some(b'$') if !self.mysql && !in_word && self.skip_dollar_quote() => {}
                Some(b'\'' | b'"' | b'`') => {
                    self.next();
                }
                Some(b'[') if self.sqlite => {
                    self.next();
                }
                _ => self.at += 1,
            }
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Tok<'a>;

    fn next(&mut self) -> Option<Tok<'a>> {
        loop {
            let b = self.peek_byte(0)?;
            match b {
                b if b.is_ascii_whitespace() => self.at += 1,
                b'-' if self.peek_byte(1) == Some(b'-') => self.skip_line(),
                b'#' if self.mysql => self.skip_line(),
                b'/' if self.peek_byte(1) == Some(b'*') => self.skip_block_comment(),
                b'\'' => {
                    // PostgreSQL's `E'..'` strings take backslash escapes too; the `E` was read
                    // as a word just before, which is harmless.
                    let escapes = self.mysql
                        || (self.at > 0
                            && matches!(self.bytes.get(self.at - 1), Some(b'e' | b'E')));
                    self.at += 1;
                    self.skip_quoted(b'\'', escapes);
                    return Some(Tok::Other);
                }
                b'"' if self.mysql => {
                    // MySQL (without ANSI_QUOTES): a string.
                    self.at += 1;
                    self.skip_quoted(b'"', true);
                    return Some(Tok::Other);
                }
                b'"' | b'`' | b'[' if b != b'[' || self.sqlite => {
                    let close = match b {
                        b'[' => b']',
                        other => other,
                    };
                    self.at += 1;
                    let start = self.at;
                    let end = self.skip_quoted(close, false);
                    return Some(Tok::Quoted(self.text(start, end)));
                }
                b'$' if !self.mysql && self.skip_dollar_quote() => return Some(Tok::Other),
                b'(' | b')' | b';' | b'.' | b',' => {
                    self.at += 1;
                    return Some(Tok::Punct(b));
                }
                b if is_word_byte(b) && !b.is_ascii_digit() && b != b'$' => {
                    let start = self.at;
                    while self.peek_byte(0).is_some_and(is_word_byte) {
                        self.at += 1;
                    }
                    return Some(Tok::Word(self.text(start, self.at)));
                }
                b if b.is_ascii_digit() || b == b'$' => {
                    // A number or a placeholder (`$1`): digits and word bytes.
                    self.at += 1;
                    while self.peek_byte(0).is_some_and(is_word_byte) {
                        self.at += 1;
                    }
                    return Some(Tok::Other);
                }
                _ => {
                    self.at += 1;
                    return Some(Tok::Other);
                }
            }
        }
    }
}

fn is_kw(tok: Option<Tok<'_>>, kw: &str) -> bool {
    matches!(tok, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

fn is_any_kw(tok: Option<Tok<'_>>, kws: &[&str]) -> bool {
    kws.iter().any(|kw| is_kw(tok, kw))
}

/// The verb a statement-starting word names, if it writes.
fn verb_of(word: &str) -> Option<Verb> {
    [
        ("insert", Verb::Insert),
        ("replace", Verb::Replace),
        ("update", Verb::Update),
        ("delete", Verb::Delete),
        ("truncate", Verb::Truncate),
    ]
    .into_iter()
    .find_map(|(kw, verb)| word.eq_ignore_ascii_case(kw).then_some(verb))
}

/// Words a write verb may carry before its table (MySQL's and SQLite's).
const MODIFIERS: &[&str] = &[
    "low_priority",
    "delayed",
    "high_priority",
    "ignore",
    "quick",
];

/// The writes `sql` makes, in order, passed to `found`.
///
/// A top-level statement that starts with neither `WITH` nor a write verb (a `SELECT`, `SET`,
/// `SAVEPOINT`, ...) is skipped to its `;` without tokenizing, and so is the rest of a
/// statement once its top-level verb and table are read: nothing there runs as a write of its
/// own (PostgreSQL allows data-modifying CTEs only in the top `WITH`, before the verb). `CREATE`
/// ends the scan: a trigger or function body holds statements that do not run now.
pub(crate) fn writes<'a>(sql: &'a str, backend: DbBackend, mut found: impl FnMut(Write<'a>)) {
    let mut tokens = Tokens::new(sql, backend);
    // Whether the next token starts a statement (or a parenthesized one), and a top-level one.
    let (mut at_start, mut top) = (true, true);
    let mut depth = 0usize;
    while let Some(tok) = tokens.next() {
        let (starts, was_top) = (at_start, top);
        at_start = matches!(tok, Tok::Punct(b'(' | b')' | b';'));
        top = false;
        match tok {
            Tok::Punct(b'(') => depth += 1,
            Tok::Punct(b')') => depth = depth.saturating_sub(1),
            Tok::Punct(b';') => {
                depth = 0;
                top = true;
            }
            _ => {}
        }
        if !starts {
            continue;
        }
        let Tok::Word(word) = tok else {
            continue;
        };
        let Some(verb) = verb_of(word) else {
            if was_top {
                if word.eq_ignore_ascii_case("create") {
                    return;
                }
                if !word.eq_ignore_ascii_case("with") {
                    tokens.skip_statement();
                    (at_start, top) = (true, true);
                }
            }
            continue;
        };
        // SQLite's `INSERT OR REPLACE`, `UPDATE OR IGNORE`.
        if matches!(verb, Verb::Insert | Verb::Update) && is_kw(tokens.peek(), "or") {
            tokens.next();
            tokens.next();
        }
        while is_any_kw(tokens.peek(), MODIFIERS) {
            tokens.next();
        }
        let keyword = match verb {
            Verb::Insert | Verb::Replace => "into",
            Verb::Delete => "from",
            Verb::Truncate => "table",
            Verb::Update => "only",
        };
        if is_kw(tokens.peek(), keyword) {
            tokens.next();
        }
        if is_kw(tokens.peek(), "only") {
            tokens.next();
        }
        while let Some((schema, table)) = table_name(&mut tokens) {
            found(Write {
                verb,
                schema,
                table,
            });
            // Only `TRUNCATE a, b` names several tables.
            if verb != Verb::Truncate || tokens.peek() != Some(Tok::Punct(b',')) {
                break;
            }
            tokens.next();
        }
        if depth == 0 {
            tokens.skip_statement();
            (at_start, top) = (true, true);
        }
    }
}

/// A possibly schema-qualified name at the head of `tokens` (consumed); `None` (nothing
/// consumed) if the next token is not a name, e.g. `REPLACE(` the function.
fn table_name<'a>(tokens: &mut Tokens<'a>) -> Option<(Option<Name<'a>>, Name<'a>)> {
    let name = |tok: Option<Tok<'a>>| match tok {
        Some(Tok::Word(w)) => Some(Name {
            text: w,
            quoted: false,
        }),
        Some(Tok::Quoted(q)) => Some(Name {
            text: q,
            quoted: true,
        }),
        _ => None,
    };
    let mut last = name(tokens.peek())?;
    tokens.next();
    let mut schema = None;
    while tokens.peek() == Some(Tok::Punct(b'.')) {
        tokens.next();
        let Some(next) = name(tokens.peek()) else {
            break;
        };
        tokens.next();
        schema = Some(last);
        last = next;
    }
    Some((schema, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(sql: &str, backend: DbBackend) -> Vec<(Verb, Option<String>, String)> {
        let mut out = Vec::new();
        writes(sql, backend, |w| {
            out.push((
                w.verb,
                w.schema.map(|s| s.text.to_owned()),
                w.table.text.to_owned(),
            ));
        });
        out
    }

    fn one(sql: &str) -> Vec<(Verb, String)> {
        all(sql, DbBackend::Postgres)
            .into_iter()
            .map(|(v, _, t)| (v, t))
            .collect()
    }

    fn w(verb: Verb, t: &str) -> Vec<(Verb, String)> {
        vec![(verb, t.to_owned())]
    }

    #[test]
    fn plain_verbs() {
        assert_eq!(
            one(r#"INSERT INTO "flags" ("a") VALUES ($1)"#),
            w(Verb::Insert, "flags")
        );
        assert_eq!(
            one("insert into flags values (1)"),
            w(Verb::Insert, "flags")
        );
        assert_eq!(
            one(r#"UPDATE "flags" SET "a" = $1 WHERE "id" = $2"#),
            w(Verb::Update, "flags")
        );
        assert_eq!(
            one(r#"DELETE FROM "flags" WHERE "id" = $1"#),
            w(Verb::Delete, "flags")
        );
        assert_eq!(one("TRUNCATE flags"), w(Verb::Truncate, "flags"));
        assert_eq!(one("truncate table only flags"), w(Verb::Truncate, "flags"));
        assert_eq!(
            one("TRUNCATE a, b"),
            vec![(Verb::Truncate, "a".into()), (Verb::Truncate, "b".into())]
        );
        assert_eq!(
            one("  \n\t-- note\n/* x */ UpDaTe flags SET a = 1"),
            w(Verb::Update, "flags")
        );
    }

    #[test]
    fn mysql_and_sqlite_forms() {
        let my = |sql| {
            all(sql, DbBackend::MySql)
                .into_iter()
                .map(|(v, _, t)| (v, t))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            my("INSERT IGNORE INTO `flags` (`a`) VALUES (?)"),
            w(Verb::Insert, "flags")
        );
        assert_eq!(
            my("INSERT LOW_PRIORITY flags VALUES (1)"),
            w(Verb::Insert, "flags")
        );
        assert_eq!(
            my("REPLACE INTO `flags` VALUES (1)"),
            w(Verb::Replace, "flags")
        );
        assert_eq!(
            my("UPDATE LOW_PRIORITY IGNORE `flags` FORCE INDEX (PRIMARY) SET `a` = ?"),
            w(Verb::Update, "flags")
        );
        assert_eq!(
            my("DELETE QUICK IGNORE FROM `flags`"),
            w(Verb::Delete, "flags")
        );
        assert_eq!(my("DELETE f FROM flags f JOIN x"), w(Verb::Delete, "f"));
        assert_eq!(
            my("INSERT INTO `flags` (`a`) VALUES (?) ON DUPLICATE KEY UPDATE `a` = VALUES(`a`)"),
            w(Verb::Insert, "flags")
        );
        // MySQL strings: backslash escapes and double quotes.
        assert_eq!(
            my(r#"SELECT 'it\'s; UPDATE x', "a\"; DELETE FROM y""#),
            vec![]
        );
        assert_eq!(my("# UPDATE x\nSELECT 1"), vec![]);
        assert_eq!(
            one("INSERT OR REPLACE INTO flags VALUES (1)"),
            w(Verb::Insert, "flags")
        );
        assert_eq!(
            one("UPDATE OR IGNORE flags SET a = 1"),
            w(Verb::Update, "flags")
        );
    }

    #[test]
    fn schemas_and_quotes() {
        assert_eq!(
            all(r#"UPDATE "public"."flags" SET a = 1"#, DbBackend::Postgres),
            vec![(Verb::Update, Some("public".into()), "flags".into())]
        );
        assert_eq!(
            all("delete from app.flags", DbBackend::Postgres),
            vec![(Verb::Delete, Some("app".into()), "flags".into())]
        );
        assert_eq!(
            one(r#"UPDATE "we""ird" SET a = 1"#),
            w(Verb::Update, r#"we""ird"#)
        );
        assert_eq!(one("UPDATE ONLY flags SET a = 1"), w(Verb::Update, "flags"));
    }

    #[test]
    fn not_writes() {
        for sql in [
            r#"SELECT * FROM "flags" WHERE "id" = $1 FOR UPDATE"#,
            r#"SELECT * FROM "flags" WHERE "id" = $1 FOR NO KEY UPDATE"#,
            "SELECT 'UPDATE flags SET a = 1'",
            r#"SELECT "update" FROM "delete""#,
            "SELECT replace(name, 'a', 'b') FROM flags",
            "SELECT (replace(name, 'a', 'b')) FROM flags",
            "-- DELETE FROM flags\nSELECT 1",
            "/* DELETE FROM flags /* nested */ still comment */ SELECT 1",
            "SELECT $$ DELETE FROM flags $$, $tag$ ; UPDATE flags $tag$",
            "SELECT E'\\' ; DELETE FROM flags'",
            "CREATE TABLE t (id int REFERENCES flags (id) ON DELETE CASCADE ON UPDATE CASCADE)",
            "CREATE TRIGGER t AFTER UPDATE ON flags FOR EACH ROW EXECUTE FUNCTION f()",
            "SELECT updated_at, deleted FROM flags",
            "",
            "(",
            ";;;",
        ] {
            assert_eq!(one(sql), vec![], "{sql}");
        }
        assert_eq!(
            one("INSERT INTO flags (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = excluded.a"),
            w(Verb::Insert, "flags")
        );
    }

    #[test]
    fn ctes_and_several_statements() {
        assert_eq!(
            one("WITH x AS (SELECT id FROM a) UPDATE flags SET a = 1 FROM x"),
            w(Verb::Update, "flags")
        );
        assert_eq!(
            one(
                "WITH RECURSIVE d AS (DELETE FROM flags RETURNING *) INSERT INTO archive SELECT * FROM d"
            ),
            vec![
                (Verb::Delete, "flags".into()),
                (Verb::Insert, "archive".into())
            ]
        );
        assert_eq!(
            one("SELECT 1; DELETE FROM flags; update other set a = 1"),
            vec![
                (Verb::Delete, "flags".into()),
                (Verb::Update, "other".into())
            ]
        );
    }

    #[test]
    fn skipped_statements_still_end_at_their_semicolon() {
        assert_eq!(
            one("SELECT 'a;b', \"c;d\", $$;$$, x$y$z -- ;\n /* ; */ ; DELETE FROM flags"),
            w(Verb::Delete, "flags")
        );
        assert_eq!(
            one("INSERT INTO a VALUES ('x;y'), ($1); UPDATE b SET c = E'\\';'; DELETE FROM d"),
            vec![
                (Verb::Insert, "a".into()),
                (Verb::Update, "b".into()),
                (Verb::Delete, "d".into())
            ]
        );
        assert_eq!(
            one("CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET c = 1; DELETE FROM d; END"),
            vec![]
        );
    }

    #[test]
    fn unterminated_input_is_harmless() {
        for sql in [
            "UPDATE \"flags",
            "UPDATE `",
            "SELECT 'abc",
            "SELECT $tag$ abc",
            "/* abc",
            "UPDATE flags.",
            "INSERT INTO",
            "DELETE FROM \"a\".",
            "SELECT E'\\",
        ] {
            let _ = one(sql);
            let _ = all(sql, DbBackend::MySql);
            let _ = all(sql, DbBackend::Sqlite);
        }
        assert_eq!(one("UPDATE \"flags"), w(Verb::Update, "flags"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(sql in ".{0,200}") {
            for backend in [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite] {
                writes(&sql, backend, |w| {
                    assert!(sql.contains(w.table.text));
                });
            }
        }

        #[test]
        fn never_panics_on_sql_like_input(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("UPDATE "), proptest::strategy::Just("INSERT "),
                    proptest::strategy::Just("INTO "), proptest::strategy::Just("DELETE "),
                    proptest::strategy::Just("FROM "), proptest::strategy::Just("\""),
                    proptest::strategy::Just("`"), proptest::strategy::Just("'"),
                    proptest::strategy::Just("$"), proptest::strategy::Just("$a$"),
                    proptest::strategy::Just("/*"), proptest::strategy::Just("*/"),
                    proptest::strategy::Just("--"), proptest::strategy::Just("\n"),
                    proptest::strategy::Just("("), proptest::strategy::Just(")"),
                    proptest::strategy::Just(";"), proptest::strategy::Just("."),
                    proptest::strategy::Just("\\"), proptest::strategy::Just("é"),
                    proptest::strategy::Just("t "), proptest::strategy::Just("["),
                ],
                0..40,
            )
        ) {
            let sql: String = parts.concat();
            for backend in [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite] {
                writes(&sql, backend, |_| {});
            }
        }
    }
}
