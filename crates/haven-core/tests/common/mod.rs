//! What the merge-rule tests share.

use haven_core::merge::{apply, Changeset, Hlc, HlcClock, Instruction, ObjectState, Writer};
use haven_core::recovery::{DropReason, Recovery, RecoveryPolicy};
use haven_core::Schema;

/// Recovers `local` onto `server`, as a client reset does, and integrates
/// what the recovery uploads: the object afterwards, and why the recovery
/// dropped what it dropped. `local` was made offline at clock 10 by a
/// device that had seen server version 1; `server` is the server's state
/// at version 2.
pub fn recover_onto(
    schema: &Schema,
    server: Option<ObjectState>,
    local: Vec<Instruction>,
) -> (Option<ObjectState>, Vec<DropReason>) {
    let offline = Changeset {
        replica: 0,
        client_version: 1,
        base_version: 1,
        hlc: Hlc { millis: 10, counter: 0 },
        instructions: local,
    };
    let recovery = Recovery {
        schema,
        policy: RecoveryPolicy::LatestWins,
        server_version: 2,
        history_continues: true,
        replica: 9,
        clock: HlcClock::default(),
        now_millis: 100,
    };
    let recovered = recovery.run(std::slice::from_ref(&offline), |_, _| server.clone());
    let mut state = server;
    for (n, cs) in recovered.changesets.iter().enumerate() {
        let w = Writer { version: 3 + n as u64, base_version: cs.base_version, hlc: cs.hlc, replica: 9 };
        for i in &cs.instructions {
            state = apply(state.as_ref(), i, &w).state;
        }
    }
    (state, recovered.report.dropped().iter().map(|d| d.reason).collect())
}
