//! # Gate: config
//!
//! Given an environment map (a table of hand-written cases for every rule of SPEC §2.11,
//! then generated environments: random case and whitespace, unicode, empty and very long
//! values, URLs with missing parts, odd ports, percent-encoding, passwords holding `@`, `:`
//! and `/`),
//! when the book builds its configuration from it,
//! then it never panics; it gives a valid configuration or an error naming the variable;
//! every environment valid by construction is accepted, and every accepted one obeys the
//! rules (live needs `CONFIRM_LIVE_TRADING=true` and `sslmode=require`); the same map gives
//! the same configuration; and no error, `Debug` or `Display` shows the password.
//!
//! The config involves no database: its checks run once.
//!
//! Mutants: `CONFIRM_LIVE_TRADING=1` accepted (caught by `config_rules`), and a URL error
//! that quotes the password (caught by `config_hides_password`).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use book::config::{Config, CONFIRM_LIVE_TRADING, DATABASE_URL, TRADING_MODE};
use book::Mode;
use harness::{ensure, Case, Check, Failure};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

harness::gate_tests! {
    gate: "config";
    database: none;
    checks: [every_rule_holds, generated_environments, the_same_map_gives_the_same_config];
    mutants: [
        confirm_live_accepts_one_is_caught => (ConfirmLiveAcceptsOne, every_rule_holds, "config_rules"),
        url_error_shows_password_is_caught => (UrlErrorShowsPassword, generated_environments, "config_hides_password"),
    ];
}

const RULES: &str = "config_rules";
const HIDES: &str = "config_hides_password";
const NEVER_PANICS: &str = "config_never_panics";
/// Generated environments the property check runs.
const GENERATED_ENVIRONMENTS: u32 = 1_000;

const GOOD_URL: &str = "postgres://trader:s3cret-Zz9@db.example:5432/book";
const LIVE_URL: &str = "postgres://trader:s3cret-Zz9@db.example:5432/book?sslmode=require";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn build(
    case: &Case,
    env: &BTreeMap<String, String>,
) -> Result<Result<Config, book::config::ConfigError>, String> {
    catch_unwind(AssertUnwindSafe(|| Config::from_env_as(env, case.mutant)))
        .map_err(|_| "panicked".to_owned())
}

/// `Ok(mode)` expected, or `Err(variable)`.
type Expected = Result<Mode, &'static str>;

