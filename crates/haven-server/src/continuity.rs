//! Whether the server's history continues the one a binding client
//! holds: the rule on its own, apart from storage and sockets.
//!
//! A client says which server version it last integrated, and the salt
//! the server drew for that version. Version numbers alone cannot tell a
//! server restored from a backup, whose versions have since been numbered
//! again by other clients' uploads, from the server the client knew: the
//! salts can.

/// The last server version a client integrated, as it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub version: u64,
    /// 0: none (a version from before salts, or no version at all).
    pub salt: u64,
}

/// What the server knows of its own history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kept {
    pub latest: u64,
    pub trimmed_through: u64,
    /// The salt of the client's version, if the server still has it
    /// (`Some(0)`: a version stored before salts).
    pub salt_of_held: Option<u64>,
}

/// Why the client cannot continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Break {
    /// The client holds history this server does not have: it was
    /// restored from a backup.
    ServerRestored(String),
    /// The history the client needs next was trimmed away.
    HistoryTrimmed { held: u64, trimmed_through: u64 },
}

/// `Ok` when the server's history continues what the client holds.
pub(crate) fn check(held: Held, kept: Kept) -> Result<(), Break> {
    if held.version == 0 {
        return Ok(()); // nothing held: the client starts from the snapshot
    }
    if held.version > kept.latest {
        let message = format!("the client has version {} but the server only {}", held.version, kept.latest);
        return Err(Break::ServerRestored(message));
    }
    let diverged = || {
        Break::ServerRestored(format!(
            "the server's version {} is not the one the client holds: the server was restored from a backup since the client saw it",
            held.version
        ))
    };
    match kept.salt_of_held {
        Some(salt) if salt != held.salt => Err(diverged()),
        _ if held.version < kept.trimmed_through => {
            Err(Break::HistoryTrimmed { held: held.version, trimmed_through: kept.trimmed_through })
        }
        // The server no longer knows that version's salt: a client that
        // has one cannot be shown to be on this history.
        None if held.salt != 0 => Err(diverged()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEPT: Kept = Kept { latest: 10, trimmed_through: 4, salt_of_held: Some(77) };

    fn held(version: u64, salt: u64) -> Held {
        Held { version, salt }
    }

    #[test]
    fn the_same_version_with_the_same_salt_continues() {
        assert_eq!(check(held(7, 77), KEPT), Ok(()));
        assert_eq!(check(held(0, 0), Kept { latest: 0, trimmed_through: 0, salt_of_held: None }), Ok(()));
    }

    #[test]
    fn a_version_the_server_lacks_or_numbered_again_is_a_restore() {
        assert!(matches!(check(held(11, 77), KEPT), Err(Break::ServerRestored(m)) if m.contains("only 10")));
        assert!(matches!(check(held(7, 78), KEPT), Err(Break::ServerRestored(m)) if m.contains("restored")));
        // Even below the trimmed point: the salt says more than the trim.
        assert!(matches!(check(held(2, 5), Kept { salt_of_held: Some(6), ..KEPT }), Err(Break::ServerRestored(_))));
    }

    #[test]
    fn trimmed_history_is_a_trim_when_the_salt_cannot_tell() {
        let trimmed = Err(Break::HistoryTrimmed { held: 2, trimmed_through: 4 });
        assert_eq!(check(held(2, 5), Kept { salt_of_held: None, ..KEPT }), trimmed);
        assert_eq!(check(held(2, 5), Kept { salt_of_held: Some(5), ..KEPT }), trimmed);
    }

    #[test]
    fn versions_from_before_salts_continue_only_on_a_server_from_before_salts() {
        assert_eq!(check(held(7, 0), Kept { salt_of_held: Some(0), ..KEPT }), Ok(()));
        assert_eq!(check(held(4, 0), Kept { salt_of_held: None, ..KEPT }), Ok(()));
        assert!(matches!(check(held(7, 0), KEPT), Err(Break::ServerRestored(_))), "a restore numbered it again");
        assert!(matches!(check(held(4, 9), Kept { salt_of_held: None, ..KEPT }), Err(Break::ServerRestored(_))));
    }
}
