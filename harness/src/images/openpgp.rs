//! Just enough OpenPGP (RFC 4880) to check a Debian archive's `InRelease`
//! the way `gpgv` does for debootstrap: read the cleartext-signed message,
//! find its version 4 signatures, and accept it when at least one was made
//! by an RSA key from the shipped Debian archive keyring and verifies.
//!
//! Only verification is done, on public data, so the arithmetic needs no
//! constant-time care; it is a PKCS #1 v1.5 check (`s^e mod n` compared
//! with the padded digest). Signatures by keys the keyring does not hold,
//! or with algorithms other than RSA (Debian's bookworm release key is
//! Ed25519), are skipped as gpgv skips unknown keys; a signature by a
//! known key that does not verify rejects the whole file.

use num_bigint::BigUint;
use sha2::Digest;

/// The Debian archive keyring: `usr/share/keyrings/debian-archive-keyring.gpg`
/// from `debian-archive-keyring_2023.3+deb12u2_all.deb` (bookworm's main
/// archive, SHA-256 f699e2f88dca05212f2a452b58475f2993cb6993dfbafb1d0205a3291eb8b4b8).
/// It holds the bullseye, bookworm and trixie archive, security and
/// release keys.
pub const DEBIAN_ARCHIVE_KEYRING: &[u8] = include_bytes!("debian-archive-keyring.gpg");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PgpError {
    #[error("read the cleartext-signed message: {0}")]
    Cleartext(&'static str),
    #[error("decode the signature's base64 armor")]
    Armor,
    #[error("read an OpenPGP packet: {0}")]
    Packet(&'static str),
    #[error("verify the signature by key {key_id}: it does not match the signed text (tampered or corrupt)")]
    BadSignature { key_id: String },
    #[error("find a signature by a trusted key: none of the {count} signatures was made by a key in the keyring")]
    NoTrustedSignature { count: usize },
}

/// An RSA public key (primary key or subkey) from a keyring.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The low 64 bits of the v4 fingerprint, as signatures name their
    /// issuer.
    pub key_id: [u8; 8],
    n: BigUint,
    e: BigUint,
    /// The key's size in bytes, which the padded digest must fill.
    len: usize,
}

/// Reads the RSA keys of a binary (not armored) keyring; keys of other
/// algorithms are left out.
pub fn read_keyring(data: &[u8]) -> Result<Vec<PublicKey>, PgpError> {
    let mut keys = Vec::new();
    for packet in packets(data)? {
        let (tag, body) = packet?;
        // 6: public key, 14: public subkey.
        if tag != 6 && tag != 14 {
            continue;
        }
        let mut r = Reader(body);
        if r.u8()? != 4 {
            continue;
        }
        r.take(4)?;
        if !matches!(r.u8()?, 1..=3) {
            continue;
        }
        let n = r.mpi()?;
        let e = r.mpi()?;
        let mut hasher = sha1::Sha1::new();
        hasher.update([0x99]);
        hasher.update((body.len() as u16).to_be_bytes());
        hasher.update(body);
        let fingerprint = hasher.finalize();
        let key_id = fingerprint[12..20].try_into().expect("sha1 is 20 bytes");
        keys.push(PublicKey { key_id, len: n.len(), n: BigUint::from_bytes_be(n), e: BigUint::from_bytes_be(e) });
    }
    Ok(keys)
}

/// Verifies a cleartext-signed message against `keys` and returns the
/// signed text (dash-escaping undone, line ends as in the file), which is
/// the only part that may be trusted.
pub fn verify_cleartext(message: &str, keys: &[PublicKey]) -> Result<String, PgpError> {
    let (text, signatures) = split_cleartext(message)?;
    let canonical = canonical_text(&text);
    let mut count = 0;
    let mut good = false;
    for packet in packets(&signatures)? {
        let (tag, body) = packet?;
        if tag != 2 {
            continue;
        }
        count += 1;
        let Some(sig) = Signature::parse(body)? else { continue };
        let Some(key) = keys.iter().find(|k| Some(k.key_id) == sig.issuer) else { continue };
        if sig.verify(&canonical, key) {
            good = true;
        } else {
            return Err(PgpError::BadSignature { key_id: hex(&key.key_id) });
        }
    }
    if good { Ok(text) } else { Err(PgpError::NoTrustedSignature { count }) }
}

/// Splits a cleartext-signed message into its text and the binary
/// signature packets.
fn split_cleartext(message: &str) -> Result<(String, Vec<u8>), PgpError> {
    let mut lines = message.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() != Some("-----BEGIN PGP SIGNED MESSAGE-----") {
        return Err(PgpError::Cleartext("it does not start with a signed-message header"));
    }
    // Armor headers ("Hash: SHA256") up to the blank line.
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
    }
    let mut text: Vec<&str> = Vec::new();
    let mut found = false;
    for line in lines.by_ref() {
        if line == "-----BEGIN PGP SIGNATURE-----" {
            found = true;
            break;
        }
        text.push(line.strip_prefix("- ").unwrap_or(line));
    }
    if !found {
        return Err(PgpError::Cleartext("it has no signature block"));
    }
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
    }
    let mut armor = String::new();
    let mut ended = false;
    for line in lines {
        if line == "-----END PGP SIGNATURE-----" {
            ended = true;
            break;
        }
        // The "=XXXX" line is the armor's CRC-24; the signatures
        // themselves are what protects the text.
        if !line.starts_with('=') {
            armor.push_str(line.trim());
        }
    }
    if !ended {
        return Err(PgpError::Cleartext("its signature block does not end"));
    }
    Ok((text.join("\n") + "\n", base64(&armor)?))
}