fn table() -> Vec<(&'static str, Vec<(&'static str, &'static str)>, Expected)> {
    vec![
        (
            "missing mode is paper",
            vec![(DATABASE_URL, GOOD_URL)],
            Ok(Mode::Paper),
        ),
        (
            "paper",
            vec![(TRADING_MODE, "paper"), (DATABASE_URL, GOOD_URL)],
            Ok(Mode::Paper),
        ),
        (
            "mode is trimmed and case-insensitive",
            vec![(TRADING_MODE, "  PaPeR \t"), (DATABASE_URL, GOOD_URL)],
            Ok(Mode::Paper),
        ),
        (
            "live confirmed",
            vec![
                (TRADING_MODE, "LIVE"),
                (CONFIRM_LIVE_TRADING, "TRUE"),
                (DATABASE_URL, LIVE_URL),
            ],
            Ok(Mode::Live),
        ),
        (
            "unknown mode",
            vec![(TRADING_MODE, "production"), (DATABASE_URL, GOOD_URL)],
            Err(TRADING_MODE),
        ),
        (
            "empty mode",
            vec![(TRADING_MODE, ""), (DATABASE_URL, GOOD_URL)],
            Err(TRADING_MODE),
        ),
        (
            "live unconfirmed",
            vec![(TRADING_MODE, "live"), (DATABASE_URL, LIVE_URL)],
            Err(CONFIRM_LIVE_TRADING),
        ),
        (
            "live confirmed with 1",
            vec![
                (TRADING_MODE, "live"),
                (CONFIRM_LIVE_TRADING, "1"),
                (DATABASE_URL, LIVE_URL),
            ],
            Err(CONFIRM_LIVE_TRADING),
        ),
        (
            "live confirmed with yes",
            vec![
                (TRADING_MODE, "live"),
                (CONFIRM_LIVE_TRADING, "yes"),
                (DATABASE_URL, LIVE_URL),
            ],
            Err(CONFIRM_LIVE_TRADING),
        ),
        (
            "live confirmed with false",
            vec![
                (TRADING_MODE, "live"),
                (CONFIRM_LIVE_TRADING, "false"),
                (DATABASE_URL, LIVE_URL),
            ],
            Err(CONFIRM_LIVE_TRADING),
        ),
        (
            "live confirmed with empty",
            vec![
                (TRADING_MODE, "live"),
                (CONFIRM_LIVE_TRADING, ""),
                (DATABASE_URL, LIVE_URL),
            ],
            Err(CONFIRM_LIVE_TRADING),
        ),
        (
            "live without sslmode",
            vec![
                (TRADING_MODE, "live"),
                (CONFIRM_LIVE_TRADING, "true"),
                (DATABASE_URL, GOOD_URL),
            ],
            Err(DATABASE_URL),
        ),
        ("no url", vec![(TRADING_MODE, "paper")], Err(DATABASE_URL)),
        (
            "no port",
            vec![(DATABASE_URL, "postgres://trader:s3cret-Zz9@db.example/book")],
            Err(DATABASE_URL),
        ),
        (
            "port zero",
            vec![(
                DATABASE_URL,
                "postgres://trader:s3cret-Zz9@db.example:0/book",
            )],
            Err(DATABASE_URL),
        ),
        (
            "port too big",
            vec![(
                DATABASE_URL,
                "postgres://trader:s3cret-Zz9@db.example:65536/book",
            )],
            Err(DATABASE_URL),
        ),
        (
            "no user",
            vec![(DATABASE_URL, "postgres://db.example:5432/book")],
            Err(DATABASE_URL),
        ),
        (
            "no database",
            vec![(
                DATABASE_URL,
                "postgres://trader:s3cret-Zz9@db.example:5432/",
            )],
            Err(DATABASE_URL),
        ),
        (
            "no host",
            vec![(DATABASE_URL, "postgres://trader:s3cret-Zz9@:5432/book")],
            Err(DATABASE_URL),
        ),
        (
            "other scheme",
            vec![(
                DATABASE_URL,
                "mysql://trader:s3cret-Zz9@db.example:5432/book",
            )],
            Err(DATABASE_URL),
        ),
        (
            "encoded password with @ : /",
            vec![(
                DATABASE_URL,
                "postgresql://trader:p%40ss%3Aw%2Frd@db.example:5432/book",
            )],
            Ok(Mode::Paper),
        ),
        (
            "bad percent-encoding",
            vec![(DATABASE_URL, "postgres://trader:p%4@db.example:5432/book")],
            Err(DATABASE_URL),
        ),
    ]
}

fn every_rule_holds(case: &Case) -> Check {
    for (name, pairs, expected) in table() {
        let built = build(case, &env(&pairs))
            .map_err(|panic| Failure::new(NEVER_PANICS, format!("{name}: {panic}")))?;
        match (&built, expected) {
            (Ok(config), Ok(mode)) => ensure!(
                RULES,
                config.mode() == mode,
                "{name}: mode {:?}, expected {mode:?}",
                config.mode()
            ),
            (Err(error), Err(variable)) => ensure!(
                RULES,
                error.variable == variable,
                "{name}: the error names {}, expected {variable}: {error}",
                error.variable
            ),
            (built, expected) => {
                return Err(Failure::new(
                    RULES,
                    format!("{name}: got {built:?}, expected {expected:?}"),
                ))
            }
        }
        if let Err(error) = &built {
            ensure!(
                HIDES,
                !error.to_string().contains("s3cret-Zz9"),
                "{name}: the error shows the password: {error}"
            );
        }
    }
    Ok(())
}

/// A generated environment, with what the generator knows of it.
#[derive(Debug, Clone)]
struct Generated {
    env: BTreeMap<String, String>,
    /// The password put into the URL (before any percent-encoding), if any.
    password: Option<String>,
    /// Every part was drawn from the valid choices: it must be accepted.
    valid: bool,
}

