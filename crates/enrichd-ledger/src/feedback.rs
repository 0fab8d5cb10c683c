//! Feedback on findings: who said a finding was wrong (or right), kept so
//! that a refuted account stays out of that person's profiles in every
//! process, and counted per source as its precision. The sources' canary
//! answers are kept here too.
use sqlx::{AnyPool, Row};

use super::{Ledger, LedgerError, lease, suppressions};

/// What a finding is: a profile (by its URL) or an attribute's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    Profile,
    Attribute,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::Attribute => "attribute",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "attribute" {
            Self::Attribute
        } else {
            Self::Profile
        }
    }
}

/// The verdicts, as stored.
pub const WRONG_PERSON: &str = "wrong_person";
pub const NOT_THERE: &str = "not_there";
pub const CORRECT: &str = "correct";

/// One piece of feedback, as given.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    pub id: String,
    pub at_ms: i64,
    pub subject: String,
    pub processing_id: String,
    pub source_id: String,
    pub kind: FindingKind,
    /// A profile's URL, or an attribute as `name=value`.
    pub finding: String,
    /// `WRONG_PERSON`, `NOT_THERE` or `CORRECT`.
    pub verdict: String,
    pub caller: String,
    pub caller_id: String,
    pub note: String,
}

/// A finding held out of one person's profiles, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuted {
    pub source_id: String,
    pub kind: FindingKind,
    pub finding: String,
    pub verdict: String,
    pub at_ms: i64,
}

impl Refuted {
    pub(super) fn same_finding(&self, other: &Refuted) -> bool {
        self.source_id == other.source_id
            && self.kind == other.kind
            && self.finding == other.finding
    }
}

/// A feedback row as the in-memory list takes it.
pub(super) struct FeedbackChange {
    pub subject: String,
    pub refuted: Refuted,
    /// The verdict holds the finding out (anything but `correct`).
    pub holds_out: bool,
}

/// Feedback rows in the order given: all of them, or those under a change
/// counter past `after` (and those written without one).
pub(super) async fn read_changes(
    pool: &AnyPool,
    after: Option<i64>,
) -> Result<Vec<FeedbackChange>, sqlx::Error> {
    let columns = "subject, source_id, kind, finding, verdict, at_ms";
    let rows = match after {
        None => {
            sqlx::query(&format!(
                "SELECT {columns} FROM feedback WHERE subject <> '' ORDER BY at_ms, id"
            ))
            .fetch_all(pool)
            .await?
        }
        Some(after) => {
            sqlx::query(&format!(
                "SELECT {columns} FROM feedback WHERE (version > $1 OR version = 0) \
                 AND subject <> '' ORDER BY at_ms, id"
            ))
            .bind(after)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter()
        .map(|row| {
            let verdict: String = row.try_get("verdict")?;
            Ok(FeedbackChange {
                subject: row.try_get("subject")?,
                holds_out: verdict != CORRECT,
                refuted: Refuted {
                    source_id: row.try_get("source_id")?,
                    kind: FindingKind::parse(&row.try_get::<String, _>("kind")?),
                    finding: row.try_get("finding")?,
                    verdict,
                    at_ms: row.try_get("at_ms")?,
                },
            })
        })
        .collect()
}

/// Feedback on one source over a period: its precision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub correct: u64,
    pub wrong_person: u64,
    pub not_there: u64,
}

impl Tally {
    pub fn refuted(&self) -> u64 {
        self.wrong_person + self.not_there
    }

    pub fn total(&self) -> u64 {
        self.correct + self.refuted()
    }

    /// The share confirmed, once there is any feedback.
    pub fn precision(&self) -> Option<f64> {
        (self.total() > 0).then(|| self.correct as f64 / self.total() as f64)
    }
}

/// A source's latest canary answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    pub source_id: String,
    pub at_ms: i64,
    /// The source said the random name exists.
    pub claimed: bool,
    /// The name asked (random, nobody's).
    pub probe: String,
    pub detail: String,
}

impl Ledger {
    /// Records feedback; a verdict on a person's finding holds in this
    /// process before this returns, in the others within their
    /// `ledger.follow_every`. Whether the person's held-out findings
    /// changed.
    pub async fn give_feedback(&self, row: &FeedbackRow) -> Result<bool, LedgerError> {
        let mut tx = self.pool.begin().await?;
        lease::serialize(&mut tx).await?;
        suppressions::bump(&mut tx).await?;
        sqlx::query(&format!(
            "INSERT INTO feedback (id, at_ms, subject, processing_id, source_id, kind, finding, \
             verdict, caller, caller_id, note, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ({}))",
            suppressions::VERSION_NUMBER
        ))
        .bind(&row.id)
        .bind(row.at_ms)
        .bind(&row.subject)
        .bind(&row.processing_id)
        .bind(&row.source_id)
        .bind(row.kind.as_str())
        .bind(&row.finding)
        .bind(&row.verdict)
        .bind(&row.caller)
        .bind(&row.caller_id)
        .bind(&row.note)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(self.suppressed.add_feedback(FeedbackChange {
            subject: row.subject.clone(),
            holds_out: row.verdict != CORRECT,
            refuted: Refuted {
                source_id: row.source_id.clone(),
                kind: row.kind,
                finding: row.finding.clone(),
                verdict: row.verdict.clone(),
                at_ms: row.at_ms,
            },
        }))
    }

