//! Reading `.deb` files (an `ar` archive holding `control.tar.*` and
//! `data.tar.*`) and unpacking their data into a tar stream the way
//! debootstrap's first stage unpacks them into a directory: every file of
//! every package, the first package to ship a path keeping it (`tar -k`),
//! with `/bin`, `/sbin` and `/lib*` merged into `/usr`.

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("read {deb}: {what}")]
    Format { deb: String, what: String },
    #[error("unpack {deb}")]
    Unpack {
        deb: String,
        #[source]
        source: std::io::Error,
    },
}

/// The top-level directories bookworm's merged `/usr` turns into symlinks.
const MERGED_DIRS: [&str; 7] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32"];

/// The members of an `ar` archive, as (name, contents).
pub fn ar_members<'a>(deb: &'a [u8], name: &str) -> Result<Vec<(&'a str, &'a [u8])>, DebError> {
    let format = |what: &str| DebError::Format { deb: name.to_owned(), what: what.to_owned() };
    let mut rest = deb.strip_prefix(b"!<arch>\n").ok_or_else(|| format("it is not an ar archive"))?;
    let mut members = Vec::new();
    while rest.len() >= 60 {
        let header = &rest[..60];
        if &header[58..60] != b"`\n" {
            return Err(format("an ar member header is malformed"));
        }
        let member = std::str::from_utf8(&header[..16]).map_err(|_| format("an ar member name is not UTF-8"))?;
        let member = member.trim_end().trim_end_matches('/');
        let size: usize = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format("an ar member size is malformed"))?;
        let body = rest.get(60..60 + size).ok_or_else(|| format("it is truncated"))?;
        members.push((member, body));
        // Members start on even offsets.
        rest = rest.get(60 + size + size % 2..).unwrap_or(&[]);
    }
    Ok(members)
}

/// A reader of the package's `data.tar`, decompressed.
pub fn data_tar<'a>(deb: &'a [u8], name: &str) -> Result<Box<dyn Read + 'a>, DebError> {
    let format = |what: String| DebError::Format { deb: name.to_owned(), what };
    let (member, body) = ar_members(deb, name)?
        .into_iter()
        .find(|(m, _)| m.starts_with("data.tar"))
        .ok_or_else(|| format("it has no data.tar member".into()))?;
    Ok(match member {
        "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(body)),
        "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(body)),
        "data.tar" => Box::new(body),
        other => return Err(format(format!("its {other} uses a compression crashlab does not read"))),
    })
}

/// Where a path from a package lands on a merged-`/usr` system.
fn merged_usr(path: &str) -> String {
    let first = path.split('/').next().unwrap_or("");
    if MERGED_DIRS.contains(&first) { format!("usr/{path}") } else { path.to_owned() }
}

/// Writes package data into one tar stream, keeping the first copy of
/// each path.
pub struct RootfsWriter<W: Write> {
    builder: tar::Builder<W>,
    seen: HashSet<String>,
    merged: BTreeSet<&'static str>,
}

impl<W: Write> RootfsWriter<W> {
    pub fn new(out: W) -> RootfsWriter<W> {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        RootfsWriter { builder, seen: HashSet::new(), merged: BTreeSet::new() }
    }

