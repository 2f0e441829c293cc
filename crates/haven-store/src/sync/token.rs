//! The token a session binds with: the app's fixed one, or the one its
//! provider last gave, fetched again before it expires and whenever the
//! server refuses it.

use super::config::SyncConfig;
use super::SyncError;
use base64::Engine;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A token expiring sooner than this is replaced before connecting: a
/// session bound with it would be closed almost at once.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The session's token.
pub(crate) struct SessionToken {
    current: Mutex<Current>,
}

struct Current {
    value: String,
    /// Refused by the server: fetch another before the next bind.
    stale: bool,
    /// Fetched from the provider for the latest bind: if the server
    /// refuses it, fetching again at once would only repeat that.
    just_fetched: bool,
}

/// What to do after the server refused the token.
pub(crate) enum Refused {
    /// A fresh token may be accepted: reconnect now with one.
    Refresh,
    /// The provider's newest token was refused too: report it, and try
    /// again after the backoff.
    Retry,
    /// A fixed token: retrying cannot help.
    Stop,
}

impl SessionToken {
    pub fn new(config: &SyncConfig) -> SessionToken {
        SessionToken { current: Mutex::new(Current { value: config.token.clone(), stale: false, just_fetched: false }) }
    }

    /// The token to bind with, from the provider when there is none yet,
    /// it was refused, or it expires within [`REFRESH_MARGIN`].
    pub async fn for_binding(&self, config: &SyncConfig) -> Result<String, SyncError> {
        let Some(provider) = &config.token_provider else { return Ok(config.token.clone()) };
        {
            let mut current = self.current.lock().expect("token");
            let expiring = expires_at(&current.value).is_some_and(|exp| exp < now() + REFRESH_MARGIN);
            if !(current.value.is_empty() || current.stale || expiring) {
                current.just_fetched = false;
                return Ok(current.value.clone());
            }
        }
        tracing::debug!(partition = %config.partition, "asking the token provider for a token");
        let value = provider().await.map_err(SyncError::Token)?;
        *self.current.lock().expect("token") = Current { value: value.clone(), stale: false, just_fetched: true };
        Ok(value)
    }

    /// The server accepted the token: if it is refused later (it expired
    /// during the session, its user was signed out), a fresh one may help.
    pub fn accepted(&self) {
        self.current.lock().expect("token").just_fetched = false;
    }

    /// The server refused the token (expired, revoked, or not valid).
    pub fn refused(&self, config: &SyncConfig) -> Refused {
        if config.token_provider.is_none() {
            return Refused::Stop;
        }
        let mut current = self.current.lock().expect("token");
        current.stale = true;
        match current.just_fetched {
            true => Refused::Retry,
            false => Refused::Refresh,
        }
    }
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// When a JWT says it expires (`exp`), read without checking its
/// signature: the client only decides when to ask for a new one, the
/// server decides whether it is valid.
fn expires_at(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("exp")?.as_u64().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let encode = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.sig", encode(br#"{"alg":"HS256"}"#), encode(claims.to_string().as_bytes()))
    }

    #[test]
    fn the_expiry_is_read_from_a_jwt_and_absent_from_anything_else() {
        assert_eq!(expires_at(&jwt(serde_json::json!({"exp": 1700000000u64}))), Some(Duration::from_secs(1700000000)));
        assert_eq!(expires_at(&jwt(serde_json::json!({"sub": "ann"}))), None);
        assert_eq!(expires_at("dev-token"), None);
        assert_eq!(expires_at("a.!!!.c"), None);
    }

    #[tokio::test]
    async fn a_token_expiring_within_a_minute_is_fetched_again_and_a_lasting_one_is_kept() {
        let expiring = jwt(serde_json::json!({"exp": (now() + Duration::from_secs(30)).as_secs()}));
        let lasting = jwt(serde_json::json!({"exp": (now() + Duration::from_secs(3600)).as_secs()}));
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = calls.clone();
        let fresh = lasting.clone();
        let config = SyncConfig::new("ws://127.0.0.1:1", expiring, "p").token_provider(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let fresh = fresh.clone();
            async move { Ok::<_, String>(fresh) }
        });
        let token = SessionToken::new(&config);
        assert_eq!(token.for_binding(&config).await.unwrap(), lasting);
        assert_eq!(token.for_binding(&config).await.unwrap(), lasting);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "the lasting token is kept");
        assert!(matches!(token.refused(&config), Refused::Refresh), "kept a while, so a fresh one may help");
        assert_eq!(token.for_binding(&config).await.unwrap(), lasting);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "a refused token is fetched again");
        assert!(matches!(token.refused(&config), Refused::Retry), "refused as fetched: back off");
        token.for_binding(&config).await.unwrap();
        token.accepted();
        assert!(matches!(token.refused(&config), Refused::Refresh), "accepted, then expired: fetch again at once");
    }

    #[tokio::test]
    async fn a_providers_error_is_a_token_error_and_a_fixed_token_is_used_as_given() {
        let config =
            SyncConfig::new("ws://127.0.0.1:1", "", "p").token_provider(|| async { Err::<String, _>("signed out") });
        let error = SessionToken::new(&config).for_binding(&config).await.unwrap_err();
        assert_eq!(error, SyncError::Token("signed out".into()));
        let fixed = SyncConfig::new("ws://127.0.0.1:1", "abc", "p");
        let token = SessionToken::new(&fixed);
        assert_eq!(token.for_binding(&fixed).await.unwrap(), "abc");
        assert!(matches!(token.refused(&fixed), Refused::Stop));
    }
}
