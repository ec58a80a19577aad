//! Checksums: the algorithms the crate can verify, one incremental hasher over all of them, and the
//! checksum values a config declares. Every digest in the crate (downloads, OCI blobs, bmap ranges, the
//! cache's content hashes) goes through here so an algorithm is spelled and rendered one way.

use sha2::Digest;
use std::io::{ErrorKind, Read};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algo: Algo,
    /// Lower-case hex digest (kind `digest`) or the URL of an md5sum-format file (kind `url`).
    pub value: String,
    pub kind: ChecksumKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Md5,
    Adler32,
}

impl Algo {
    /// The config spelling (`sha-256`).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha1 => "sha-1",
            Algo::Sha224 => "sha-224",
            Algo::Sha256 => "sha-256",
            Algo::Sha384 => "sha-384",
            Algo::Sha512 => "sha-512",
            Algo::Md5 => "md5",
            Algo::Adler32 => "adler32",
        }
    }

    /// The hashlib / OCI spelling (`sha256`): bmap files name their checksum type this way and OCI
    /// digests are `sha256:<hex>`.
    pub fn short_name(self) -> &'static str {
        match self {
            Algo::Sha1 => "sha1",
            Algo::Sha224 => "sha224",
            Algo::Sha256 => "sha256",
            Algo::Sha384 => "sha384",
            Algo::Sha512 => "sha512",
            Algo::Md5 => "md5",
            Algo::Adler32 => "adler32",
        }
    }

    /// A hashlib name as bmaptool writes it in `<ChecksumType>` (case-insensitive); adler32 is not one.
    pub fn from_hashlib(name: &str) -> Option<Algo> {
        Some(match name.to_ascii_lowercase().as_str() {
            "md5" => Algo::Md5,
            "sha1" => Algo::Sha1,
            "sha224" => Algo::Sha224,
            "sha256" => Algo::Sha256,
            "sha384" => Algo::Sha384,
            "sha512" => Algo::Sha512,
            _ => return None,
        })
    }

    /// The algorithm of an OCI digest (`algo:hex`): only the two the OCI image spec registers, spelled
    /// exactly; `None` for anything we cannot verify.
    pub fn of_oci_digest(digest: &str) -> Option<Algo> {
        match digest.split(':').next().unwrap_or_default() {
            "sha256" => Some(Algo::Sha256),
            "sha512" => Some(Algo::Sha512),
            _ => None,
        }
    }

    /// Length of the lower-case hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algo::Sha1 => 40,
            Algo::Sha224 => 56,
            Algo::Sha256 => 64,
            Algo::Sha384 => 96,
            Algo::Sha512 => 128,
            Algo::Md5 => 32,
            Algo::Adler32 => 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumKind {
    #[default]
    Digest,
    Url,
}

/// Incremental digest over any [`Algo`]; feed chunks with [`Hasher::update`], read the lower-case hex
/// digest with [`Hasher::finish`]. adler32 is rendered as 8 hex digits (zero-padded, lower-case).
#[derive(Clone)]
pub struct Hasher(Inner);

#[derive(Clone)]
enum Inner {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    Md5(md5::Md5),
    Adler32(adler32::RollingAdler32),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher({})", self.algo().name())
    }
}

impl Hasher {
    pub fn new(algo: Algo) -> Self {
        Self(match algo {
            Algo::Sha1 => Inner::Sha1(sha1::Sha1::new()),
            Algo::Sha224 => Inner::Sha224(sha2::Sha224::new()),
            Algo::Sha256 => Inner::Sha256(sha2::Sha256::new()),
            Algo::Sha384 => Inner::Sha384(sha2::Sha384::new()),
            Algo::Sha512 => Inner::Sha512(sha2::Sha512::new()),
            Algo::Md5 => Inner::Md5(md5::Md5::new()),
            Algo::Adler32 => Inner::Adler32(adler32::RollingAdler32::new()),
        })
    }

