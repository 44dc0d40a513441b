//! Checking a Debian archive's `InRelease` as apt does with gpgv, with
//! the `pgp` crate (rPGP): the cleartext-signed message is parsed, each
//! signature is matched by its issuer to a key or subkey of the shipped
//! Debian archive keyring, and the file is accepted when at least one
//! signature verifies and is good at its dates.
//!
//! A signature by a known key that does not verify rejects the whole file
//! (the text was changed, or the signature was). A signature that verifies
//! but is not good now does not count, as gpgv's `EXPKEYSIG` and
//! `EXPSIG` do not count for apt: one dated in the future (beyond
//! [`CLOCK_SKEW`]), one past its own expiry, one older than its key, one
//! by a key that has expired, or one made after its key expired, or by a
//! key that was revoked or, for a subkey, is not bound to its primary key
//! as a signing key. A key's expiry is read from its newest self-signature
//! that verifies (for a subkey, its newest valid binding signature, and no
//! later than its primary key's). Signatures by keys the keyring does not
//! hold are skipped, as gpgv skips them.

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Tag, Timestamp};
use std::time::{Duration, SystemTime};

/// The Debian archive keyring: `usr/share/keyrings/debian-archive-keyring.gpg`
/// from `debian-archive-keyring_2023.3+deb12u2_all.deb` (bookworm's main
/// archive, SHA-256 f699e2f88dca05212f2a452b58475f2993cb6993dfbafb1d0205a3291eb8b4b8).
/// It holds the bullseye, bookworm and trixie archive, security and
/// release keys.
pub const DEBIAN_ARCHIVE_KEYRING: &[u8] = include_bytes!("debian-archive-keyring.gpg");

/// How far in the future a signature may be dated: the mirror's clock
/// and this machine's may disagree by this much.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    // Boxed: pgp's error carries a backtrace inline, and would make every
    // error that holds this one large.
    #[error("read the keyring")]
    Keyring(#[source] Box<pgp::errors::Error>),
    #[error("read the cleartext-signed message")]
    Cleartext(#[source] Box<pgp::errors::Error>),
    #[error("verify the signature by key {key_id}: it does not match the signed text (tampered or corrupt)")]
    BadSignature { key_id: String },
    #[error("find a good signature by a trusted key: {}", reasons.join("; "))]
    NoGoodSignature { reasons: Vec<String> },
}

/// The keys signatures are checked against, each with its self-signatures
/// checked.
#[derive(Debug)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// Reads a binary (not armored) keyring such as the ones
    /// `debian-archive-keyring` ships.
    pub fn read(data: &[u8]) -> Result<Keyring, PgpError> {
        let keyring = |e| PgpError::Keyring(Box::new(e));
        let keys =
            SignedPublicKey::from_bytes_many(data).map_err(keyring)?.collect::<Result<Vec<_>, _>>().map_err(keyring)?;
        Ok(Keyring { keys })
    }

    /// The shipped Debian archive keyring.
    pub fn debian() -> Result<Keyring, PgpError> {
        Keyring::read(DEBIAN_ARCHIVE_KEYRING)
    }

    /// The key or subkey that made `sig`, if the keyring holds it.
    fn signer(&self, sig: &Signature) -> Option<Signer<'_>> {
        let made = |key: &dyn KeyDetails| {
            sig.issuer_fingerprint().into_iter().any(|f| *f == key.fingerprint())
                || sig.issuer_key_id().into_iter().any(|id| *id == key.legacy_key_id())
        };
        for key in &self.keys {
            if made(&key.primary_key) {
                return Some(primary_signer(key));
            }
            if let Some(sub) = key.public_subkeys.iter().find(|sub| made(&sub.key)) {
                return Some(subkey_signer(key, sub));
            }
        }
        None
    }
}

/// A key or subkey as a signer: when it was made, when it expires, and
/// whether its own signatures let it sign at all.
struct Signer<'a> {
    key: Component<'a>,
    created: Timestamp,
    expires: Option<SystemTime>,
    /// Why it may not sign, if it may not: revoked, or not bound to its
    /// primary key as a signing key.
    unusable: Option<&'static str>,
}

