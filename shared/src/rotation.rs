//! The client secret after a rotation. A Lambda instance reads the secret once, at cold start
//! (`CLIENT_SECRET_ARN`); an operator who rotates it (a new secret on the auth server and in
//! Secrets Manager) would otherwise break every warm instance until it is recycled. So when the
//! upstream answers `invalid_client`, the secret is read again, once, and when Secrets Manager
//! holds another one the refused call is made again with it, and every later call uses it.
//!
//! - Only the secret that came from Secrets Manager rotates: a client with its own
//!   `client_secret` in the config keeps it.
//! - At most one read per [`MIN_REREAD_INTERVAL`] per instance: a secret that is simply wrong
//!   costs one Secrets Manager call per interval, not one per request.
//! - A failed read (Secrets Manager unreachable, a malformed secret) leaves the secret as it is;
//!   the caller answers the upstream's refusal as before. Nothing here logs a secret.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    config::SmsClient,
    secret::{ClientSecret, SecretText},
};

/// The least time between two reads of the secret by one instance.
pub const MIN_REREAD_INTERVAL: Duration = Duration::from_secs(10);
/// The longest a read of the secret may take (it runs inside a request).
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the client secret is kept: the Secrets Manager secret named by `CLIENT_SECRET_ARN`.
#[derive(Clone, Debug)]
pub struct SecretsManagerSecret {
    pub client: aws_sdk_secretsmanager::Client,
    pub arn: String,
}

impl SecretsManagerSecret {
    /// The secret's current value: the plain secret, or a JSON object with a string
    /// `client_secret`. The error says what is wrong, never the value.
    pub async fn read(&self) -> Result<ClientSecret, String> {
        let text = self.read_text().await?;
        let text = text.expose();
        let secret = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(fields)) => fields
                .get("client_secret")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or("the secret is a JSON object without a string \"client_secret\"")?,
            _ => text.trim().to_owned(),
        };
        if secret.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(ClientSecret::new(secret))
    }
}

impl SecretsManagerSecret {
    /// The secret's text as stored. The error says what is wrong, never the value.
    pub async fn read_text(&self) -> Result<SecretText, String> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.arn)
            .send()
            .await
            .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())?;
        Ok(SecretText::new(output.secret_string().ok_or("the secret has no SecretString")?))
    }
}

/// The client secrets in use: the config's, and the Secrets Manager one as last read.
#[derive(Debug, Default)]
pub struct ClientSecrets {
    source: Option<Source>,
}

#[derive(Debug)]
struct Source {
    secret: SecretsManagerSecret,
    /// The value read at cold start: the clients whose config secret is this one use the source.
    initial: ClientSecret,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    current: ClientSecret,
    last_read: Option<Instant>,
}

impl ClientSecrets {
    /// The config's secrets only, never re-read (`local-api`, a secret in `CLIENT_SECRET`).
    pub fn fixed() -> Self {
        Self { source: None }
    }

    /// `initial`, read from `secret` at cold start, re-read from it after a refusal.
    pub fn rotating(secret: SecretsManagerSecret, initial: ClientSecret) -> Self {
        let state = Mutex::new(State { current: initial.clone(), last_read: None });
        Self { source: Some(Source { secret, initial, state }) }
    }

    /// The secret to send for `client` now.
    pub fn current_for(&self, client: &SmsClient) -> ClientSecret {
        match self.rotating_source(client) {
            Some(source) => source.lock().current.clone(),
            None => client.client_secret.clone(),
        }
    }

    /// The upstream refused `refused` as `client`'s secret (`invalid_client`): the secret to
    /// try once more, when there is another one, or `None` to give up.
    pub async fn after_refusal(&self, client: &SmsClient, refused: &ClientSecret) -> Option<ClientSecret> {
        let source = self.rotating_source(client)?;
        {
            let mut state = source.lock();
            if state.current.expose() != refused.expose() {
                // Another request has already read a newer secret.
                return Some(state.current.clone());
            }
            if state.last_read.is_some_and(|at| at.elapsed() < MIN_REREAD_INTERVAL) {
                return None;
            }
            state.last_read = Some(Instant::now());
        }
        let read = tokio::time::timeout(READ_TIMEOUT, source.secret.read())
            .await
            .unwrap_or_else(|_| Err("Secrets Manager did not answer in time".into()));
        match read {
            Ok(secret) if secret.expose() != refused.expose() => {
                tracing::info!(
                    event = "client_secret_rotated",
                    client_id = client.client_id,
                    arn = source.secret.arn
                );
                source.lock().current = secret.clone();
                Some(secret)
            }
            Ok(_) => {
                tracing::warn!(
                    event = "client_secret_refused",
                    client_id = client.client_id,
                    arn = source.secret.arn,
                    why = "the auth server refuses the client secret that Secrets Manager holds"
                );
                None
            }
            Err(cause) => {
                tracing::warn!(
                    event = "client_secret_reread_failed",
                    client_id = client.client_id,
                    arn = source.secret.arn,
                    cause
                );
                None
            }
        }
    }

    /// The source, when `client` uses the Secrets Manager secret.
    fn rotating_source(&self, client: &SmsClient) -> Option<&Source> {
        self.source.as_ref().filter(|source| source.initial.expose() == client.client_secret.expose())
    }
}

impl Source {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