fn casing(word: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(any::<bool>(), word.len()),
        "[ \t]{0,2}",
        "[ \t]{0,2}",
    )
        .prop_map(move |(upper, before, after)| {
            let cased: String = word
                .chars()
                .zip(upper)
                .map(|(character, upper)| {
                    if upper {
                        character.to_ascii_uppercase()
                    } else {
                        character
                    }
                })
                .collect();
            format!("{before}{cased}{after}")
        })
}

/// Noise: empty, unicode, very long, or plain junk.
fn noise() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,12}",
        "[a-z]{300,400}",
        Just("1".to_owned()),
        Just("yes".to_owned()),
        Just("false".to_owned())
    ]
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// (url, password, valid, sslmode require)
fn url() -> impl Strategy<Value = (String, Option<String>, bool, bool)> {
    let password = prop_oneof![Just(None), "pw[a-zA-Z0-9@:/%é ]{8,20}".prop_map(Some)];
    // Valid choices weigh more, so that about half the environments are valid.
    let port = prop_oneof![12 => (1_u32..=65_535).prop_map(|port| (port.to_string(), true)), 1 => Just(("0".to_owned(), false)), 1 => Just(("65536".to_owned(), false)), 1 => Just(("".to_owned(), false)), 1 => Just(("abc".to_owned(), false))];
    let scheme = prop_oneof![6 => Just(("postgres://", true)), 6 => Just(("postgresql://", true)), 1 => Just(("mysql://", false)), 1 => Just(("", false))];
    let ssl = prop_oneof![4 => Just(("?sslmode=require", true)), 1 => Just(("?sslmode=disable", false)), 1 => Just(("", false))];
    let host = prop_oneof![6 => Just("db.example"), 6 => Just("127.0.0.1"), 1 => Just("")];
    let database = prop_oneof![8 => Just("book"), 1 => Just("")];
    (
        scheme,
        "[a-z][a-z0-9_]{0,8}",
        password,
        prop_oneof![4 => Just(true), 1 => Just(false)],
        host,
        port,
        database,
        ssl,
    )
        .prop_map(
            |(
                (scheme, scheme_ok),
                user,
                password,
                encoded,
                host,
                (port, port_ok),
                database,
                (ssl, require),
            )| {
                let written = password.as_ref().map(|password| {
                    if encoded {
                        encode(password)
                    } else {
                        password.clone()
                    }
                });
                let user_info = written
                    .as_ref()
                    .map_or_else(|| user.clone(), |written| format!("{user}:{written}"));
                let colon = if port.is_empty() {
                    String::new()
                } else {
                    format!(":{port}")
                };
                let url = format!("{scheme}{user_info}@{host}{colon}/{database}{ssl}");
                let valid = scheme_ok
                    && port_ok
                    && !host.is_empty()
                    && !database.is_empty()
                    && (password.is_none() || encoded);
                (url, password, valid, require)
            },
        )
}

fn generated() -> impl Strategy<Value = Generated> {
    let mode = prop_oneof![2 => Just((None, true, false)), 3 => casing("paper").prop_map(|mode| (Some(mode), true, false)), 3 => casing("live").prop_map(|mode| (Some(mode), true, true)), 1 => noise().prop_map(|mode| (Some(mode), false, false))];
    let confirm = prop_oneof![1 => Just((None, false)), 4 => casing("true").prop_map(|confirm| (Some(confirm), true)), 1 => noise().prop_map(|confirm| (Some(confirm), false))];
    (mode, confirm, url()).prop_map(
        |((mode, mode_ok, live), (confirm, confirmed), (url, password, url_ok, require))| {
            let mut env = BTreeMap::new();
            if let Some(mode) = mode {
                env.insert(TRADING_MODE.to_owned(), mode);
            }
            if let Some(confirm) = confirm {
                env.insert(CONFIRM_LIVE_TRADING.to_owned(), confirm);
            }
            env.insert(DATABASE_URL.to_owned(), url);
            let valid = mode_ok && url_ok && (!live || (confirmed && require));
            Generated {
                env,
                password,
                valid,
            }
        },
    )
}

