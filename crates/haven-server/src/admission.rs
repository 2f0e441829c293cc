//! Whether a binding client goes on, starts again (a client reset, and
//! why), or is refused: the server's rule, as a pure function of what the
//! `Bind` says and what storage knows, apart from sockets and storage.
//!
//! A client says which server version it last integrated, with the salt
//! the server drew for that version. Version numbers alone cannot tell a
//! server restored from a backup, whose versions have since been numbered
//! again by other clients' uploads, from the server the client knew: the
//! salts can.

use crate::storage::ClientRecord;
use haven_sync::protocol::{Action, ErrorCode, ResetReason};
use std::time::Duration;

/// The last server version a client integrated, as it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub version: u64,
    /// 0: none (a version from before salts, or no version at all).
    pub salt: u64,
}

/// What a binding client says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub partition: String,
    /// `false` for a new file (no ident yet).
    pub has_ident: bool,
    pub held: Held,
    /// The last of its changesets the server acknowledged to it.
    pub uploaded_through: u64,
    /// The last changeset it wrote.
    pub last_client_version: u64,
    /// It asks to start again (its app's schema breaks its file's).
    pub request_reset: bool,
}

/// What the server's storage knows, read before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    /// Why the client's schema conflicts with the server's, if it does.
    pub schema_conflict: Option<String>,
    /// The server's record of the client's ident: `None` when it has none
    /// (or one whose salt differs: an ident a restored server issued again).
    pub record: Option<ClientRecord>,
    /// A reset an operator marked the client for.
    pub pending_reset: Option<ResetReason>,
    /// How long the client was out of touch, and the most allowed
    /// (`--max-offline-time`), when both are known.
    pub away: Option<(Duration, Duration)>,
    pub latest: u64,
    pub trimmed_through: u64,
    /// The salt of the client's version, if the server still has it
    /// (`Some(0)`: a version stored before salts).
    pub salt_of_held: Option<u64>,
    /// Whether the partition lets a reset recover unsynced writes.
    pub recovery_allowed: bool,
}

/// The answer to a bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The session goes on.
    Admit,
    /// The client must start again from the server's state.
    Reset(Reset),
    /// The bind is refused.
    Refuse { code: ErrorCode, message: String, action: Action },
}

/// A client reset, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reset {
    pub reason: ResetReason,
    pub message: String,
    /// The last of the client's changesets the server integrated, when
    /// its record of the client can be trusted (a changeset whose
    /// acknowledgement was lost must not be recovered twice).
    pub acknowledged: Option<u64>,
    pub recovery_allowed: bool,
}

impl Reset {
    /// What the client must do.
    pub fn action(&self) -> Action {
        let (reason, acknowledged) = (self.reason, self.acknowledged);
        match self.recovery_allowed {
            true => Action::ClientReset { reason, acknowledged },
            false => Action::ClientResetNoRecovery { reason, acknowledged },
        }
    }
}

