//! No password reaches `Debug`, `Display` or an error chain. Every type that holds a
//! database URL is built here from a URL with a password, on a real server (a throwaway
//! cluster with trust authentication accepts any password) and against a closed port, and
//! every way it can be printed is searched for the password.

use std::net::TcpListener;
use std::sync::Arc;

use book::store::{PostgresOptions, PostgresStore};
use harness::database::postgres::{PostgresDatabase, Server};
use harness::database::{Database, LocalCluster};
use harness::secret::SecretUrl;
use harness::settings::{self, Settings};
use harness::{Case, Seed};

const PASSWORD: &str = "pw-Zq8@x:y/never-print";
const ENCODED: &str = "pw-Zq8%40x%3Ay%2Fnever-print";

/// Every rendering of `value` that could reach a log: `{}`, `{:?}`, `{:#?}`.
fn assert_hidden(what: &str, display: Option<String>, debug: String, pretty: String) {
    for (form, text) in [
        ("Display", display.unwrap_or_default()),
        ("Debug", debug),
        ("pretty Debug", pretty),
    ] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(ENCODED),
            "{what}: the password leaked through {form}: {text}"
        );
    }
}

macro_rules! hidden {
    ($what:literal, display: $value:expr) => {
        assert_hidden(
            $what,
            Some(format!("{}", $value)),
            format!("{:?}", $value),
            format!("{:#?}", $value),
        )
    };
    ($what:literal, debug: $value:expr) => {
        assert_hidden(
            $what,
            None,
            format!("{:?}", $value),
            format!("{:#?}", $value),
        )
    };
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = format!("{error} / {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause} / {cause:?}"));
        source = cause.source();
    }
    text
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

#[test]
fn types_that_hold_a_url_never_print_its_password() {
    let cluster = match LocalCluster::start() {
        Ok(cluster) => cluster,
        Err(reason) if !Settings::get().require_postgres => {
            println!("skipped: {reason}");
            return;
        }
        Err(reason) => {
            panic!("PostgreSQL is required but the local cluster did not start: {reason}")
        }
    };
    let url = SecretUrl::new(format!(
        "postgres://postgres:{ENCODED}@127.0.0.1:{}/postgres",
        cluster.port()
    ));
    hidden!("SecretUrl", display: url);
    hidden!("PostgresOptions", debug: PostgresOptions::new(url.expose()));
    let store = PostgresStore::connect(PostgresOptions::new(url.expose()))
        .expect("trust accepts any password");
    hidden!("PostgresStore", debug: store);
    drop(store);
    let server = Arc::new(Server::provided(url.clone(), format!("test ({url})")));
    hidden!("Server", debug: server);
    let database =
        PostgresDatabase::create_on(Arc::clone(&server)).expect("a database on the cluster");
    hidden!("PostgresDatabase", display: database);
    let database = Database::from_provider(Box::new(database));
    hidden!("Database", display: database);
    let case = Case::new("secrets", "types_that_hold_a_url", Seed(1), database);
    hidden!("Case", debug: case);
    let access = case.database.process_access();
    hidden!("ProcessAccess", debug: access);
    assert!(
        access
            .environment
            .iter()
            .any(|(_, secret)| secret.expose().contains(ENCODED)),
        "the book process must still receive the real URL"
    );
}

#[test]
fn errors_that_carry_a_url_never_print_its_password() {
    let url = SecretUrl::new(format!(
        "postgres://trader:{PASSWORD}@127.0.0.1:{}/book",
        closed_port()
    ));
    let mut options = PostgresOptions::new(url.expose());
    options.connect_attempts_max = 1;
    let error = PostgresStore::connect(options).expect_err("nothing listens there");
    assert!(
        !error_chain(&error).contains(PASSWORD),
        "{}",
        error_chain(&error)
    );
    let server = Arc::new(Server::provided(url.clone(), format!("test ({url})")));
    let unavailable = PostgresDatabase::create_on(server).expect_err("the server is down");
    assert!(
        !error_chain(&unavailable).contains(PASSWORD),
        "{}",
        error_chain(&unavailable)
    );
    assert!(
        unavailable.reason.contains("trader:***@127.0.0.1"),
        "{unavailable}"
    );
    let bad = Settings::from_lookup(|name| (name == settings::PG_URL).then(|| "  ".to_owned()))
        .expect_err("an empty URL is refused");
    assert!(!error_chain(&bad).contains(PASSWORD));
}
