//! Image recipes: what a workload's image is made of, built by the harness
//! from Debian packages (read from a mirror and installed in a container)
//! and imported through the Docker API, since no registry can be assumed.

/// A file written into the root filesystem before import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeFile {
    pub path: &'static str,
    pub contents: &'static str,
    pub mode: u32,
}

/// How to build one workload image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecipe {
    /// Name used on the command line (`crashlab images build mariadb`).
    pub name: &'static str,
    /// Repository and tag the image is imported as.
    pub tag: &'static str,
    /// Debian suite to bootstrap.
    pub suite: &'static str,
    /// Packages installed on top of the minimal base.
    pub packages: &'static [&'static str],
    pub files: &'static [RecipeFile],
    /// Paths (inside the rootfs) removed before import to keep it small.
    pub prune: &'static [&'static str],
    /// Dockerfile-style instructions applied at import (`ENTRYPOINT [...]`).
    pub changes: &'static [&'static str],
}

impl ImageRecipe {
    /// A fingerprint of everything that shapes the image, stored as an
    /// image label so a stale image can be told from a current one.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        // FNV-1a: stable across Rust releases, unlike DefaultHasher.
        struct Fnv(u64);
        impl Hasher for Fnv {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for b in bytes {
                    self.0 ^= u64::from(*b);
                    self.0 = self.0.wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        (self.suite, self.packages, self.prune, self.changes).hash(&mut h);
        for f in self.files {
            (f.path, f.contents, f.mode).hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn fingerprint_changes_with_the_recipe() {
        let a = crate::mariadb::RECIPE.clone();
        let mut b = a.clone();
        b.packages = &["mariadb-server", "less"];
        assert_eq!(a.fingerprint(), crate::mariadb::RECIPE.fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
    }
}