/// The rule. In order: a schema that conflicts with the server's is
/// refused (unless an operator's reset is pending: a file from before a
/// breaking schema change starts again); a new file goes on; then the
/// client's record, an operator's reset, the offline time, whether the
/// server's history continues the client's, and a reset the client asks
/// for.
pub(crate) fn admit(claim: &Claim, known: &Known) -> Verdict {
    let reset = |reason, message: String, acknowledged| {
        Verdict::Reset(Reset { reason, message, acknowledged, recovery_allowed: known.recovery_allowed })
    };
    if let Some(conflict) = &known.schema_conflict {
        return match known.pending_reset {
            Some(reason) if claim.has_ident => {
                reset(reason, operator_message(reason), known.record.as_ref().map(|r| r.uploaded_through))
            }
            _ => Verdict::Refuse { code: ErrorCode::BadSchema, message: conflict.clone(), action: Action::Fatal },
        };
    }
    if !claim.has_ident {
        if claim.request_reset {
            let message = "a new file cannot ask for a client reset: it has nothing to start again from".into();
            return Verdict::Refuse { code: ErrorCode::UnexpectedMessage, message, action: Action::Fatal };
        }
        return Verdict::Admit;
    }
    let Some(record) = &known.record else {
        return reset(ResetReason::UnknownClient, "the server does not know this file".into(), None);
    };
    if record.partition != claim.partition {
        let message = format!("this file syncs partition '{}', not '{}'", record.partition, claim.partition);
        return Verdict::Refuse { code: ErrorCode::UnexpectedMessage, message, action: Action::Fatal };
    }
    let acknowledged = Some(record.uploaded_through);
    if record.uploaded_through < claim.uploaded_through {
        let message = format!(
            "the server acknowledged this file's changes up to {} but now knows only up to {}",
            claim.uploaded_through, record.uploaded_through
        );
        return reset(ResetReason::ServerRestored, message, acknowledged);
    }
    if record.uploaded_through > claim.last_client_version {
        // A copy of the file from before some of its writes: its next
        // changesets would reuse client versions the server has, and be
        // skipped. Every changeset it holds reached the server already.
        let message = format!(
            "the server has this file's changes up to {} but the file only up to {}: it was restored from an older copy",
            record.uploaded_through, claim.last_client_version
        );
        return reset(ResetReason::ClientRestored, message, acknowledged);
    }
    if let Some(reason) = known.pending_reset {
        return reset(reason, operator_message(reason), acknowledged);
    }
    if let Some((away, max)) = known.away.filter(|(away, max)| away > max) {
        let message = format!(
            "this client was out of touch for {} s, longer than the server's max offline time ({} s): start again from the server's state",
            away.as_secs(),
            max.as_secs()
        );
        return reset(ResetReason::HistoryTrimmed, message, acknowledged);
    }
    match continuity(claim.held, known) {
        Err(Break::ServerRestored(message)) => return reset(ResetReason::ServerRestored, message, acknowledged),
        Err(Break::HistoryTrimmed) => {
            let message = trimmed_message(claim.held.version, known.trimmed_through);
            return reset(ResetReason::HistoryTrimmed, message, acknowledged);
        }
        Ok(()) => {}
    }
    if claim.request_reset {
        let message = "the client asked to start again from the server's state (its app's schema changed in a way its file cannot hold)";
        return reset(ResetReason::SchemaBreaking, message.into(), acknowledged);
    }
    Verdict::Admit
}

/// What a client is told when an operator's decision resets it.
pub(crate) fn operator_message(reason: ResetReason) -> String {
    match reason {
        ResetReason::Terminated => "sync was terminated for this partition: start again from the server's state".into(),
        reason => format!("the server reset this client ({reason:?}): start again from the server's state"),
    }
}

/// What a client is told when the history it needs was compacted away.
pub(crate) fn trimmed_message(held: u64, trimmed_through: u64) -> String {
    format!(
        "the client is at version {held} but history up to {trimmed_through} was compacted: start again from the server's state"
    )
}

/// Why the server's history does not continue the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Break {
    /// The client holds history this server does not have: it was
    /// restored from a backup.
    ServerRestored(String),
    /// The history the client needs next was trimmed away.
    HistoryTrimmed,
}