    pub fn algo(&self) -> Algo {
        match &self.0 {
            Inner::Sha1(_) => Algo::Sha1,
            Inner::Sha224(_) => Algo::Sha224,
            Inner::Sha256(_) => Algo::Sha256,
            Inner::Sha384(_) => Algo::Sha384,
            Inner::Sha512(_) => Algo::Sha512,
            Inner::Md5(_) => Algo::Md5,
            Inner::Adler32(_) => Algo::Adler32,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Sha1(h) => h.update(data),
            Inner::Sha224(h) => h.update(data),
            Inner::Sha256(h) => h.update(data),
            Inner::Sha384(h) => h.update(data),
            Inner::Sha512(h) => h.update(data),
            Inner::Md5(h) => h.update(data),
            Inner::Adler32(h) => h.update_buffer(data),
        }
    }

    /// `algo:hex`, the OCI content-digest form.
    pub fn finish_prefixed(self) -> String {
        let algo = self.algo().short_name();
        format!("{algo}:{}", self.finish())
    }

    /// Lower-case hex digest of everything fed so far.
    pub fn finish(self) -> String {
        match self.0 {
            Inner::Sha1(h) => hex::encode(h.finalize()),
            Inner::Sha224(h) => hex::encode(h.finalize()),
            Inner::Sha256(h) => hex::encode(h.finalize()),
            Inner::Sha384(h) => hex::encode(h.finalize()),
            Inner::Sha512(h) => hex::encode(h.finalize()),
            Inner::Md5(h) => hex::encode(h.finalize()),
            Inner::Adler32(h) => format!("{:08x}", h.hash()),
        }
    }
}

/// Digest of a whole in-memory buffer (tests, small payloads).
pub fn digest(algo: Algo, data: &[u8]) -> String {
    let mut h = Hasher::new(algo);
    h.update(data);
    h.finish()
}

/// Lower-case hex SHA-256 of a buffer: content hashes (cache ids, OCI layer ids) use it.
pub fn sha256_hex(data: &[u8]) -> String {
    digest(Algo::Sha256, data)
}

/// Streams `r` through `algo` to its end (interrupted reads are retried).
pub fn of_reader(algo: Algo, mut r: impl Read) -> std::io::Result<String> {
    let mut h = Hasher::new(algo);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finish()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The digest in an md5sum-format text (`<digest>  <name>`): its first whitespace-separated token,
/// lower-cased so comparison is case-insensitive.
pub fn first_token(text: &str) -> Option<String> {
    text.split_whitespace()
        .next()
        .map(|t| t.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known vectors for "abc" (FIPS 180 examples, RFC 1321, zlib.adler32(b"abc") = 0x024d0127).
    #[test]
    fn known_vectors_for_abc() {
        let cases = [
            (Algo::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                Algo::Sha224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                Algo::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                Algo::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                 8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                Algo::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            (Algo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (Algo::Adler32, "024d0127"),
        ];
        for (algo, want) in cases {
            assert_eq!(digest(algo, b"abc"), want, "{}", algo.name());
        }
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for algo in [Algo::Sha256, Algo::Md5, Algo::Adler32, Algo::Sha1] {
            let mut h = Hasher::new(algo);
            for chunk in data.chunks(333) {
                h.update(chunk);
            }
            assert_eq!(h.algo(), algo);
            assert_eq!(h.finish(), digest(algo, &data));
        }
    }

    #[test]
    fn adler32_is_zero_padded() {
        // adler32 of the empty input is 1.
        assert_eq!(digest(Algo::Adler32, b""), "00000001");
    }

    #[test]
    fn names_and_oci_digests() {
        assert_eq!(Algo::from_hashlib("SHA256"), Some(Algo::Sha256));
        assert_eq!(Algo::from_hashlib("adler32"), None);
        assert_eq!(Algo::of_oci_digest("sha512:ab"), Some(Algo::Sha512));
        assert_eq!(Algo::of_oci_digest("SHA256:ab"), None);
        assert_eq!(Algo::of_oci_digest("md5:ab"), None);
        let mut h = Hasher::new(Algo::Sha256);
        h.update(b"abc");
        assert_eq!(
            h.finish_prefixed(),
            format!("sha256:{}", sha256_hex(b"abc"))
        );
        let streamed = of_reader(Algo::Md5, &b"abc"[..]).unwrap();
        assert_eq!(streamed, digest(Algo::Md5, b"abc"));
    }

    #[test]
    fn md5sum_token() {
        assert_eq!(
            first_token("  D41D8CD98F00B204E9800998ECF8427E  file.img\n").as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(first_token(" \n\t"), None);
    }
}
