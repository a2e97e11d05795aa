//! Bearer tokens: JWTs signed HS256 with `auth.jwt_secret`, or RS256/ES256 checked against
//! `auth.jwt_public_key_file`. Claims: `sub` (agent id), `exp`, optional `roles`.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use mailbox_actors::model::is_valid_agent_id;
use serde::{Deserialize, Serialize};

use crate::config::Auth as AuthConfig;
use crate::error::ApiError;
use crate::server::AppState;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub roles: Vec<String>,
}

/// Checks and mints tokens. Built once from config.
pub struct TokenAuthority {
    secret: Vec<u8>,
    public: Option<(DecodingKey, Algorithm)>,
    ttl_seconds: u64,
    /// Tokens that passed [`Self::verify`], with their agent and expiry: an agent sends many
    /// requests with one token, and checking it (base64, JSON, the signature) was ~9 % of the
    /// broker's CPU per send. Keyed by the whole token, so a token that differs in any byte is
    /// checked in full. The keys are fixed for the process, so a verified token stays valid
    /// until its `exp`, which is checked on every use.
    verified: Mutex<HashMap<Box<str>, (Agent, u64)>>,
}

/// Tokens remembered at most; when full, the cache is emptied and refills with those in use.
const VERIFIED_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[error("auth.jwt_public_key_file: {0}")]
pub struct KeyError(String);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenAuthority {
    pub fn new(cfg: &AuthConfig) -> Result<Self, KeyError> {
        let public = if cfg.jwt_public_key_file.is_empty() {
            None
        } else {
            let pem =
                std::fs::read(&cfg.jwt_public_key_file).map_err(|e| KeyError(e.to_string()))?;
            Some(if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                (k, Algorithm::RS256)
            } else {
                let k = DecodingKey::from_ec_pem(&pem)
                    .map_err(|e| KeyError(format!("neither an RSA nor an EC public key: {e}")))?;
                (k, Algorithm::ES256)
            })
        };
        Ok(Self {
            secret: cfg.jwt_secret.as_bytes().to_vec(),
            public,
            ttl_seconds: cfg.token_ttl_seconds,
            verified: Mutex::default(),
        })
    }

    /// Mints an HS256 token for `agent`; answers it and its expiry (unix seconds).
    pub fn mint(
        &self,
        agent: &str,
        roles: &[String],
        ttl_seconds: Option<u64>,
    ) -> Result<(String, u64), ApiError> {
        if !is_valid_agent_id(agent) {
            return Err(ApiError::validation(
                "agent_id",
                format!("`{agent}` is not a valid agent id"),
            ));
        }
        let iat = now();
        let exp = iat + ttl_seconds.unwrap_or(self.ttl_seconds);
        let claims = Claims {
            sub: agent.to_owned(),
            exp,
            iat: Some(iat),
            roles: roles.to_vec(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.secret),
        )
        .map_err(|e| {
            ApiError::Engine(mailbox_actors::Error::Internal(format!("jwt encode: {e}")))
        })?;
        Ok((token, exp))
    }

    /// Checks a token: signature, algorithm (never `none`), expiry, and a valid `sub`.
    pub fn verify(&self, token: &str) -> Result<Agent, ApiError> {
        self.verify_at(token, now())
    }

    /// [`Self::verify`] at `now` (unix seconds) for a token verified before; a new token is
    /// checked against the clock.
    fn verify_at(&self, token: &str, now: u64) -> Result<Agent, ApiError> {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((agent, exp)) = verified.get(token) {
            // As jsonwebtoken with no leeway: expired once `exp` is in the past.
            if *exp >= now {
                return Ok(agent.clone());
            }
            verified.remove(token);
            return Err(ApiError::Unauthenticated("token expired".into()));
        }
        drop(verified);
        let (agent, exp) = self.check(token)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(token.into(), (agent.clone(), exp));
        Ok(agent)
    }

    /// The full check of a token; answers its agent and expiry.
    fn check(&self, token: &str) -> Result<(Agent, u64), ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::Unauthenticated("malformed token".into()))?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => (DecodingKey::from_secret(&self.secret), Algorithm::HS256),
            a => match &self.public {
                Some((k, alg)) if *alg == a => (k.clone(), a),
                _ => {
                    return Err(ApiError::Unauthenticated(format!(
                        "token algorithm {a:?} is not accepted"
                    )))
                }
            },
        };
        let mut v = Validation::new(alg);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            ApiError::Unauthenticated(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".into(),
                ErrorKind::InvalidSignature => "token signature is invalid".into(),
                _ => format!("invalid token: {e}"),
            })
        })?;
        if !is_valid_agent_id(&data.claims.sub) {
            return Err(ApiError::Unauthenticated(
                "token subject is not a valid agent id".into(),
            ));
        }
        Ok((
            Agent {
                id: data.claims.sub,
                roles: data.claims.roles,
            },
            data.claims.exp,
        ))
    }
}

