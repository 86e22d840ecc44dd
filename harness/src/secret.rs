//! A database URL that may carry a password. `Debug` and `Display` show it redacted
//! (`postgres://user:***@host/db`); only [`SecretUrl::expose`] gives the real text, for a
//! connection or a child process's environment.

use std::fmt;

use book::store::redact_url;

#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL with its password. Never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> SecretUrl {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("postgres", &self.0));
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let query = tail.find('?').map_or("", |index| &tail[index..]);
        SecretUrl(format!("{scheme}://{authority}/{database}{query}"))
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SecretUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::SecretUrl;

    #[test]
    fn the_database_is_swapped_and_the_query_kept() {
        let url = SecretUrl::new("postgres://u:p@h:5432/app?sslmode=disable");
        assert_eq!(
            url.with_database("bookproof_case_1_2").expose(),
            "postgres://u:p@h:5432/bookproof_case_1_2?sslmode=disable"
        );
        assert_eq!(
            SecretUrl::new("postgres://u@h:5432")
                .with_database("x")
                .expose(),
            "postgres://u@h:5432/x"
        );
    }

    #[test]
    fn neither_debug_nor_display_shows_the_password() {
        let url = SecretUrl::new("postgres://trader:s3cret@db:5432/book");
        assert_eq!(url.to_string(), "postgres://trader:***@db:5432/book");
        assert!(!format!("{url:?}").contains("s3cret"));
    }
}