/// `Ok` when the server's history continues the version the client holds.
fn continuity(held: Held, known: &Known) -> Result<(), Break> {
    if held.version == 0 {
        return Ok(()); // nothing held: the client starts from the snapshot
    }
    if held.version > known.latest {
        let message = format!("the client has version {} but the server only {}", held.version, known.latest);
        return Err(Break::ServerRestored(message));
    }
    let diverged = || {
        Break::ServerRestored(format!(
            "the server's version {} is not the one the client holds: the server was restored from a backup since the client saw it",
            held.version
        ))
    };
    match known.salt_of_held {
        Some(salt) if salt != held.salt => Err(diverged()),
        _ if held.version < known.trimmed_through => Err(Break::HistoryTrimmed),
        // The server no longer knows that version's salt: a client that
        // has one cannot be shown to be on this history.
        None if held.salt != 0 => Err(diverged()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_sync::protocol::FileIdent;

    fn claim() -> Claim {
        Claim {
            partition: "p".into(),
            has_ident: true,
            held: Held { version: 7, salt: 77 },
            uploaded_through: 3,
            last_client_version: 5,
            request_reset: false,
        }
    }

    fn known() -> Known {
        let record =
            ClientRecord { ident: FileIdent { ident: 1, salt: 2 }, partition: "p".into(), uploaded_through: 3 };
        Known {
            schema_conflict: None,
            record: Some(record),
            pending_reset: None,
            away: None,
            latest: 10,
            trimmed_through: 4,
            salt_of_held: Some(77),
            recovery_allowed: true,
        }
    }

    /// The reason and acknowledgement of a reset verdict.
    fn reset_of(verdict: Verdict) -> (ResetReason, Option<u64>) {
        match verdict {
            Verdict::Reset(Reset { reason, acknowledged, .. }) => (reason, acknowledged),
            other => panic!("expected a reset, got {other:?}"),
        }
    }

    #[test]
    fn a_client_on_the_servers_history_goes_on() {
        assert_eq!(admit(&claim(), &known()), Verdict::Admit);
        let new_file = Claim { has_ident: false, held: Held { version: 0, salt: 0 }, ..claim() };
        assert_eq!(admit(&new_file, &Known { record: None, ..known() }), Verdict::Admit);
        let behind_but_kept = Claim { held: Held { version: 4, salt: 44 }, ..claim() };
        assert_eq!(admit(&behind_but_kept, &Known { salt_of_held: Some(44), ..known() }), Verdict::Admit);
    }

    #[test]
    fn a_new_file_cannot_ask_for_a_reset() {
        let asking = Claim { has_ident: false, held: Held { version: 0, salt: 0 }, request_reset: true, ..claim() };
        let verdict = admit(&asking, &Known { record: None, ..known() });
        assert!(matches!(verdict, Verdict::Refuse { code: ErrorCode::UnexpectedMessage, .. }), "{verdict:?}");
    }

    #[test]
    fn a_conflicting_schema_is_refused_unless_a_reset_is_pending() {
        let conflict = Known { schema_conflict: Some("Dog.age changed".into()), ..known() };
        match admit(&claim(), &conflict) {
            Verdict::Refuse { code: ErrorCode::BadSchema, message, action: Action::Fatal } => {
                assert_eq!(message, "Dog.age changed")
            }
            other => panic!("{other:?}"),
        }
        let pending = Known { pending_reset: Some(ResetReason::SchemaBreaking), ..conflict };
        assert_eq!(reset_of(admit(&claim(), &pending)), (ResetReason::SchemaBreaking, Some(3)));
        let new_file = Claim { has_ident: false, ..claim() };
        assert!(matches!(admit(&new_file, &pending), Verdict::Refuse { code: ErrorCode::BadSchema, .. }));
    }

    #[test]
    fn an_unknown_ident_starts_again_without_an_acknowledgement() {
        assert_eq!(reset_of(admit(&claim(), &Known { record: None, ..known() })), (ResetReason::UnknownClient, None));
    }

    #[test]
    fn a_file_of_another_partition_is_refused() {
        let other = Claim { partition: "q".into(), ..claim() };
        assert!(matches!(
            admit(&other, &known()),
            Verdict::Refuse { code: ErrorCode::UnexpectedMessage, action: Action::Fatal, .. }
        ));
    }

    #[test]
    fn a_server_that_acknowledged_more_than_it_knows_was_restored() {
        let ahead = Claim { uploaded_through: 4, ..claim() };
        assert_eq!(reset_of(admit(&ahead, &known())), (ResetReason::ServerRestored, Some(3)));
    }

    #[test]
    fn a_file_older_than_what_the_server_has_from_it_was_restored() {
        let copy = Claim { last_client_version: 2, uploaded_through: 2, ..claim() };
        assert_eq!(reset_of(admit(&copy, &known())), (ResetReason::ClientRestored, Some(3)));
    }

    #[test]
    fn an_operators_reset_comes_with_its_reason() {
        for reason in [ResetReason::OperatorReset, ResetReason::Terminated, ResetReason::SchemaBreaking] {
            let marked = Known { pending_reset: Some(reason), ..known() };
            assert_eq!(reset_of(admit(&claim(), &marked)), (reason, Some(3)));
        }
    }

    #[test]
    fn a_client_out_of_touch_too_long_starts_again() {
        let day = Duration::from_secs(86_400);
        let away = Known { away: Some((2 * day, day)), ..known() };
        assert_eq!(reset_of(admit(&claim(), &away)), (ResetReason::HistoryTrimmed, Some(3)));
        assert_eq!(admit(&claim(), &Known { away: Some((day / 2, day)), ..known() }), Verdict::Admit);
    }

    #[test]
    fn a_version_the_server_lacks_or_numbered_again_is_a_restore() {
        let ahead = Claim { held: Held { version: 11, salt: 77 }, ..claim() };
        assert_eq!(reset_of(admit(&ahead, &known())), (ResetReason::ServerRestored, Some(3)));
        let other_salt = Claim { held: Held { version: 7, salt: 78 }, ..claim() };
        match admit(&other_salt, &known()) {
            Verdict::Reset(r) => assert!(r.reason == ResetReason::ServerRestored && r.message.contains("restored")),
            other => panic!("{other:?}"),
        }
        // Even below the trimmed point: the salt says more than the trim.
        let below = Claim { held: Held { version: 2, salt: 5 }, ..claim() };
        assert_eq!(reset_of(admit(&below, &Known { salt_of_held: Some(6), ..known() })).0, ResetReason::ServerRestored);
    }

    #[test]
    fn trimmed_history_is_a_trim_when_the_salt_cannot_tell() {
        let below = Claim { held: Held { version: 2, salt: 5 }, ..claim() };
        for salt in [None, Some(5)] {
            let verdict = admit(&below, &Known { salt_of_held: salt, ..known() });
            assert_eq!(reset_of(verdict), (ResetReason::HistoryTrimmed, Some(3)));
        }
    }

    #[test]
    fn versions_from_before_salts_continue_only_on_a_server_from_before_salts() {
        let legacy = Claim { held: Held { version: 7, salt: 0 }, ..claim() };
        assert_eq!(admit(&legacy, &Known { salt_of_held: Some(0), ..known() }), Verdict::Admit);
        let at_trim = Claim { held: Held { version: 4, salt: 0 }, ..claim() };
        assert_eq!(admit(&at_trim, &Known { salt_of_held: None, ..known() }), Verdict::Admit);
        assert_eq!(reset_of(admit(&legacy, &known())).0, ResetReason::ServerRestored, "a restore numbered it again");
        let salted = Claim { held: Held { version: 4, salt: 9 }, ..claim() };
        assert_eq!(reset_of(admit(&salted, &Known { salt_of_held: None, ..known() })).0, ResetReason::ServerRestored);
    }

    #[test]
    fn a_client_that_asks_is_reset_once_its_schema_is_accepted() {
        let asking = Claim { request_reset: true, ..claim() };
        assert_eq!(reset_of(admit(&asking, &known())), (ResetReason::SchemaBreaking, Some(3)));
        let restored = Known { latest: 5, ..known() };
        assert_eq!(reset_of(admit(&asking, &restored)).0, ResetReason::ServerRestored, "a restore says more");
    }

    #[test]
    fn a_partition_that_forbids_recovery_makes_every_reset_one_without() {
        let forbidden = Known { pending_reset: Some(ResetReason::OperatorReset), recovery_allowed: false, ..known() };
        match admit(&claim(), &forbidden) {
            Verdict::Reset(reset) => assert_eq!(
                reset.action(),
                Action::ClientResetNoRecovery { reason: ResetReason::OperatorReset, acknowledged: Some(3) }
            ),
            other => panic!("{other:?}"),
        }
    }
}
