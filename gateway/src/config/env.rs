//! The process environment behind a seam: the loader reads environment
//! variables (for secrets) only through [`Env`], so tests hand it a map and
//! never mutate the real environment.

use std::collections::HashMap;

/// Where the loader looks up environment variables.
pub trait Env {
    /// The variable's value, or `None` when it is unset or not valid UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A fixed set of variables, for tests and dry runs.
impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}
