//! A typed reader over a spanned TOML document that *collects* problems
//! instead of stopping at the first one.
//!
//! serde stops at the first error, so the loader walks the document that
//! `toml::de::DeTable::parse` returns, where every key and value carries its
//! byte span. A [`Section`] is one table: each `take_*` call removes a key,
//! converts it, and records a located [`Problem`](super::Problem) in the
//! shared [`Diagnostics`] when the value is wrong; [`Section::finish`] reports
//! the keys nobody took as unknown (the `deny_unknown_fields` of this reader).
//!
//! Adding a section is a few lines:
//!
//! ```text
//! let mut s = root.take_table("relay");
//! let addr = s.take_addr("listen").unwrap_or(DEFAULT);
//! let token = s.require("token", |s, k| s.take_secret(k, env));
//! s.finish();
//! ```
//!
//! A `take_*` returns `None` when the key is absent *or* invalid (the problem
//! is already recorded), so callers fall back to a default and go on; the
//! loader returns the config only when no problem was recorded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::env::Env;
use super::{Problem, Secret};

/// The problems found so far in one file, and how to turn byte offsets into
/// line numbers.
#[derive(Debug)]
pub(crate) struct Diagnostics<'f> {
    file: &'f str,
    /// Byte offset of the start of each line; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
    /// Interior mutability so that nested sections can share one sink.
    problems: RefCell<Vec<Problem>>,
}

impl<'f> Diagnostics<'f> {
    /// A sink for problems in `text`, named `file`.
    pub(crate) fn new(file: &'f str, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            line_starts,
            problems: RefCell::new(Vec::new()),
        }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// Records a problem at the start of `span`.
    pub(crate) fn report(&self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let problem = Problem {
            file: self.file.to_owned(),
            line: self.line(span.start),
            key: key.to_owned(),
            message: message.into(),
        };
        self.problems.borrow_mut().push(problem);
    }

    /// The problems, in file order (stable for problems on one line).
    pub(crate) fn into_problems(self) -> Vec<Problem> {
        let mut problems = self.problems.into_inner();
        problems.sort_by_key(|p| p.line);
        problems
    }
}

/// One key of a table that has not been taken yet.
#[derive(Debug)]
struct Entry<'i> {
    key: String,
    key_span: Range<usize>,
    value: Spanned<DeValue<'i>>,
}

/// A value that is a scalar or a table ([`Section::take_scalar_or_table`]).
#[derive(Debug)]
pub(crate) enum ScalarOrTable<'d, 'i> {
    /// A string, number, boolean …
    Scalar(DeValue<'i>),
    /// A table, to read key by key.
    Table(Section<'d, 'i>),
}

/// What [`Section::finish_with`] should say about a key nobody took.
#[derive(Debug)]
pub(crate) enum Leftover {
    /// The usual "unknown key" problem, with a suggestion when one is close.
    Unknown,
    /// A problem with this message instead.
    Message(String),
    /// No problem (e.g. another problem already explains it).
    Ignore,
}

/// One TOML table being read; see the module docs.
#[derive(Debug)]
pub(crate) struct Section<'d, 'i> {
    diag: &'d Diagnostics<'d>,
    /// Dotted path of this table, e.g. `devices[1]`; empty for the root.
    path: String,
    /// Where the table starts (its header), for problems about absent keys.
    span: Range<usize>,
    entries: Vec<Entry<'i>>,
    /// Every key asked for, present or not: the suggestions for unknown keys.
    known: Vec<String>,
    /// Keys that were present, with their value spans.
    present: Vec<(String, Range<usize>)>,
    /// The table itself had the wrong type: its absent keys are not news.
    broken: bool,
}

impl<'d, 'i> Section<'d, 'i> {
    /// The document's top level.
    pub(crate) fn root(diag: &'d Diagnostics<'d>, doc: Spanned<DeTable<'i>>) -> Self {
        let span = doc.span();
        Self::from_table(diag, String::new(), span, doc.into_inner())
    }

    fn from_table(
        diag: &'d Diagnostics<'d>,
        path: String,
        span: Range<usize>,
        table: DeTable<'i>,
    ) -> Self {
        let entries = table
            .into_iter()
            .map(|(key, value)| Entry {
                key_span: key.span(),
                key: key.into_inner().into_owned(),
                value,
            })
            .collect();
        Self {
            diag,
            path,
            span,
            entries,
            known: Vec::new(),
            present: Vec::new(),
            broken: false,
        }
    }