    /// Adds every entry of the `.deb`'s data.
    pub fn add_deb(&mut self, deb: &[u8], name: &str) -> Result<(), DebError> {
        let unpack = |source| DebError::Unpack { deb: name.to_owned(), source };
        let mut archive = tar::Archive::new(data_tar(deb, name)?);
        for entry in archive.entries().map_err(unpack)? {
            let mut entry = entry.map_err(unpack)?;
            let raw = entry.path().map_err(unpack)?.to_string_lossy().into_owned();
            let relative = raw.trim_start_matches("./").trim_end_matches('/');
            if relative.is_empty() || relative == "." {
                continue;
            }
            if let Some(dir) = MERGED_DIRS.iter().find(|d| relative.split('/').next() == Some(d)) {
                self.merged.insert(dir);
            }
            let path = merged_usr(relative);
            if !self.seen.insert(path.clone()) {
                continue;
            }
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name().map_err(unpack)?.unwrap_or_default().to_string_lossy().into_owned();
                // A hard link names another path of the archive, which
                // moved with the merge; a symlink's target is resolved in
                // the finished tree, where the old paths still work.
                let target = if kind.is_hard_link() { merged_usr(target.trim_start_matches("./")) } else { target };
                self.builder.append_link(&mut header, &path, &target).map_err(unpack)?;
            } else {
                self.builder.append_data(&mut header, &path, &mut entry).map_err(unpack)?;
            }
        }
        Ok(())
    }

    /// Adds a file with `contents`, owned by root.
    pub fn add_file(&mut self, path: &str, mode: u32, contents: &[u8]) -> std::io::Result<()> {
        self.seen.insert(path.to_owned());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(mode);
        header.set_size(contents.len() as u64);
        header.set_mtime(0);
        self.builder.append_data(&mut header, path, contents)
    }

    /// Adds the `/bin → usr/bin` style links for the merged directories
    /// packages shipped files in, then ends the archive.
    pub fn finish(mut self) -> std::io::Result<W> {
        for dir in std::mem::take(&mut self.merged) {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            self.builder.append_link(&mut header, dir, format!("usr/{dir}"))?;
        }
        self.builder.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.deb` with the given data.tar (uncompressed) members.
    fn deb(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut data = tar::Builder::new(Vec::new());
        for (path, kind, contents_or_target) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_size(0);
                data.append_link(&mut header, path, contents_or_target).unwrap();
            } else {
                header.set_size(contents_or_target.len() as u64);
                data.append_data(&mut header, path, contents_or_target.as_bytes()).unwrap();
            }
        }
        let data = data.into_inner().unwrap();
        let mut out = b"!<arch>\n".to_vec();
        for (name, body) in [("debian-binary", &b"2.0\n"[..]), ("data.tar", &data)] {
            out.extend_from_slice(
                format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 100644, body.len()).as_bytes(),
            );
            out.extend_from_slice(body);
            if body.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    fn listing(tar: &[u8]) -> Vec<(String, String)> {
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mut body = String::new();
                if let Some(target) = e.link_name().unwrap() {
                    body = format!("-> {}", target.display());
                } else {
                    e.read_to_string(&mut body).unwrap();
                }
                (path, body)
            })
            .collect()
    }

    #[test]
    fn ar_members_are_found_past_odd_sizes() {
        let d = deb(&[("./a", tar::EntryType::Regular, "x")]);
        let members = ar_members(&d, "t.deb").unwrap();
        assert_eq!(members.iter().map(|m| m.0).collect::<Vec<_>>(), ["debian-binary", "data.tar"]);
        assert!(ar_members(b"not a deb", "t.deb").unwrap_err().to_string().contains("not an ar archive"));
    }

    #[test]
    fn unpacking_merges_usr_and_keeps_the_first_copy() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let first = deb(&[
            ("./", Directory, ""),
            ("./bin/", Directory, ""),
            ("./bin/sh", Symlink, "dash"),
            ("./bin/dash", Regular, "dash v1"),
            ("./usr/bin/", Directory, ""),
            ("./usr/bin/perl", Regular, "perl"),
            ("./usr/bin/perl5", Link, "./usr/bin/perl"),
            ("./sbin/tool", Regular, "tool"),
            ("./sbin/tool2", Link, "./sbin/tool"),
        ]);
        let second = deb(&[("./usr/bin/dash", Regular, "dash v2"), ("./etc/motd", Regular, "hi")]);
        let mut writer = RootfsWriter::new(Vec::new());
        writer.add_deb(&first, "first.deb").unwrap();
        writer.add_deb(&second, "second.deb").unwrap();
        let tar = writer.finish().unwrap();
        let entries = listing(&tar);
        let get = |p: &str| entries.iter().find(|(path, _)| path.trim_end_matches('/') == p).map(|e| e.1.as_str());
        assert_eq!(get("usr/bin/dash"), Some("dash v1"), "first package wins");
        assert_eq!(get("usr/bin/sh"), Some("-> dash"));
        assert_eq!(get("usr/sbin/tool2"), Some("-> usr/sbin/tool"), "hard links follow the merge");
        assert_eq!(get("etc/motd"), Some("hi"));
        assert_eq!(get("bin"), Some("-> usr/bin"));
        assert_eq!(get("sbin"), Some("-> usr/sbin"));
        assert_eq!(get("lib"), None, "only directories packages used are linked");
        assert_eq!(entries.iter().filter(|(p, _)| p.trim_end_matches('/') == "usr/bin").count(), 1);
    }
}