/// The text as it was hashed: trailing spaces and tabs cut from every line,
/// lines joined by CRLF, no line end after the last one.
fn canonical_text(text: &str) -> Vec<u8> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut out = Vec::with_capacity(body.len() + body.len() / 32);
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line.trim_end_matches([' ', '\t']).as_bytes());
    }
    out
}

/// A version 4 RSA signature over a text document.
struct Signature<'a> {
    hash_algo: u8,
    /// Version through hashed subpackets: what is hashed after the text.
    hashed: &'a [u8],
    left16: [u8; 2],
    issuer: Option<[u8; 8]>,
    value: &'a [u8],
}

impl<'a> Signature<'a> {
    /// `None` for signatures this module does not check (other versions,
    /// types or algorithms).
    fn parse(body: &'a [u8]) -> Result<Option<Signature<'a>>, PgpError> {
        let mut r = Reader(body);
        let (version, sig_type, pk_algo, hash_algo) = (r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        if version != 4 || sig_type != 0x01 || !matches!(pk_algo, 1 | 3) {
            return Ok(None);
        }
        let hashed_len = usize::from(r.u16()?);
        let hashed_subpackets = r.take(hashed_len)?;
        let hashed = &body[..6 + hashed_len];
        let unhashed_len = usize::from(r.u16()?);
        let unhashed_subpackets = r.take(unhashed_len)?;
        let left16 = r.take(2)?.try_into().expect("two bytes");
        let value = r.mpi()?;
        let issuer = issuer(hashed_subpackets)?.or(issuer(unhashed_subpackets)?);
        Ok(Some(Signature { hash_algo, hashed, left16, issuer, value }))
    }

    fn verify(&self, text: &[u8], key: &PublicKey) -> bool {
        let trailer = {
            let mut t = vec![0x04, 0xff];
            t.extend_from_slice(&(self.hashed.len() as u32).to_be_bytes());
            t
        };
        // DigestInfo prefixes from RFC 4880 §5.2.2.
        let (digest, prefix): (Vec<u8>, &[u8]) = match self.hash_algo {
            8 => (
                sha2::Sha256::new()
                    .chain_update(text)
                    .chain_update(self.hashed)
                    .chain_update(&trailer)
                    .finalize()
                    .to_vec(),
                &[
                    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
                    0x00, 0x04, 0x20,
                ],
            ),
            10 => (
                sha2::Sha512::new()
                    .chain_update(text)
                    .chain_update(self.hashed)
                    .chain_update(&trailer)
                    .finalize()
                    .to_vec(),
                &[
                    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
                    0x00, 0x04, 0x40,
                ],
            ),
            _ => return false,
        };
        if digest[..2] != self.left16 {
            return false;
        }
        let s = BigUint::from_bytes_be(self.value);
        if s >= key.n {
            return false;
        }
        let m = s.modpow(&key.e, &key.n).to_bytes_be();
        // EM = 00 01 FF..FF 00 || prefix || digest, as long as the modulus;
        // the big integer drops the leading zero byte.
        let padding = key.len.saturating_sub(3 + prefix.len() + digest.len());
        let mut expected = Vec::with_capacity(key.len);
        expected.push(0x01);
        expected.extend(std::iter::repeat_n(0xff, padding));
        expected.push(0x00);
        expected.extend_from_slice(prefix);
        expected.extend_from_slice(&digest);
        padding >= 8 && m == expected
    }
}

/// The issuer key id from a subpacket area: subpacket 16 (key id) or 33
/// (v4 fingerprint, whose last 8 bytes are the key id).
fn issuer(mut area: &[u8]) -> Result<Option<[u8; 8]>, PgpError> {
    while !area.is_empty() {
        let mut r = Reader(area);
        let first = r.u8()?;
        let len = match first {
            0..=191 => usize::from(first),
            192..=254 => ((usize::from(first) - 192) << 8) + usize::from(r.u8()?) + 192,
            255 => r.u32()? as usize,
        };
        let sub = r.take(len)?;
        area = r.0;
        let Some((&kind, data)) = sub.split_first() else { continue };
        match kind & 0x7f {
            16 if data.len() == 8 => return Ok(Some(data.try_into().expect("8 bytes"))),
            33 if data.len() == 21 && data[0] == 4 => return Ok(Some(data[13..21].try_into().expect("8 bytes"))),
            _ => {}
        }
    }
    Ok(None)
}

/// The packets of a binary OpenPGP stream as (tag, body).
fn packets(data: &[u8]) -> Result<impl Iterator<Item = Result<(u8, &[u8]), PgpError>>, PgpError> {
    let mut rest = data;
    Ok(std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let next = (|| {
            let mut r = Reader(rest);
            let header = r.u8()?;
            if header & 0x80 == 0 {
                return Err(PgpError::Packet("a packet header without its high bit"));
            }
            let (tag, len) = if header & 0x40 != 0 {
                let first = r.u8()?;
                let len = match first {
                    0..=191 => usize::from(first),
                    192..=223 => ((usize::from(first) - 192) << 8) + usize::from(r.u8()?) + 192,
                    255 => r.u32()? as usize,
                    _ => return Err(PgpError::Packet("a partial-length packet")),
                };
                (header & 0x3f, len)
            } else {
                let len = match header & 3 {
                    0 => usize::from(r.u8()?),
                    1 => usize::from(r.u16()?),
                    2 => r.u32()? as usize,
                    _ => r.0.len(),
                };
                ((header >> 2) & 0x0f, len)
            };
            let body = r.take(len)?;
            rest = r.0;
            Ok((tag, body))
        })();
        if next.is_err() {
            rest = &[];
        }
        Some(next)
    }))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PgpError> {
        if self.0.len() < n {
            return Err(PgpError::Packet("it is truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, PgpError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PgpError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("two bytes")))
    }

    fn u32(&mut self) -> Result<u32, PgpError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    /// A multiprecision integer: a bit count, then big-endian bytes.
    fn mpi(&mut self) -> Result<&'a [u8], PgpError> {
        let bits = usize::from(self.u16()?);
        self.take(bits.div_ceil(8))
    }
}

fn base64(text: &str) -> Result<Vec<u8>, PgpError> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return Err(PgpError::Armor),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bookworm's InRelease as deb.debian.org served it on 2026-12-01.
    const IN_RELEASE: &str = include_str!("testdata/InRelease");

    fn keys() -> Vec<PublicKey> {
        read_keyring(DEBIAN_ARCHIVE_KEYRING).unwrap()
    }

    #[test]
    fn the_shipped_keyring_holds_the_bookworm_archive_key() {
        let ids: Vec<String> = keys().iter().map(|k| hex(&k.key_id)).collect();
        // Debian Archive Automatic Signing Key (12/bookworm).
        assert!(ids.contains(&"6ED0E7B82643E131".to_owned()), "{ids:?}");
    }

    #[test]
    fn a_genuine_in_release_verifies() {
        let text = verify_cleartext(IN_RELEASE, &keys()).unwrap();
        assert!(text.starts_with("Origin: Debian\n"));
        assert!(text.contains("Codename: bookworm\n"));
    }

    #[test]
    fn a_changed_hash_in_in_release_is_rejected() {
        let tampered = IN_RELEASE.replacen(" 9e0b5aabb2465b3d", " 9e0b5aabb2465b3e", 1);
        assert_ne!(tampered, IN_RELEASE);
        let err = verify_cleartext(&tampered, &keys()).unwrap_err();
        assert!(matches!(err, PgpError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn a_signature_by_an_unknown_key_is_not_enough() {
        assert_eq!(verify_cleartext(IN_RELEASE, &[]), Err(PgpError::NoTrustedSignature { count: 3 }));
    }

    #[test]
    fn an_unsigned_file_is_rejected() {
        let text = IN_RELEASE.split("-----BEGIN PGP SIGNATURE-----").next().unwrap();
        assert_eq!(verify_cleartext(text, &keys()), Err(PgpError::Cleartext("it has no signature block")));
        assert!(verify_cleartext("Origin: Debian\n", &keys()).is_err());
    }

    #[test]
    fn canonical_text_drops_trailing_blanks_and_uses_crlf() {
        assert_eq!(canonical_text("a \nb\t\n\nc\n"), b"a\r\nb\r\n\r\nc");
    }
}