    fn empty(diag: &'d Diagnostics<'d>, path: String, span: Range<usize>, broken: bool) -> Self {
        Self {
            broken,
            ..Self::from_table(diag, path, span, DeTable::new())
        }
    }

    /// The dotted path of `key` in this table (the table's own path when
    /// `key` is empty).
    pub(crate) fn key_path(&self, key: &str) -> String {
        match (self.path.is_empty(), key.is_empty()) {
            (_, true) => self.path.clone(),
            (true, false) => key.to_owned(),
            (false, false) => format!("{}.{key}", self.path),
        }
    }

    /// Every key asked for so far.
    #[cfg(test)]
    pub(crate) fn known_keys(&self) -> &[String] {
        &self.known
    }

    /// Whether `key` was in the table (whether or not its value was valid).
    pub(crate) fn was_present(&self, key: &str) -> bool {
        self.present.iter().any(|(k, _)| k == key)
    }

    /// The line of `key`'s value, or of the table header when it is absent.
    pub(crate) fn line_of(&self, key: &str) -> usize {
        self.diag.line(self.span_of(key).start)
    }

    fn span_of(&self, key: &str) -> Range<usize> {
        self.present
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| self.span.clone(), |(_, span)| span.clone())
    }

    /// Records a problem about `key` (at its value, or at the table header
    /// when absent); an empty `key` means the table itself.
    pub(crate) fn problem(&self, key: &str, message: impl Into<String>) {
        self.diag
            .report(&self.span_of(key), &self.key_path(key), message);
    }

