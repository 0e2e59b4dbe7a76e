//! Signed checkpoints of the audit chain head: what makes deleting the
//! newest events detectable.
//!
//! The hash chain ([`super::chain`]) proves that the events a store holds
//! were not edited, removed or reordered *among themselves*; it cannot prove
//! that none were removed *at the end*. Whoever can write the store can
//! delete the last events and rewind the recorded head, and the shorter
//! chain verifies. A [`Checkpoint`] closes that gap: the chain head
//! (`seq` and the `hash` of the event at `seq`) at a moment, signed with an
//! Ed25519 key the store does not hold, and kept out of the store (a
//! folder on another host, a webhook). Since every event's hash covers its
//! predecessor's, the head hash commits to every event from seq 1 to
//! `seq`. A store still holds, unchanged, everything a checkpoint covers
//! exactly when its chain verifies from 1 to at least `seq` and the event at
//! `seq` hashes to the checkpoint's `hash` ([`Checkpoint::covered_by`]).
//!
//! What it does not do: it proves nothing about events after the newest
//! checkpoint (those a store can still lose unnoticed: checkpoint often),
//! and it trusts no key it is handed. Verifying needs a trusted public key
//! (the operator's configured key, private or public): the public key a
//! checkpoint carries only has to match it, so a checkpoint re-signed with
//! another key is refused ([`CheckpointError::UntrustedKey`]).
//!
//! Signed form: the bytes [`SIGNING_CONTEXT`] followed by the canonical
//! JSON ([`canonical_json`]) of every member except `signature`. The context
//! prefix keeps a checkpoint signature from being valid as anything else.
//!
//! Crypto: Ed25519 from `aws-lc-rs`, already in the tree as the TLS and JWT
//! provider (the workspace has one crypto library and no `ring`), whose
//! `Ed25519KeyPair::from_pkcs8` reads the PKCS#8 v1 document `openssl genpkey
//! -algorithm ed25519` writes. PEM framing is the `pem` crate's (already in
//! the tree through `jsonwebtoken`). Key material never appears in an error
//! or a `Debug` output.

use std::fmt;

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::chain::{ChainBreak, ChainVerifier, GENESIS_HASH, VerifyReport, canonical_json};
use super::store::{AuditFilter, AuditStore, ListOrder, MAX_LIST_LIMIT, StoreError, format_time};
use super::{AuditEvent, sha256_hex};

/// The checkpoint format this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Prefix of the signed bytes (domain separation).
pub const SIGNING_CONTEXT: &[u8] = b"tollgate audit checkpoint v1\n";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key
/// bytes follow it. `openssl pkey -pubout` writes exactly this.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Why a checkpoint or a checkpoint key cannot be used. Never carries key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The key is not an Ed25519 key in PEM (PKCS#8 private key or SPKI
    /// public key).
    #[error(
        "checkpoint key: {0} (expected an Ed25519 key in PEM, as `openssl genpkey -algorithm ed25519` writes it, or its public key from `openssl pkey -pubout`)"
    )]
    Key(String),
    /// The text is not a checkpoint this build can read.
    #[error("not a valid tollgate audit checkpoint: {0}")]
    Malformed(String),
    /// The checkpoint was signed with another key than the trusted one.
    #[error(
        "the checkpoint is signed by key {signed_by}, not by the configured key {trusted}: it proves nothing here"
    )]
    UntrustedKey {
        /// Key id the checkpoint names.
        signed_by: String,
        /// Key id of the trusted key.
        trusted: String,
    },
    /// The signature does not match the content.
    #[error(
        "the checkpoint's signature does not match its content (key {key_id}): the file was edited after it was signed"
    )]
    BadSignature {
        /// Key id of the trusted key.
        key_id: String,
    },
    /// Signing failed (the crypto library refused).
    #[error("signing the checkpoint failed")]
    Sign,
}