enum Component<'a> {
    Primary(&'a pgp::packet::PublicKey),
    Subkey(&'a pgp::packet::PublicSubkey),
}

impl Component<'_> {
    fn verify(&self, sig: &Signature, text: &[u8]) -> bool {
        match self {
            Component::Primary(key) => sig.verify(key, text).is_ok(),
            Component::Subkey(key) => sig.verify(key, text).is_ok(),
        }
    }
}

/// A primary key as a signer. Only its self-signatures count (a user ID
/// also carries other keys' certifications), and only those that verify.
fn primary_signer(key: &SignedPublicKey) -> Signer<'_> {
    let primary = &key.primary_key;
    let direct = key.details.direct_signatures.iter().filter(|s| s.typ() == Some(SignatureType::Key));
    let certifications = key.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(move |s| {
            matches!(
                s.typ(),
                Some(
                    SignatureType::CertGeneric
                        | SignatureType::CertPersona
                        | SignatureType::CertCasual
                        | SignatureType::CertPositive
                )
            ) && s.verify_certification(primary, Tag::UserId, &user.id).is_ok()
        })
    });
    let self_sigs: Vec<&Signature> = direct.filter(|s| s.verify_key(primary).is_ok()).chain(certifications).collect();
    let revoked = key.details.revocation_signatures.iter().any(|s| s.verify_key(primary).is_ok());
    Signer {
        key: Component::Primary(primary),
        created: primary.created_at(),
        expires: expiry(primary.created_at(), &self_sigs),
        unusable: if revoked {
            Some("was made by a revoked key")
        } else if self_sigs.is_empty() {
            Some("was made by a key without a valid self-signature")
        } else {
            None
        },
    }
}

/// A subkey as a signer: bound to its primary key for signing (with the
/// subkey's own back-signature, RFC 9580 5.2.1), and expiring no later
/// than the primary key.
fn subkey_signer<'a>(key: &'a SignedPublicKey, sub: &'a SignedPublicSubKey) -> Signer<'a> {
    let primary = &key.primary_key;
    let bound = |s: &&Signature| {
        s.typ() == Some(SignatureType::SubkeyBinding)
            && s.key_flags().sign()
            && s.verify_subkey_binding(primary, &sub.key).is_ok()
            && s.embedded_signature().is_some_and(|back| back.verify_primary_key_binding(&sub.key, primary).is_ok())
    };
    let bindings: Vec<&Signature> = sub.signatures.iter().filter(bound).collect();
    let revoked = sub.signatures.iter().any(|s| {
        s.typ() == Some(SignatureType::SubkeyRevocation) && s.verify_subkey_binding(primary, &sub.key).is_ok()
    });
    let of_primary = primary_signer(key);
    Signer {
        key: Component::Subkey(&sub.key),
        created: sub.key.created_at(),
        expires: [expiry(sub.key.created_at(), &bindings), of_primary.expires].into_iter().flatten().min(),
        unusable: if revoked {
            Some("was made by a revoked subkey")
        } else if bindings.is_empty() {
            Some("was made by a subkey not bound to its key for signing")
        } else {
            of_primary.unusable
        },
    }
}

/// When a key created at `created` expires, by the newest of its
/// self-signatures (`None`: never).
fn expiry(created: Timestamp, self_sigs: &[&Signature]) -> Option<SystemTime> {
    let newest = self_sigs.iter().filter(|s| s.created().is_some()).max_by_key(|s| s.created())?;
    let valid_for = Duration::from(newest.key_expiration_time()?);
    (!valid_for.is_zero()).then(|| SystemTime::from(created) + valid_for)
}