    /// The string value of `key` without taking it (for cross-references
    /// that must be known before the key's own section is read).
    pub(crate) fn peek_str(&self, key: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| match e.value.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                _ => None,
            })
    }

    /// Removes `key` and returns its raw value.
    pub(crate) fn take_raw(&mut self, key: &str) -> Option<Spanned<DeValue<'i>>> {
        if !self.known.iter().any(|k| k == key) {
            self.known.push(key.to_owned());
        }
        let index = self.entries.iter().position(|e| e.key == key)?;
        let entry = self.entries.remove(index);
        self.present.push((entry.key, entry.value.span()));
        Some(entry.value)
    }

    /// Removes `key` and converts it with `convert`, whose error message
    /// becomes a problem at the value.
    pub(crate) fn take_with<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(&DeValue<'i>) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.take_raw(key)?;
        match convert(value.get_ref()) {
            Ok(v) => Some(v),
            Err(message) => {
                self.diag
                    .report(&value.span(), &self.key_path(key), message);
                None
            }
        }
    }

    /// Runs `take` for `key` and reports the key as missing when it was
    /// absent: `s.require("id", Section::take_id)`.
    pub(crate) fn require<T>(
        &mut self,
        key: &str,
        take: impl FnOnce(&mut Self, &str) -> Option<T>,
    ) -> Option<T> {
        let value = take(self, key);
        if value.is_none() && !self.was_present(key) && !self.broken {
            self.problem(key, "missing required key");
        }
        value
    }

    /// A string.
    pub(crate) fn take_str(&mut self, key: &str) -> Option<String> {
        self.take_with(key, |v| match v {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(expected("a string", other)),
        })
    }

    /// A string that is not empty or only whitespace.
    pub(crate) fn take_nonempty_str(&mut self, key: &str) -> Option<String> {
        self.take_with(key, |v| match v {
            DeValue::String(s) if s.trim().is_empty() => Err("must not be empty".to_owned()),
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(expected("a string", other)),
        })
    }

    /// An id: 1–64 characters from `a-z`, `0-9`, `_` and `-`.
    pub(crate) fn take_id(&mut self, key: &str) -> Option<String> {
        self.take_with(key, |v| match v {
            DeValue::String(s) if is_id(s) => Ok(s.to_string()),
            DeValue::String(s) => Err(format!(
                "invalid id {s:?}: use 1 to 64 characters from a-z, 0-9, '_' and '-'"
            )),
            other => Err(expected("an id string", other)),
        })
    }

    /// A filesystem path (a non-empty string).
    pub(crate) fn take_path(&mut self, key: &str) -> Option<PathBuf> {
        self.take_nonempty_str(key).map(PathBuf::from)
    }

    /// A PEM file's path, after checking that the file can be read and
    /// holds what `kind` says (so `check-config` catches what would
    /// otherwise fail only at start). Problems name the file, never its
    /// contents.
    pub(crate) fn take_pem(&mut self, key: &str, kind: Pem) -> Option<PathBuf> {
        let path = self.take_path(key)?;
        if let Err(message) = kind.check(&path) {
            self.problem(key, message);
        }
        Some(path)
    }

    /// A duration with a unit, e.g. `"500ms"`, `"30s"`, `"2m"` (humantime).
    pub(crate) fn take_duration(&mut self, key: &str) -> Option<Duration> {
        self.take_with(key, |v| match v {
            DeValue::String(s) => humantime::parse_duration(s).map_err(|e| {
                format!("invalid duration {s:?} ({e}); write e.g. \"500ms\", \"30s\" or \"2m\"")
            }),
            other => Err(expected("a duration string such as \"30s\"", other)),
        })
    }

    /// A byte size: a string such as `"256MiB"`, `"64KiB"`, `"1GB"` (KB/MB/GB
    /// are powers of 1000, KiB/MiB/GiB powers of 1024), or an integer count
    /// of bytes.
    pub(crate) fn take_bytes(&mut self, key: &str) -> Option<u64> {
        self.take_with(key, |v| match v {
            DeValue::String(s) => parse_size::parse_size(s.as_ref()).map_err(|e| {
                format!(
                    "invalid byte size {s:?} ({e}); write e.g. \"256MiB\", \"64KiB\" or \"1GB\""
                )
            }),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => u64::try_from(n).map_err(|_| "must not be negative".to_owned()),
                Err(e) => Err(format!("invalid integer: {e}")),
            },
            other => Err(expected("a byte size such as \"256MiB\"", other)),
        })
    }

    /// A non-negative integer.
    pub(crate) fn take_u64(&mut self, key: &str) -> Option<u64> {
        self.take_with(key, |v| match v {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => u64::try_from(n).map_err(|_| "must not be negative".to_owned()),
                Err(e) => Err(format!("invalid integer: {e}")),
            },
            other => Err(expected("an integer", other)),
        })
    }

    /// A socket address `IP:PORT`, e.g. `"127.0.0.1:8080"` or `"[::1]:8080"`.
    pub(crate) fn take_addr(&mut self, key: &str) -> Option<SocketAddr> {
        self.take_with(key, |v| match v {
            DeValue::String(s) => s.parse().map_err(|_| {
                format!("invalid socket address {s:?}; write IP:PORT, e.g. \"127.0.0.1:8080\"")
            }),
            other => Err(expected(
                "a socket address string such as \"127.0.0.1:8080\"",
                other,
            )),
        })
    }

    /// A finite number (a TOML float or integer).
    pub(crate) fn take_f64(&mut self, key: &str) -> Option<f64> {
        self.take_with(key, |v| {
            let n = match v {
                DeValue::Float(f) => f.as_str().parse::<f64>().map_err(|e| e.to_string())?,
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|e| format!("invalid integer: {e}"))?
                    as f64,
                other => return Err(expected("a number", other)),
            };
            if n.is_finite() {
                Ok(n)
            } else {
                Err("must be a finite number".to_owned())
            }
        })
    }

    /// A boolean.
    pub(crate) fn take_bool(&mut self, key: &str) -> Option<bool> {
        self.take_with(key, |v| match v {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(expected("true or false", other)),
        })
    }

    /// One of a fixed set of words.
    pub(crate) fn take_choice(
        &mut self,
        key: &str,
        choices: &[&'static str],
    ) -> Option<&'static str> {
        self.take_with(key, |v| match v {
            DeValue::String(s) => choices
                .iter()
                .copied()
                .find(|c| *c == s.as_ref())
                .ok_or_else(|| {
                    format!(
                        "unknown value {:?}; expected one of: {}",
                        s.as_ref(),
                        choices.join(", ")
                    )
                }),
            other => Err(expected("a string", other)),
        })
    }

    /// An integer within `range` (inclusive).
    pub(crate) fn take_int(
        &mut self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        self.take_with(key, |v| int_in(v, &range))
    }

    /// An array of strings (possibly empty).
    pub(crate) fn take_str_list(&mut self, key: &str) -> Option<Vec<String>> {
        self.take_with(key, |v| match v {
            DeValue::Array(items) => items
                .iter()
                .map(|item| match item.get_ref() {
                    DeValue::String(s) => Ok(s.to_string()),
                    other => Err(expected("an array of strings", other)),
                })
                .collect(),
            other => Err(expected("an array of strings", other)),
        })
    }

    /// A value that may be a scalar or an inline table (a GPIO line:
    /// `17`, `"NAME"` or `{ line = 17, active_low = true }`).
    pub(crate) fn take_scalar_or_table(&mut self, key: &str) -> Option<ScalarOrTable<'d, 'i>> {
        let value = self.take_raw(key)?;
        let span = value.span();
        Some(match value.into_inner() {
            DeValue::Table(table) => ScalarOrTable::Table(Section::from_table(
                self.diag,
                self.key_path(key),
                span,
                table,
            )),
            other => ScalarOrTable::Scalar(other),
        })
    }

    /// A secret, given as `{ env = "VAR" }` or `{ file = "/path" }`, never
    /// inline. The value never appears in a problem.
    pub(crate) fn take_secret(&mut self, key: &str, env: &dyn Env) -> Option<Secret> {
        let value = self.take_raw(key)?;
        let span = value.span();
        let path = self.key_path(key);
        let table = match value.into_inner() {
            DeValue::Table(table) => table,
            DeValue::String(_) => {
                self.diag.report(
                    &span,
                    &path,
                    "secrets must come from a file or an environment variable: \
                     write { env = \"NAME\" } or { file = \"/path\" }",
                );
                return None;
            }
            other => {
                let message = expected("{ env = \"NAME\" } or { file = \"/path\" }", &other);
                self.diag.report(&span, &path, message);
                return None;
            }
        };
        let mut s = Section::from_table(self.diag, path, span, table);
        // An invalid name is not echoed: it may be the secret itself, pasted
        // into the wrong place.
        let var = s.take_with("env", |v| match v {
            DeValue::String(name) if is_env_name(name) => Ok(name.to_string()),
            DeValue::String(_) => Err("not a valid environment variable name \
                 (letters, digits and '_', not starting with a digit)"
                .to_owned()),
            other => Err(expected("an environment variable name", other)),
        });
        let file = s.take_path("file");
        let secret = match (var, file) {
            (Some(_), Some(_)) => {
                s.problem("", "give either `env` or `file`, not both");
                None
            }
            (Some(var), None) => match env.var(&var) {
                Some(value) if !value.is_empty() => Some(Secret::new(value)),
                Some(_) => {
                    s.problem("env", format!("environment variable {var} is empty"));
                    None
                }
                None => {
                    s.problem("env", format!("environment variable {var} is not set"));
                    None
                }
            },
            (None, Some(file)) => match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let value = text.trim_end_matches(['\n', '\r']);
                    if value.is_empty() {
                        s.problem("file", format!("secret file {} is empty", file.display()));
                        None
                    } else {
                        Some(Secret::new(value.to_owned()))
                    }
                }
                Err(e) => {
                    // The io::Error names the failure, never the contents.
                    let message = format!("cannot read secret file {}: {e}", file.display());
                    s.problem("file", message);
                    None
                }
            },
            (None, None) => {
                if !s.was_present("env") && !s.was_present("file") {
                    s.problem("", "needs `env` (a variable name) or `file` (a path)");
                }
                None
            }
        };
        s.finish();
        secret
    }

    /// A sub-table (`[store]`, or an inline table). When absent, an empty
    /// section located at this table, so required keys are still reported.
    pub(crate) fn take_table(&mut self, key: &str) -> Section<'d, 'i> {
        let path = self.key_path(key);
        let Some(value) = self.take_raw(key) else {
            return Section::empty(self.diag, path, self.span.clone(), false);
        };
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(table) => Section::from_table(self.diag, path, span, table),
            other => {
                self.diag.report(&span, &path, expected("a table", &other));
                Section::empty(self.diag, path, span, true)
            }
        }
    }

    /// An array of tables (`[[devices]]`), each a section `key[i]`. Absent
    /// is an empty list.
    pub(crate) fn take_tables(&mut self, key: &str) -> Vec<Section<'d, 'i>> {
        let path = self.key_path(key);
        let Some(value) = self.take_raw(key) else {
            return Vec::new();
        };
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.diag.report(
                &span,
                &path,
                format!("expected an array of tables ([[{key}]])"),
            );
            return Vec::new();
        };
        items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                let item_span = item.span();
                match item.into_inner() {
                    DeValue::Table(t) => {
                        Some(Section::from_table(self.diag, item_path, item_span, t))
                    }
                    other => {
                        self.diag
                            .report(&item_span, &item_path, expected("a table", &other));
                        None
                    }
                }
            })
            .collect()
    }

    /// Reports every key nobody took as unknown.
    pub(crate) fn finish(self) {
        self.finish_with(|_| Leftover::Unknown);
    }

    /// Reports the keys nobody took, letting `judge` replace the usual
    /// "unknown key" problem.
    pub(crate) fn finish_with(self, judge: impl Fn(&str) -> Leftover) {
        for entry in &self.entries {
            let message = match judge(&entry.key) {
                Leftover::Ignore => continue,
                Leftover::Message(message) => message,
                Leftover::Unknown => unknown_key(&entry.key, &self.known),
            };
            self.diag
                .report(&entry.key_span, &self.key_path(&entry.key), message);
        }
    }
}