/// Why a store does not hold, unchanged, everything a checkpoint covers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Uncovered {
    /// The chain ends before the checkpoint's seq: the tail was cut and the
    /// head rewound (or the store is another, shorter one).
    #[error(
        "the store's head is seq {head}, the checkpoint covers up to seq {covers}: events after seq {head} were deleted and the head rewound"
    )]
    Truncated {
        /// Last seq of the store's intact chain (0: no event).
        head: u64,
        /// Seq the checkpoint covers up to.
        covers: u64,
    },
    /// The event at the checkpoint's seq is another one than was signed:
    /// the chain up to it was rewritten (or this is another store).
    #[error(
        "the event at seq {seq} hashes to {found}, the checkpoint recorded {expected}: the chain up to seq {seq} was rewritten"
    )]
    Differs {
        /// The checkpoint's seq.
        seq: u64,
        /// Hash of the event the store holds at that seq.
        found: String,
        /// Hash the checkpoint recorded.
        expected: String,
    },
    /// The chain is broken at or before the checkpoint's seq.
    #[error("the chain is broken within what the checkpoint covers (up to seq {covers}): {brk}")]
    Broken {
        /// Seq the checkpoint covers up to.
        covers: u64,
        /// The first break.
        brk: ChainBreak,
    },
}

/// Why a writer cannot sign a new head on top of the previous one
/// ([`extend`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtendError {
    /// The store no longer holds the previous head.
    #[error("the store no longer holds the last checkpointed head: {0}")]
    Uncovered(Uncovered),
    /// An event after the previous head does not chain onto it.
    #[error("the chain is broken after the last checkpointed head (seq {from}): {brk}")]
    Broken {
        /// Seq of the previous head.
        from: u64,
        /// The first break.
        brk: ChainBreak,
    },
}

/// A chain head: the newest event's seq and hash (`0` and [`GENESIS_HASH`]
/// for an empty chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Seq of the newest event.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }

    /// The head an intact [`VerifyReport`] reached, or `None` if it found a
    /// break.
    pub fn of_report(report: &VerifyReport) -> Option<Self> {
        if !report.is_intact() {
            return None;
        }
        Some(match (report.last_seq, &report.last_hash) {
            (Some(seq), Some(hash)) => ChainHead {
                seq,
                hash: hash.clone(),
            },
            _ => ChainHead::genesis(),
        })
    }
}

// === impl PublicKey ===

/// A trusted Ed25519 public key (32 raw bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    fn from_slice(raw: &[u8]) -> Option<Self> {
        raw.try_into().ok().map(PublicKey)
    }

    /// Short, stable name of the key: the first 16 hex digits of the
    /// SHA-256 of its 32 bytes.
    pub fn id(&self) -> String {
        sha256_hex(&self.0)[..16].to_string()
    }

    /// The key as a checkpoint carries it (standard base64 of the 32 bytes).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

// === impl SigningKey ===

/// The private key checkpoints are signed with. `Debug` shows its key id only.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public.id())
    }
}

impl SigningKey {
    /// Its public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Sign `head` as of `time`.
    pub fn sign(
        &self,
        head: &ChainHead,
        time: DateTime<Utc>,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut cp = Checkpoint {
            version: CHECKPOINT_VERSION,
            seq: head.seq,
            hash: head.hash.clone(),
            time: format_time(time),
            key_id: self.public.id(),
            public_key: self.public.to_base64(),
            signature: String::new(),
        };
        let sig = self
            .pair
            .try_sign(&cp.signed_bytes())
            .map_err(|_| CheckpointError::Sign)?;
        cp.signature = STANDARD.encode(sig.as_ref());
        Ok(cp)
    }
}

// === impl CheckpointKey ===

/// The configured checkpoint key: a private key (signs and verifies) or only
/// its public key (verifies; what an auditor's copy of the config needs).
#[derive(Debug)]
pub enum CheckpointKey {
    /// A private key.
    Signing(SigningKey),
    /// A public key only.
    Public(PublicKey),
}