/// Every accepted configuration obeys the rules.
fn obeys_the_rules(config: &Config, env: &BTreeMap<String, String>) -> Result<(), String> {
    let mode = env
        .get(TRADING_MODE)
        .map(|mode| mode.trim().to_ascii_lowercase());
    let expected = if mode.as_deref() == Some("live") {
        Mode::Live
    } else {
        Mode::Paper
    };
    if config.mode() != expected {
        return Err(format!(
            "mode {:?} from TRADING_MODE={mode:?}",
            config.mode()
        ));
    }
    if config.mode() == Mode::Live {
        let confirm = env
            .get(CONFIRM_LIVE_TRADING)
            .map(|confirm| confirm.trim().to_ascii_lowercase());
        if confirm.as_deref() != Some("true") {
            return Err(format!(
                "live accepted with CONFIRM_LIVE_TRADING={confirm:?}"
            ));
        }
        if config.database().params.get("sslmode").map(String::as_str) != Some("require") {
            return Err("live accepted without sslmode=require".to_owned());
        }
    }
    let database = config.database();
    if database.user.is_empty()
        || database.host.is_empty()
        || database.database.is_empty()
        || database.port == 0
    {
        return Err(format!("accepted a URL with a missing part: {database:?}"));
    }
    Ok(())
}

fn check_one(case: &Case, generated: &Generated) -> Check {
    let built = build(case, &generated.env).map_err(|panic| {
        Failure::new(
            NEVER_PANICS,
            format!("{panic} on {:?}", generated.env.keys()),
        )
    })?;
    let shown = match &built {
        Ok(config) => format!("{config:?}"),
        Err(error) => format!("{error} / {error:?}"),
    };
    if let Some(password) = &generated.password {
        ensure!(
            HIDES,
            !shown.contains(password.as_str()) && !shown.contains(&encode(password)),
            "the password shows in {shown}"
        );
    }
    match &built {
        Ok(config) => {
            obeys_the_rules(config, &generated.env).map_err(|problem| Failure::new(RULES, problem))
        }
        Err(error) => {
            ensure!(
                RULES,
                !generated.valid,
                "a valid environment was refused: {error}"
            );
            Ok(())
        }
    }
}

/// Generated environments from the case's seed, deterministically.
fn generated_environments(case: &Case) -> Check {
    let mut runner =
        TestRunner::new_with_rng(RunnerConfig::default(), case.seed.proptest_rng("config"));
    let strategy = generated();
    let (mut valid, mut accepted) = (0, 0);
    for _ in 0..GENERATED_ENVIRONMENTS {
        let generated = strategy
            .new_tree(&mut runner)
            .map_err(Failure::harness)?
            .current();
        check_one(case, &generated)?;
        valid += u32::from(generated.valid);
        accepted += u32::from(build(case, &generated.env).is_ok_and(|built| built.is_ok()));
    }
    ensure!("config_generator", valid > GENERATED_ENVIRONMENTS / 10, "only {valid} of {GENERATED_ENVIRONMENTS} generated environments were valid: the generator tests little");
    println!("{GENERATED_ENVIRONMENTS} generated environments: {valid} valid by construction, {accepted} accepted");
    Ok(())
}

/// A pure function: the same map gives the same configuration, and the map can change
/// afterwards without the configuration changing.
fn the_same_map_gives_the_same_config(case: &Case) -> Check {
    let mut map = env(&[
        (TRADING_MODE, "live"),
        (CONFIRM_LIVE_TRADING, "true"),
        (DATABASE_URL, LIVE_URL),
    ]);
    let first = build(case, &map)
        .map_err(Failure::harness)?
        .map_err(Failure::harness)?;
    let second = build(case, &map)
        .map_err(Failure::harness)?
        .map_err(Failure::harness)?;
    ensure!(
        RULES,
        first == second,
        "the same environment gave two configurations"
    );
    map.insert(TRADING_MODE.to_owned(), "paper".to_owned());
    ensure!(
        RULES,
        first.mode() == Mode::Live,
        "the configuration changed with the map it was built from"
    );
    Ok(())
}