/// The bearer token of a request: `Authorization: Bearer …`, or `?token=` (WebSocket clients).
pub fn bearer(req: &HttpRequest) -> Option<String> {
    if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        return h
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
            .map(|t| t.trim().to_owned());
    }
    req.query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .map(str::to_owned)
}

/// Authenticates `req`, counting failures.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Agent, ApiError> {
    let result = match bearer(req) {
        None => Err(ApiError::Unauthenticated("missing bearer token".into())),
        Some(t) => state.tokens.verify(&t),
    };
    if let Err(e) = &result {
        metrics::counter!("mailbox_auth_failures_total").increment(1);
        tracing::info!(target: "audit", kind = "auth_failure", path = %req.path(), reason = %e, "authentication failed");
    }
    result
}

impl FromRequest for Agent {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::Engine(mailbox_actors::Error::Internal(
                "app state missing".into(),
            ))));
        };
        let r = authenticate(req, state);
        if let Ok(a) = &r {
            tracing::Span::current().record("agent", a.id.as_str());
        }
        ready(r)
    }
}

/// Shared so the HTTP state and the CLI build it the same way.
pub type SharedAuthority = Arc<TokenAuthority>;

/// HMAC-SHA256 (RFC 2104) over `sha2`: the hash API keys are stored as.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The stored form of an agent's API key: hex HMAC-SHA256 under the server key of
/// `<agent>\n<key>`, so a hash copied onto another agent's record does not match there.
pub fn api_key_hash(server_key: &[u8], agent: &str, api_key: &str) -> String {
    let mac = hmac_sha256(server_key, format!("{agent}\n{api_key}").as_bytes());
    mac.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new API key: `mbx_` and 32 random bytes, base64url.
pub fn new_api_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    format!(
        "mbx_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Compares two hashes in time independent of where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        let hex = |b: [u8; 32]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(
            hex(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (RFC 4231 case 6).
        assert_eq!(
            hex(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn authority() -> TokenAuthority {
        TokenAuthority::new(&AuthConfig {
            jwt_secret: "test-secret-0123456789".into(),
            jwt_public_key_file: String::new(),
            token_ttl_seconds: 3600,
            api_key_secret: String::new(),
        })
        .expect("authority")
    }

    #[test]
    fn a_verified_token_is_refused_once_it_expires() {
        let a = authority();
        let (token, exp) = a.mint("carol", &["admin".into()], Some(60)).expect("mint");
        let agent = a.verify(&token).expect("valid");
        assert_eq!(
            (agent.id.as_str(), agent.roles.as_slice()),
            ("carol", &["admin".to_owned()][..])
        );
        // Remembered: the same answer up to and including its expiry second, none after.
        assert_eq!(a.verify_at(&token, exp).expect("still valid").id, "carol");
        let err = a.verify_at(&token, exp + 1).expect_err("expired");
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn a_token_altered_after_a_verified_one_is_checked_in_full() {
        let a = authority();
        let (token, _) = a.mint("carol", &[], None).expect("mint");
        a.verify(&token).expect("valid");
        // Same header and claims, another signature; and another agent's claims under the
        // first token's signature.
        let (head, sig) = token.rsplit_once('.').expect("three parts");
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let forged = format!("{head}.{flipped}{}", &sig[1..]);
        assert!(a.verify(&forged).is_err());
        let (other, _) = a.mint("mallory", &[], None).expect("mint");
        let (other_head, _) = other.rsplit_once('.').expect("three parts");
        assert!(a.verify(&format!("{other_head}.{sig}")).is_err());
        assert_eq!(a.verify(&token).expect("still valid").id, "carol");
    }

    #[test]
    fn api_key_hashes_bind_the_agent() {
        let k = new_api_key();
        assert!(k.starts_with("mbx_") && k.len() > 40);
        let h = api_key_hash(b"server-key", "carol", &k);
        assert!(same_hash(&h, &api_key_hash(b"server-key", "carol", &k)));
        assert!(!same_hash(&h, &api_key_hash(b"server-key", "dave", &k)));
        assert!(!same_hash(&h, &api_key_hash(b"other-key", "carol", &k)));
        assert!(!h.contains(&k[4..]));
    }
}