impl CheckpointKey {
    /// Read a PEM: `PRIVATE KEY` (PKCS#8, Ed25519, v1 as openssl writes it
    /// or v2) or `PUBLIC KEY` (Ed25519 SubjectPublicKeyInfo).
    pub fn from_pem(text: &str) -> Result<Self, CheckpointError> {
        let block =
            pem::parse(text.trim()).map_err(|_| CheckpointError::Key("not a PEM block".into()))?;
        match block.tag() {
            "PRIVATE KEY" => {
                let pair = Ed25519KeyPair::from_pkcs8(block.contents()).map_err(|_| {
                    CheckpointError::Key("the PRIVATE KEY is not an Ed25519 PKCS#8 key".into())
                })?;
                let public = PublicKey::from_slice(pair.public_key().as_ref())
                    .ok_or_else(|| CheckpointError::Key("unexpected public key length".into()))?;
                Ok(CheckpointKey::Signing(SigningKey { pair, public }))
            }
            "PUBLIC KEY" => {
                let der = block.contents();
                // Parsed by the library first: a well-formed Ed25519 SPKI
                // has exactly the RFC 8410 prefix before the key bytes.
                let ok = ParsedPublicKey::new(&signature::ED25519, der).is_ok()
                    && der.len() == SPKI_PREFIX.len() + 32
                    && der.starts_with(&SPKI_PREFIX);
                let public = ok
                    .then(|| PublicKey::from_slice(&der[SPKI_PREFIX.len()..]))
                    .flatten()
                    .ok_or_else(|| {
                        CheckpointError::Key("the PUBLIC KEY is not an Ed25519 key".into())
                    })?;
                Ok(CheckpointKey::Public(public))
            }
            other => Err(CheckpointError::Key(format!(
                "a PEM `{other}` block is not a key this accepts"
            ))),
        }
    }

    /// The public key (what checkpoints are verified against).
    pub fn public(&self) -> &PublicKey {
        match self {
            CheckpointKey::Signing(k) => k.public(),
            CheckpointKey::Public(p) => p,
        }
    }

    /// The private key, when this is one.
    pub fn signing(&self) -> Option<&SigningKey> {
        match self {
            CheckpointKey::Signing(k) => Some(k),
            CheckpointKey::Public(_) => None,
        }
    }
}

// === impl Checkpoint ===

/// A signed chain head, as written to a checkpoint file or webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version ([`CHECKPOINT_VERSION`]).
    pub version: u32,
    /// Seq of the newest event covered (0: none).
    pub seq: u64,
    /// Hash of the event at `seq` ([`GENESIS_HASH`] when `seq` is 0).
    pub hash: String,
    /// When it was signed (RFC 3339 UTC).
    pub time: String,
    /// [`PublicKey::id`] of the signing key.
    pub key_id: String,
    /// The signing key's public key, base64 of its 32 bytes.
    pub public_key: String,
    /// Ed25519 signature (base64) over [`Checkpoint::signed_bytes`].
    pub signature: String,
}

impl Checkpoint {
    /// What the signature covers: [`SIGNING_CONTEXT`] + the canonical JSON of
    /// every member but `signature`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let body = json!({
            "version": self.version,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "key_id": self.key_id,
            "public_key": self.public_key,
        });
        let mut out = SIGNING_CONTEXT.to_vec();
        out.extend_from_slice(canonical_json(&body).as_bytes());
        out
    }

    /// Read a checkpoint file's text and check its shape (not its
    /// signature: see [`Checkpoint::verify_signature`]).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let cp: Checkpoint =
            serde_json::from_str(text).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        if cp.version != CHECKPOINT_VERSION {
            return Err(CheckpointError::Malformed(format!(
                "version {} (this tollgate reads version {CHECKPOINT_VERSION})",
                cp.version
            )));
        }
        let is_hash = cp.hash.len() == 64
            && cp
                .hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hash {
            return Err(CheckpointError::Malformed(
                "`hash` is not a lowercase hex SHA-256".into(),
            ));
        }
        if (cp.seq == 0) != (cp.hash == GENESIS_HASH) {
            return Err(CheckpointError::Malformed(
                "`hash` is the empty chain's exactly when `seq` is 0".into(),
            ));
        }
        Ok(cp)
    }

    /// The head it covers.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// Check it was signed by `trusted` and not changed since.
    pub fn verify_signature(&self, trusted: &PublicKey) -> Result<(), CheckpointError> {
        let named = STANDARD
            .decode(&self.public_key)
            .ok()
            .and_then(|raw| PublicKey::from_slice(&raw));
        if named.as_ref() != Some(trusted) || self.key_id != trusted.id() {
            return Err(CheckpointError::UntrustedKey {
                signed_by: self.key_id.clone(),
                trusted: trusted.id(),
            });
        }
        let bad = || CheckpointError::BadSignature {
            key_id: trusted.id(),
        };
        let sig = STANDARD.decode(&self.signature).map_err(|_| bad())?;
        signature::UnparsedPublicKey::new(&signature::ED25519, &trusted.0)
            .verify(&self.signed_bytes(), &sig)
            .map_err(|_| bad())
    }

    /// Whether a store still holds, unchanged, everything this covers,
    /// given the store's chain check (`report`, from seq 1) and the event
    /// the store holds at [`Checkpoint::seq`] (if any).
    pub fn covered_by(
        &self,
        report: &VerifyReport,
        event_at_seq: Option<&AuditEvent>,
    ) -> Result<(), Uncovered> {
        if self.seq == 0 {
            return Ok(());
        }
        if let Some(brk) = &report.first_break
            && brk.seq <= self.seq
        {
            return Err(Uncovered::Broken {
                covers: self.seq,
                brk: brk.clone(),
            });
        }
        let head = report.last_seq.unwrap_or(0);
        let truncated = Uncovered::Truncated {
            head,
            covers: self.seq,
        };
        if head < self.seq {
            return Err(truncated);
        }
        let Some(event) = event_at_seq.filter(|e| e.seq == self.seq) else {
            return Err(truncated);
        };
        // The stored hash was checked by `report`; recomputing it costs one
        // hash and does not depend on the report being about this read.
        let found = event.compute_hash();
        if found != self.hash || event.hash != self.hash {
            return Err(Uncovered::Differs {
                seq: self.seq,
                found,
                expected: self.hash.clone(),
            });
        }
        Ok(())
    }
}