    /// The findings held out of a person's profiles (from memory, kept in
    /// step with the database as the suppression list is).
    pub fn refuted(&self, subject: &str) -> Vec<Refuted> {
        self.suppressed.refuted(subject)
    }

    /// People whose held-out findings another process changed, from now on.
    pub fn refutation_news(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.suppressed.refutation_news()
    }

    /// Every piece of feedback given on a person, oldest first (Access).
    pub async fn feedback_of(&self, subject: &str) -> Result<Vec<FeedbackRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, subject, processing_id, source_id, kind, finding, verdict, caller, \
             caller_id, note FROM feedback WHERE subject = $1 ORDER BY at_ms, id",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FeedbackRow {
                    id: r.try_get("id")?,
                    at_ms: r.try_get("at_ms")?,
                    subject: r.try_get("subject")?,
                    processing_id: r.try_get("processing_id")?,
                    source_id: r.try_get("source_id")?,
                    kind: FindingKind::parse(&r.try_get::<String, _>("kind")?),
                    finding: r.try_get("finding")?,
                    verdict: r.try_get("verdict")?,
                    caller: r.try_get("caller")?,
                    caller_id: r.try_get("caller_id")?,
                    note: r.try_get("note")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Blanks the personal columns of a person's feedback (erasure): the
    /// source, verdict and time stay, for the source's precision.
    pub(super) async fn erase_feedback(&self, subject: &str) -> Result<u64, LedgerError> {
        let done = sqlx::query(
            "UPDATE feedback SET subject = '', processing_id = '', finding = '', caller = '', \
             caller_id = '', note = '' WHERE subject = $1",
        )
        .bind(subject)
        .execute(&self.pool)
        .await?;
        self.suppressed.forget_refuted(subject);
        Ok(done.rows_affected())
    }

    /// Feedback per source given at or after `since_ms`: each finding of
    /// each person counted once, by its latest verdict (a caller that says
    /// the same thing ten times has said it once). Erased people's feedback
    /// counts as given.
    pub async fn tallies(
        &self,
        since_ms: i64,
    ) -> Result<std::collections::BTreeMap<String, Tally>, LedgerError> {
        let rows = sqlx::query(
            "SELECT source_id, verdict, COUNT(*) AS n FROM feedback f WHERE at_ms >= $1 \
             AND (subject = '' OR NOT EXISTS (SELECT 1 FROM feedback g \
             WHERE g.subject = f.subject AND g.source_id = f.source_id AND g.kind = f.kind \
             AND g.finding = f.finding AND (g.at_ms > f.at_ms OR (g.at_ms = f.at_ms AND g.id > f.id)))) \
             GROUP BY source_id, verdict",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut tallies = std::collections::BTreeMap::<String, Tally>::new();
        for row in &rows {
            let (source, verdict, n): (String, String, i64) = (
                row.try_get("source_id")?,
                row.try_get("verdict")?,
                row.try_get("n")?,
            );
            let tally = tallies.entry(source).or_default();
            let n = u64::try_from(n).unwrap_or(0);
            match verdict.as_str() {
                CORRECT => tally.correct += n,
                WRONG_PERSON => tally.wrong_person += n,
                NOT_THERE => tally.not_there += n,
                _ => {}
            }
        }
        Ok(tallies)
    }

    /// Claims the canary run due at `now_ms` (none ran within `every_ms`):
    /// of the processes on this ledger, one runs it.
    pub async fn claim_canary_run(&self, now_ms: i64, every_ms: i64) -> Result<bool, LedgerError> {
        let done = sqlx::query(
            "UPDATE ledger_meta SET value = $1 WHERE name = 'canary_run_ms' \
             AND CAST(value AS BIGINT) <= $2",
        )
        .bind(now_ms.to_string())
        .bind(now_ms.saturating_sub(every_ms))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Keeps a source's latest canary answer.
    pub async fn put_canary(&self, canary: &Canary) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO source_canary (source_id, at_ms, claimed, probe, detail) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source_id) DO UPDATE SET \
             at_ms = excluded.at_ms, claimed = excluded.claimed, probe = excluded.probe, \
             detail = excluded.detail",
        )
        .bind(&canary.source_id)
        .bind(canary.at_ms)
        .bind(i64::from(canary.claimed))
        .bind(&canary.probe)
        .bind(&canary.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every source's latest canary answer.
    pub async fn canaries(&self) -> Result<Vec<Canary>, LedgerError> {
        let rows =
            sqlx::query("SELECT source_id, at_ms, claimed, probe, detail FROM source_canary")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Canary {
                    source_id: r.try_get("source_id")?,
                    at_ms: r.try_get("at_ms")?,
                    claimed: r.try_get::<i64, _>("claimed")? != 0,
                    probe: r.try_get("probe")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// One record by its id (the `processing_id` of an answer).
    pub async fn record_by_id(&self, id: &str) -> Result<Option<super::Record>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM ledger WHERE id = $1",
            super::COLUMNS
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(super::reads::to_records(&rows)?.into_iter().next())
    }
}