/// "unknown key", with a suggestion when one of `known` is close.
pub(crate) fn unknown_key(key: &str, known: &[String]) -> String {
    match suggest(key, known.iter().map(String::as_str)) {
        Some(close) => format!("unknown key; did you mean `{close}`?"),
        None if known.is_empty() => "unknown key".to_owned(),
        None => format!("unknown key; expected one of: {}", known.join(", ")),
    }
}

/// The required `id` of one of a list of tables, reported when it repeats
/// an earlier one (`first_line`: id → line of its first definition).
pub(crate) fn take_unique_id(
    s: &mut Section<'_, '_>,
    first_line: &mut HashMap<String, usize>,
    what: &str,
) -> Option<String> {
    let id = s.require("id", Section::take_id)?;
    if let Some(line) = first_line.get(&id) {
        s.problem(
            "id",
            format!("duplicate {what} id {id:?} (first defined on line {line})"),
        );
    } else {
        first_line.insert(id.clone(), s.line_of("id"));
    }
    Some(id)
}

/// The candidate closest to `word`, when it is close enough to be a typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        // Up to one edit per three characters; very short words get none.
        .filter(|&(distance, c)| distance <= c.chars().count() / 3)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, c)| c)
}

/// An integer value within `range`.
pub(crate) fn int_in(
    v: &DeValue<'_>,
    range: &std::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    let out_of_range = || {
        format!(
            "must be an integer from {} to {}",
            range.start(),
            range.end()
        )
    };
    match v {
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => u64::try_from(n)
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(out_of_range),
            Err(e) => Err(format!("invalid integer: {e}")),
        },
        other => Err(expected("an integer", other)),
    }
}

pub(crate) fn expected(what: &str, found: &DeValue<'_>) -> String {
    format!("expected {what}, found {}", found.type_str())
}

/// `[a-z0-9_-]{1,64}`.
pub(crate) fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a portable environment variable name.
fn is_env_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// What a PEM file must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pem {
    /// One or more certificates (a chain, or CA roots).
    Certificates,
    /// One private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

impl Pem {
    /// Reads `path` and checks its PEM blocks.
    fn check(self, path: &std::path::Path) -> Result<(), String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        match self {
            Pem::Certificates => {
                let certs = CertificateDer::pem_slice_iter(&bytes)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{shown} is not valid PEM: {e}"))?;
                if certs.is_empty() {
                    return Err(format!("{shown} holds no PEM certificate"));
                }
            }
            Pem::PrivateKey => {
                // The error says what is wrong, never the key's bytes.
                PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
                    rustls_pki_types::pem::Error::NoItemsFound => {
                        format!("{shown} holds no PEM private key")
                    }
                    other => format!("{shown} is not a valid PEM private key: {other}"),
                })?;
            }
        }
        Ok(())
    }
}