/// The event a store holds at `seq`, if any.
pub async fn event_at(store: &dyn AuditStore, seq: u64) -> Result<Option<AuditEvent>, StoreError> {
    let filter = AuditFilter {
        after_seq: seq.checked_sub(1),
        limit: Some(1),
        order: ListOrder::OldestFirst,
        intents: true,
        ..Default::default()
    };
    Ok(store
        .list(&filter)
        .await?
        .into_iter()
        .find(|e| e.seq == seq))
}

/// [`Checkpoint::covered_by`] against `store`, whose chain check from seq 1
/// is `report` (reads the event at the checkpoint's seq).
pub async fn check_store(
    store: &dyn AuditStore,
    checkpoint: &Checkpoint,
    report: &VerifyReport,
) -> Result<Result<(), Uncovered>, StoreError> {
    let event = match checkpoint.seq {
        0 => None,
        seq => event_at(store, seq).await?,
    };
    Ok(checkpoint.covered_by(report, event.as_ref()))
}

/// The store's head now, checked only from `from` on: the store must still
/// hold the event at `from.seq` with `from.hash`, and every event after it
/// must chain onto it. What a checkpoint writer uses to sign a new head
/// without reading the whole chain again: each checkpoint extends the
/// previous one, which covers everything before.
pub async fn extend(
    store: &dyn AuditStore,
    from: &ChainHead,
) -> Result<Result<ChainHead, ExtendError>, StoreError> {
    if from.seq > 0 {
        let found = event_at(store, from.seq).await?;
        match found {
            None => {
                // How far the chain still goes, for the message.
                let newest = store
                    .list(&AuditFilter {
                        limit: Some(1),
                        intents: true,
                        ..Default::default()
                    })
                    .await?;
                return Ok(Err(ExtendError::Uncovered(Uncovered::Truncated {
                    head: newest.first().map_or(0, |e| e.seq),
                    covers: from.seq,
                })));
            }
            Some(e) if e.hash != from.hash || e.compute_hash() != from.hash => {
                return Ok(Err(ExtendError::Uncovered(Uncovered::Differs {
                    seq: from.seq,
                    found: e.compute_hash(),
                    expected: from.hash.clone(),
                })));
            }
            Some(_) => {}
        }
    }
    let mut verifier = ChainVerifier::after(from.seq, from.hash.clone());
    let mut after = from.seq;
    'pages: loop {
        let page = store
            .list(&AuditFilter {
                after_seq: Some(after),
                limit: Some(MAX_LIST_LIMIT),
                order: ListOrder::OldestFirst,
                intents: true,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            if !verifier.push(e) {
                break 'pages;
            }
        }
        if page.len() < MAX_LIST_LIMIT as usize {
            break;
        }
    }
    let report = verifier.finish(None);
    Ok(match &report.first_break {
        Some(brk) => Err(ExtendError::Broken {
            from: from.seq,
            brk: brk.clone(),
        }),
        None => Ok(ChainHead::of_report(&report).unwrap_or_else(|| from.clone())),
    })
}

#[cfg(test)]
mod tests;
