//! Client reset recovery: the report of an automatic reset, and the
//! strategies a manual reset uses to bring a backup's changes into the
//! fresh database (`docs/client-reset.md`).

pub use haven_core::recovery::{
    ChangeKind, DropReason, DroppedChange, RecoveredChange, RecoveryPolicy, RecoveryReport,
};
