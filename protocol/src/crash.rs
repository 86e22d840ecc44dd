//! Crash sites: where a book can be crashed, as the harness names them on the command
//! line, in reports and in repro commands (`confirm.before_commit#2`).
//!
//! A book exposes named crash points: two around the commit of each of its write
//! transactions and one right after each venue call. A site is the `hit`-th pass (from 1)
//! through one point in a run. A book in another language that names its points the same
//! way can be crashed at them by the `book` process protocol's `--crash-at`.

use std::fmt;
use std::str::FromStr;

/// Where around a commit a point sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Moment {
    /// The work is done and nothing is committed: a crash here rolls it back.
    BeforeCommit,
    /// The transaction committed; nothing after it ran.
    AfterCommit,
}

impl Moment {
    pub fn as_str(self) -> &'static str {
        match self {
            Moment::BeforeCommit => "before_commit",
            Moment::AfterCommit => "after_commit",
        }
    }
}

/// A named point.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrashPoint {
    /// Around the commit of the book's write transaction `transaction` (`confirm`,
    /// `reserve`, `migrate`, ...).
    Commit { transaction: String, moment: Moment },
    /// In the book, right after a venue call returned and before anything is recorded
    /// (`act.after_venue`).
    AfterVenueCall,
    /// In the driver, right after it answered the book's venue call: the harness kills the
    /// process there, without the book's cooperation (`driver.after_venue_reply`).
    AfterVenueReply,
}

const AFTER_VENUE_CALL: &str = "act.after_venue";
const AFTER_VENUE_REPLY: &str = "driver.after_venue_reply";

impl CrashPoint {
    pub fn commit(transaction: &str, moment: Moment) -> CrashPoint {
        CrashPoint::Commit {
            transaction: transaction.to_owned(),
            moment,
        }
    }

    /// The moment, for points around a commit.
    pub fn moment(&self) -> Option<Moment> {
        match self {
            CrashPoint::Commit { moment, .. } => Some(*moment),
            CrashPoint::AfterVenueCall | CrashPoint::AfterVenueReply => None,
        }
    }
}

impl fmt::Display for CrashPoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashPoint::Commit {
                transaction,
                moment,
            } => write!(formatter, "{transaction}.{}", moment.as_str()),
            CrashPoint::AfterVenueCall => formatter.write_str(AFTER_VENUE_CALL),
            CrashPoint::AfterVenueReply => formatter.write_str(AFTER_VENUE_REPLY),
        }
    }
}

impl FromStr for CrashPoint {
    type Err = String;

    fn from_str(text: &str) -> Result<CrashPoint, String> {
        match text {
            AFTER_VENUE_CALL => return Ok(CrashPoint::AfterVenueCall),
            AFTER_VENUE_REPLY => return Ok(CrashPoint::AfterVenueReply),
            _ => {}
        }
        let moment = |suffix: &str| match suffix {
            "before_commit" => Some(Moment::BeforeCommit),
            "after_commit" => Some(Moment::AfterCommit),
            _ => None,
        };
        match text.rsplit_once('.') {
            Some((transaction, suffix)) if !transaction.is_empty() && moment(suffix).is_some() => {
                Ok(CrashPoint::Commit {
                    transaction: transaction.to_owned(),
                    moment: moment(suffix).unwrap_or(Moment::BeforeCommit),
                })
            }
            _ => Err(format!(
                "crash point {text:?} is not NAME.before_commit, NAME.after_commit, \
                 {AFTER_VENUE_CALL} or {AFTER_VENUE_REPLY}"
            )),
        }
    }
}

/// One crash site: the `hit`-th time (from 1) a run passes `point`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrashSite {
    pub point: CrashPoint,
    pub hit: u32,
}

impl fmt::Display for CrashSite {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}#{}", self.point, self.hit)
    }
}

impl FromStr for CrashSite {
    type Err = String;

    /// `POINT#HIT`, as a failing crash case prints it (`confirm.before_commit#2`).
    fn from_str(text: &str) -> Result<CrashSite, String> {
        let (point, hit) = text.trim().rsplit_once('#').ok_or_else(|| {
            format!(
                "crash site {text:?} must look like POINT#HIT, for example confirm.before_commit#2"
            )
        })?;
        let hit: u32 = hit
            .parse()
            .ok()
            .filter(|hit| *hit >= 1)
            .ok_or_else(|| format!("crash site {text:?}: HIT must be a positive number"))?;
        Ok(CrashSite {
            point: point.parse()?,
            hit,
        })
    }
}

// On the wire a site is its text form.
impl serde::Serialize for CrashSite {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for CrashSite {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<CrashSite, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_round_trip_through_text() {
        for text in [
            "confirm.before_commit#2",
            "breaker.trip.after_commit#1",
            "act.after_venue#3",
            "driver.after_venue_reply#7",
        ] {
            let site: CrashSite = text.parse().expect("parses");
            assert_eq!(site.to_string(), text);
        }
        let site: CrashSite = "breaker.trip.after_commit#1".parse().expect("parses");
        assert_eq!(
            site.point,
            CrashPoint::commit("breaker.trip", Moment::AfterCommit)
        );
        for bad in [
            "confirm",
            "confirm#1",
            "confirm.during#1",
            ".before_commit#1",
            "act.after_venue#0",
        ] {
            assert!(bad.parse::<CrashSite>().is_err(), "{bad:?} must not parse");
        }
    }
}
