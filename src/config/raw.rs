//! The config as written: serde structs that only check shapes and scalar spellings.
//! Cross-field rules (which keys go together, paths, digests) live in `load.rs`.

use std::fmt;

use serde::de::{self, value::MapAccessDeserializer, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::model::{Algo, ChecksumKind, Via};
use crate::units::parse_size;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `base`")]
pub(super) struct RawConfig {
    pub base: RawBase,
    #[serde(default)]
    pub output: Option<RawOutput>,
    #[serde(default)]
    pub oci_images: Option<Vec<RawOci>>,
    #[serde(default)]
    pub files: Option<Vec<RawFile>>,
    #[serde(default)]
    pub write_config: Option<Bool11>,
    /// Checked from the node tree by the offspot rules, which need scalar styles; declared
    /// here only so serde knows the key.
    #[serde(default)]
    #[allow(dead_code)]
    pub offspot: Option<de::IgnoredAny>,
}

pub(super) enum RawBase {
    Bare(String),
    Map(RawBaseMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `source`")]
pub(super) struct RawBaseMap {
    pub source: String,
    #[serde(default)]
    pub root_size: Option<Size>,
    #[serde(default)]
    pub rootfs_size: Option<Size>,
    #[serde(default)]
    pub checksum: Option<RawChecksum>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `size` and/or `shrink`"
)]
pub(super) struct RawOutput {
    #[serde(default)]
    pub size: Option<OutputSizeRaw>,
    #[serde(default)]
    pub shrink: Option<Bool11>,
}

pub(super) enum RawOci {
    Bare(String),
    Map(RawOciMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `ident`")]
pub(super) struct RawOciMap {
    pub ident: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub filesize: Option<Size>,
    #[serde(default)]
    pub fullsize: Option<Size>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `to` and `url` or `content`"
)]
pub(super) struct RawFile {
    pub to: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub via: Option<Named<Via>>,
    #[serde(default)]
    pub size: Option<Size>,
    #[serde(default)]
    pub checksum: Option<RawChecksum>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `algo` and `value`")]
pub(super) struct RawChecksum {
    pub algo: Named<Algo>,
    pub value: DigestText,
    #[serde(default)]
    pub kind: Option<Named<ChecksumKind>>,
}

/// A boolean with PyYAML's YAML 1.1 spellings (`yes`, `Off`…), which the original accepted.
pub(super) struct Bool11(pub bool);

impl<'de> Deserialize<'de> for Bool11 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bool11;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false (yes/no/on/off also accepted)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Bool11, E> {
                Ok(Bool11(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bool11, E> {
                let yes = ["yes", "on", "true"]
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(v));
                let no = ["no", "off", "false"]
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(v));
                match (yes, no) {
                    (true, _) => Ok(Bool11(true)),
                    (_, true) => Ok(Bool11(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Bytes: an integer or a size string (`8G`, `2.4GiB`).
pub(super) struct Size(pub u64);

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number of bytes or a size string like `8G` or `2.4GiB`")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("`{v}`: sizes cannot be negative")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor).map(Size)
    }
}

/// `output.size`: a size or `auto`.
pub(super) enum OutputSizeRaw {
    Auto,
    Bytes(u64),
}

impl<'de> Deserialize<'de> for OutputSizeRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OutputSizeRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`auto`, a whole number of bytes or a size string like `8G`")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OutputSizeRaw, E> {
                Ok(OutputSizeRaw::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OutputSizeRaw, E> {
                SizeVisitor.visit_i64(v).map(OutputSizeRaw::Bytes)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OutputSizeRaw, E> {
                if v.trim().eq_ignore_ascii_case("auto") {
                    return Ok(OutputSizeRaw::Auto);
                }
                parse_size(v).map(OutputSizeRaw::Bytes).map_err(|e| {
                    E::custom(format!("{e} (or `auto` for the smallest size that fits)"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A digest or checksum-file URL. Digests made only of digits read as YAML numbers, which
/// would silently lose leading zeros, so numbers are refused with a hint to quote them.
pub(super) struct DigestText(pub String);

impl<'de> Deserialize<'de> for DigestText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DigestText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a hex digest or a URL, as a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DigestText, E> {
                Ok(DigestText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DigestText, E> {
                Err(E::custom(format!(
                    "`{v}` was read as a number; quote the digest (\"{v}\") so it stays text"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DigestText, E> {
                Err(E::invalid_type(de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// A closed set of names (`via`, `algo`, `kind`).
pub(super) trait Names: Sized + Copy + 'static {
    /// Accepted spellings; the first spelling of each value is the one shown in errors.
    const TABLE: &'static [(&'static str, Self)];
}

impl Names for Via {
    const TABLE: &'static [(&'static str, Via)] = &[
        ("direct", Via::Direct),
        ("base64", Via::Base64),
        ("zip", Via::Zip),
        ("tar", Via::Tar),
        ("gztar", Via::Gztar),
        ("bztar", Via::Bztar),
        ("xztar", Via::Xztar),
    ];
}

impl Names for Algo {
    // The dash-less spellings are how hashlib names them; accepting both costs nothing.
    const TABLE: &'static [(&'static str, Algo)] = &[
        ("sha-1", Algo::Sha1),
        ("sha-224", Algo::Sha224),
        ("sha-256", Algo::Sha256),
        ("sha-384", Algo::Sha384),
        ("sha-512", Algo::Sha512),
        ("md5", Algo::Md5),
        ("adler32", Algo::Adler32),
        ("sha1", Algo::Sha1),
        ("sha224", Algo::Sha224),
        ("sha256", Algo::Sha256),
        ("sha384", Algo::Sha384),
        ("sha512", Algo::Sha512),
    ];
}

impl Names for ChecksumKind {
    const TABLE: &'static [(&'static str, ChecksumKind)] =
        &[("digest", ChecksumKind::Digest), ("url", ChecksumKind::Url)];
}

fn expected_names<T: Names + PartialEq>() -> String {
    let mut shown: Vec<&str> = Vec::new();
    for (i, (name, value)) in T::TABLE.iter().enumerate() {
        if !T::TABLE[..i].iter().any(|(_, v)| v == value) {
            shown.push(name);
        }
    }
    shown.join(", ")
}

pub(super) struct Named<T>(pub T);

impl<'de, T: Names + PartialEq> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: Names + PartialEq> Visitor<'_> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "one of {}", expected_names::<T>())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Named<T>, E> {
                T::TABLE
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(v.trim()))
                    .map(|(_, value)| Named(*value))
                    .ok_or_else(|| {
                        E::custom(format!(
                            "unknown value `{v}`, expected one of {}",
                            expected_names::<T>()
                        ))
                    })
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Either a bare string or a mapping deserialized as `M`.
fn string_or_map<'de, D, M>(d: D, expecting: &'static str) -> Result<Result<String, M>, D::Error>
where
    D: Deserializer<'de>,
    M: Deserialize<'de>,
{
    struct V<M> {
        expecting: &'static str,
        marker: std::marker::PhantomData<M>,
    }
    impl<'de, M: Deserialize<'de>> Visitor<'de> for V<M> {
        type Value = Result<String, M>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Ok(v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            M::deserialize(MapAccessDeserializer::new(map)).map(Err)
        }
    }
    d.deserialize_any(V {
        expecting,
        marker: std::marker::PhantomData,
    })
}

impl<'de> Deserialize<'de> for RawBase {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expecting = "a version (`1.4.2`), a URL or a path, or a mapping with `source`";
        Ok(match string_or_map(d, expecting)? {
            Ok(s) => RawBase::Bare(s),
            Err(m) => RawBase::Map(m),
        })
    }
}

impl<'de> Deserialize<'de> for RawOci {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expecting = "an image reference (`ghcr.io/offspot/kiwix-serve:dev`) or a mapping \
                         with `ident`";
        Ok(match string_or_map(d, expecting)? {
            Ok(s) => RawOci::Bare(s),
            Err(m) => RawOci::Map(m),
        })
    }
}
