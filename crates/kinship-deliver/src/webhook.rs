//! Webhooks as the Standard Webhooks specification has them: `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `id.timestamp.body` under each secret, space-separated, so a secret rotates without
//! downtime), `Retry-After` honoured and 410 meaning "stop".

use crate::{Answer, Attempt, Outgoing, Sink};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use kinship_core::act::WebhookConfig;
use std::time::Duration;

/// The answer's first bytes kept with an attempt (for the dead letters).
const RESPONSE_KEPT: usize = 2048;

pub struct WebhookSink {
    url: String,
    secrets: Vec<Vec<u8>>,
    client: reqwest::Client,
}

impl WebhookSink {
    pub fn new(config: &WebhookConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let secrets = config
            .secrets_env
            .iter()
            .map(|var| {
                let text = env(var).ok_or_else(|| format!("the environment variable {var} (a signing secret) is not set"))?;
                decode_secret(&text).map_err(|e| format!("{var}: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        // One process-wide TLS provider; installing it again is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .connect_timeout(Duration::from_secs(config.timeout_secs.min(5)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.concurrency)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { url: config.url.clone(), secrets, client })
    }
}

/// A secret as Standard Webhooks writes it: `whsec_` and base64 (the prefix optional).
fn decode_secret(text: &str) -> Result<Vec<u8>, String> {
    let encoded = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "not a Standard Webhooks secret: write whsec_ followed by base64".to_string())?;
    if key.len() < 16 {
        return Err("the secret is shorter than 16 bytes".into());
    }
    Ok(key)
}

/// The `webhook-signature` header: `v1,<base64>` for each secret, space-separated.
pub fn sign(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|key| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body.as_bytes());
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Sink for WebhookSink {
    fn send<'a>(&'a self, outgoing: Outgoing<'a>) -> Attempt<'a> {
        Box::pin(async move {
            let request = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("webhook-id", outgoing.id)
                .header("webhook-timestamp", outgoing.timestamp.to_string())
                .header("webhook-signature", sign(&self.secrets, outgoing.id, outgoing.timestamp, outgoing.body))
                .body(outgoing.body.to_string());
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => return Answer::Retry { status: None, after: None, response: format!("no answer: {e}") },
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if (200..300).contains(&status) {
                return Answer::Delivered { status };
            }
            let mut text = response.text().await.unwrap_or_default();
            if text.len() > RESPONSE_KEPT {
                let cut = (0..=RESPONSE_KEPT).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                text.truncate(cut);
            }
            if status == 410 {
                Answer::Gone { response: text }
            } else {
                Answer::Retry { status: Some(status), after: retry_after, response: text }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the Standard Webhooks reference libraries' tests.
    #[test]
    fn signs_as_the_specification_example() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, r#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn two_secrets_sign_twice_and_bad_secrets_are_named() {
        let a = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = decode_secret("c2Vjb25kIHNlY3JldCBvZiBzaXh0ZWVu").unwrap();
        let both = sign(&[a.clone(), b], "msg_1", 1, "{}");
        let parts: Vec<&str> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&[a], "msg_1", 1, "{}"));
        assert!(decode_secret("whsec_!!!").unwrap_err().contains("whsec_"));
        assert!(decode_secret("whsec_c2hvcnQ=").unwrap_err().contains("shorter"));
    }
}