/// Verifies a cleartext-signed message against `keyring` as of `now` and
/// returns the signed text (dash-escaping undone, line ends LF), which is
/// the only part that may be trusted.
pub fn verify_cleartext(message: &str, keyring: &Keyring, now: SystemTime) -> Result<String, PgpError> {
    let (message, _headers) =
        CleartextSignedMessage::from_string(message).map_err(|e| PgpError::Cleartext(Box::new(e)))?;
    let text = message.signed_text();
    let mut reasons = Vec::new();
    let mut good = false;
    for sig in message.signatures() {
        let key_id = issuer(sig);
        let Some(signer) = keyring.signer(sig) else {
            reasons.push(format!("key {key_id} is not in the keyring"));
            continue;
        };
        if !signer.key.verify(sig, text.as_bytes()) {
            return Err(PgpError::BadSignature { key_id });
        }
        match signer.unusable.map_or_else(|| dates(sig, &signer, now), |why| Err(why.to_owned())) {
            Ok(()) => good = true,
            Err(reason) => reasons.push(format!("the signature by key {key_id} {reason}")),
        }
    }
    if reasons.is_empty() && !good {
        reasons.push("the message carries no signature".to_owned());
    }
    if good { Ok(text.replace("\r\n", "\n")) } else { Err(PgpError::NoGoodSignature { reasons }) }
}

/// Why a signature that verifies is not good at `now`, if it is not.
fn dates(sig: &Signature, signer: &Signer<'_>, now: SystemTime) -> Result<(), String> {
    let Some(made) = sig.created().map(SystemTime::from) else { return Err("has no creation time".into()) };
    if made > now + CLOCK_SKEW {
        return Err(format!("is dated {}, in the future (the clock here says {})", date(made), date(now)));
    }
    if let Some(valid_for) = sig.signature_expiration_time().map(Duration::from)
        && !valid_for.is_zero()
        && made + valid_for < now
    {
        return Err(format!("expired on {}", date(made + valid_for)));
    }
    if made < SystemTime::from(signer.created) {
        return Err(format!("is dated {}, before its key was made", date(made)));
    }
    match signer.expires {
        Some(expires) if made > expires => {
            Err(format!("was made on {}, after the key expired on {}", date(made), date(expires)))
        }
        Some(expires) if now > expires => Err(format!("was made by a key that expired on {}", date(expires))),
        _ => Ok(()),
    }
}

/// The signature's issuer as gpg names it: the key id, upper-case hex.
fn issuer(sig: &Signature) -> String {
    match (sig.issuer_key_id().first(), sig.issuer_fingerprint().first()) {
        (Some(id), _) => hex::encode_upper(id),
        (None, Some(fingerprint)) => format!("{fingerprint:X}"),
        (None, None) => "(unnamed)".to_owned(),
    }
}

fn date(time: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bookworm's InRelease as deb.debian.org served it (dated 2026-07-11).
    const IN_RELEASE: &str = include_str!("testdata/InRelease");

    fn at(rfc3339: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc3339).unwrap()
    }

    fn debian() -> Keyring {
        Keyring::debian().unwrap()
    }

    /// A test key made with gpg, expired on 2025-01-01 (see
    /// testdata/README.md).
    fn expired() -> Keyring {
        Keyring::read(include_bytes!("testdata/expired-key.gpg")).unwrap()
    }

    fn reasons(err: PgpError) -> Vec<String> {
        match err {
            PgpError::NoGoodSignature { reasons } => reasons,
            other => panic!("expected no good signature, got: {other}"),
        }
    }

    #[test]
    fn a_genuine_in_release_verifies() {
        let text = verify_cleartext(IN_RELEASE, &debian(), at("2026-12-01T00:00:00Z")).unwrap();
        assert!(text.starts_with("Origin: Debian\n"), "{}", &text[..40]);
        assert!(text.contains("\nCodename: bookworm\n"));
        assert!(!text.contains('\r'));
    }

    #[test]
    fn a_changed_hash_in_in_release_is_rejected() {
        let tampered = IN_RELEASE.replacen(" 9e0b5aabb2465b3d", " 9e0b5aabb2465b3e", 1);
        assert_ne!(tampered, IN_RELEASE);
        let err = verify_cleartext(&tampered, &debian(), at("2026-12-01T00:00:00Z")).unwrap_err();
        assert!(matches!(err, PgpError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn a_corrupted_signature_is_rejected() {
        // One base64 character of the first signature's armor, changed:
        // the packet still parses, its signature value no longer matches.
        let start = IN_RELEASE.find("-----BEGIN PGP SIGNATURE-----").unwrap();
        let line = start + IN_RELEASE[start..].find("\n\n").unwrap() + 2 + 200;
        let mut bad = IN_RELEASE.to_owned();
        let old = bad.as_bytes()[line];
        bad.replace_range(line..=line, if old == b'A' { "B" } else { "A" });
        let err = verify_cleartext(&bad, &debian(), at("2026-12-01T00:00:00Z")).unwrap_err();
        assert!(matches!(err, PgpError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn signatures_by_keys_outside_the_keyring_are_not_enough() {
        let err = verify_cleartext(IN_RELEASE, &expired(), at("2026-12-01T00:00:00Z")).unwrap_err();
        let reasons = reasons(err);
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons.iter().all(|r| r.ends_with("is not in the keyring")), "{reasons:?}");
    }

    #[test]
    fn an_unsigned_file_is_rejected() {
        let text = IN_RELEASE.split("-----BEGIN PGP SIGNATURE-----").next().unwrap();
        let err = verify_cleartext(text, &debian(), at("2026-12-01T00:00:00Z")).unwrap_err();
        assert!(matches!(err, PgpError::Cleartext(_)), "{err}");
        assert!(verify_cleartext("Origin: Debian\n", &debian(), SystemTime::now()).is_err());
    }

    #[test]
    fn a_signature_from_the_future_is_rejected() {
        // The file is dated 2026-07-11; a clock a day behind that sees its
        // signatures as made tomorrow.
        let err = verify_cleartext(IN_RELEASE, &debian(), at("2026-07-10T00:00:00Z")).unwrap_err();
        let reasons = reasons(err);
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons.iter().all(|r| r.contains(", in the future (the clock here says 2026-07-10")), "{reasons:?}");
    }

    #[test]
    fn signatures_by_expired_debian_keys_are_rejected() {
        // Every key of the shipped keyring has expired by 2036 (bookworm's
        // on 2031-01-19).
        let err = verify_cleartext(IN_RELEASE, &debian(), at("2036-01-01T00:00:00Z")).unwrap_err();
        let reasons = reasons(err);
        assert!(
            reasons.iter().any(|r| r.contains("by key 6ED0E7B82643E131 was made by a key that expired on 2031-01-")),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_signature_by_an_expired_key_is_rejected() {
        let message = include_str!("testdata/InRelease.expired-key");
        // Good while the key was: the signature itself is genuine.
        verify_cleartext(message, &expired(), at("2024-12-01T00:00:00Z")).unwrap();
        let err = verify_cleartext(message, &expired(), at("2026-12-01T00:00:00Z")).unwrap_err();
        assert_eq!(
            reasons(err),
            ["the signature by key 9465DBAC5826CA07 was made by a key that expired on 2025-01-01T12:00:00Z"]
        );
    }

    #[test]
    fn a_signature_made_after_its_key_expired_is_rejected() {
        let message = include_str!("testdata/InRelease.after-expiry");
        let err = verify_cleartext(message, &expired(), at("2025-06-02T00:00:00Z")).unwrap_err();
        assert_eq!(
            reasons(err),
            ["the signature by key 9465DBAC5826CA07 was made on 2025-06-01T00:00:00Z, after the key expired on \
                 2025-01-01T12:00:00Z"]
        );
    }

    #[test]
    fn the_shipped_keyring_holds_the_bookworm_archive_key() {
        let keyring = debian();
        let ids: Vec<String> = keyring
            .keys
            .iter()
            .flat_map(|k| {
                std::iter::once(k.primary_key.legacy_key_id())
                    .chain(k.public_subkeys.iter().map(|s| s.key.legacy_key_id()))
            })
            .map(hex::encode_upper)
            .collect();
        // Debian Archive Automatic Signing Key (12/bookworm), its signing
        // subkey.
        assert!(ids.contains(&"6ED0E7B82643E131".to_owned()), "{ids:?}");
    }
}
