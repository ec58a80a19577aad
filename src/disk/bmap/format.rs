//! The bmap XML format (bmaptool 1.x and 2.0): writing 2.0, and a strict reader for 1.0–2.x.
//!
//! Written by hand rather than through a crate: the format is a dozen fixed lines. The one Rust crate
//! for it (`bmap-parser`, collabora/bmap-rs) reads sha256 bmaps but does not write them, does not check
//! BmapFileChecksum and pulls an async stack and a second `digest` major version.

use super::xml::{self, Element};
use super::{Bmap, BmapError, Range};
use crate::digest::{self, Algo};

/// Format version we write; bmaptool 3.x reads it.
const VERSION: &str = "2.0";
const HEX_ZERO_256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(super) fn to_xml(bmap: &Bmap) -> String {
    let blocks = bmap.blocks_count();
    let mapped: u64 = bmap.ranges.iter().map(|r| r.last - r.first + 1).sum();
    let percent = if blocks == 0 {
        0.0
    } else {
        mapped as f64 * 100.0 / blocks as f64
    };
    let mut out = String::with_capacity(1024 + bmap.ranges.len() * 100);
    out.push_str("<?xml version=\"1.0\" ?>\n");
    out.push_str(
        "<!-- Block map (bmap) of an image file: the list of block ranges that hold data.\n",
    );
    out.push_str(
        "     Only these need to be written to the target (bmaptool copy IMAGE DEVICE);\n",
    );
    out.push_str("     the other blocks read as zeroes. Written by image-creator. -->\n\n");
    out.push_str(&format!("<bmap version=\"{VERSION}\">\n"));
    out.push_str("    <!-- Image size in bytes -->\n");
    out.push_str(&format!(
        "    <ImageSize> {} </ImageSize>\n\n",
        bmap.image_size
    ));
    out.push_str("    <!-- Size of a block in bytes -->\n");
    out.push_str(&format!(
        "    <BlockSize> {} </BlockSize>\n\n",
        bmap.block_size
    ));
    out.push_str("    <!-- Count of blocks in the image file -->\n");
    out.push_str(&format!("    <BlocksCount> {blocks} </BlocksCount>\n\n"));
    out.push_str(&format!(
        "    <!-- Count of mapped blocks: {percent:.1}% -->\n"
    ));
    out.push_str(&format!(
        "    <MappedBlocksCount> {mapped} </MappedBlocksCount>\n\n"
    ));
    out.push_str("    <!-- Type of checksum used in this file -->\n");
    out.push_str("    <ChecksumType> sha256 </ChecksumType>\n\n");
    out.push_str("    <!-- The checksum of this bmap file, computed with this value set to all ASCII \"0\". -->\n");
    out.push_str("    <BmapFileChecksum> ");
    let checksum_at = out.len();
    out.push_str(HEX_ZERO_256);
    out.push_str(" </BmapFileChecksum>\n\n");
    out.push_str("    <!-- Block ranges (first-last, inclusive); 'chksum' is the sha256 of the range's bytes. -->\n");
    out.push_str("    <BlockMap>\n");
    for r in &bmap.ranges {
        let chksum = r
            .sha256
            .as_ref()
            .map(|c| format!(" chksum=\"{c}\""))
            .unwrap_or_default();
        if r.first == r.last {
            out.push_str(&format!("        <Range{chksum}> {} </Range>\n", r.first));
        } else {
            out.push_str(&format!(
                "        <Range{chksum}> {}-{} </Range>\n",
                r.first, r.last
            ));
        }
    }
    out.push_str("    </BlockMap>\n</bmap>\n");
    let sum = digest::sha256_hex(out.as_bytes());
    out.replace_range(checksum_at..checksum_at + HEX_ZERO_256.len(), &sum);
    out
}

/// Field names that differ between format versions.
struct Flavour {
    hash: Option<Algo>,
    range_attr: &'static str,
    file_checksum: &'static str,
}

struct Ctx<'a> {
    doc: &'a str,
    origin: &'a str,
}

impl Ctx<'_> {
    fn bad(&self, offset: usize, expected: impl Into<String>) -> BmapError {
        let line = self.doc[..offset.min(self.doc.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1;
        BmapError::Parse {
            origin: self.origin.to_string(),
            line,
            expected: expected.into(),
        }
    }

    /// The single child `name` of `parent` (bmaptool reads the first; a duplicate is ambiguous, refused).
    fn child<'e>(&self, parent: &'e Element, name: &str) -> Result<Option<&'e Element>, BmapError> {
        let mut found = parent.children.iter().filter(|c| c.name == name);
        let first = found.next();
        if let Some(dup) = found.next() {
            return Err(self.bad(
                dup.offset,
                format!("a single <{name}> in <{}>", parent.name),
            ));
        }
        Ok(first)
    }

    fn required<'e>(&self, parent: &'e Element, name: &str) -> Result<&'e Element, BmapError> {
        self.child(parent, name)?.ok_or_else(|| {
            self.bad(
                parent.offset,
                format!("a <{name}> element in <{}>", parent.name),
            )
        })
    }

    fn number(&self, parent: &Element, name: &str) -> Result<u64, BmapError> {
        let e = self.required(parent, name)?;
        e.text
            .trim()
            .parse()
            .map_err(|_| self.bad(e.offset, format!("a non-negative integer in <{name}>")))
    }

    fn hex(&self, value: &str, hash: Algo, offset: usize, what: &str) -> Result<String, BmapError> {
        let v = value.trim();
        if v.len() != hash.hex_len() || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.bad(
                offset,
                format!("{what}: {} hexadecimal digits", hash.hex_len()),
            ));
        }
        Ok(v.to_ascii_lowercase())
    }
}

fn flavour(ctx: &Ctx, root: &Element) -> Result<Flavour, BmapError> {
    let version = root
        .attr("version")
        .ok_or_else(|| ctx.bad(root.offset, "a version attribute on <bmap>"))?;
    let parsed = version
        .trim()
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let none = Flavour {
        hash: None,
        range_attr: "",
        file_checksum: "",
    };
    match parsed {
        // 1.4 is 2.0 released under a wrong number (see bmaptool's BmapCopy).
        Some((2, _)) | Some((1, 4)) => {
            let e = ctx.required(root, "ChecksumType")?;
            let name = e.text.trim();
            let hash = Algo::from_hashlib(name).ok_or_else(|| {
                ctx.bad(
                    e.offset,
                    format!("a <ChecksumType> among md5, sha1, sha224, sha256, sha384, sha512 (not {name:?})"),
                )
            })?;
            Ok(Flavour {
                hash: Some(hash),
                range_attr: "chksum",
                file_checksum: "BmapFileChecksum",
            })
        }
        Some((1, 3)) => Ok(Flavour {
            hash: Some(Algo::Sha1),
            range_attr: "sha1",
            file_checksum: "BmapFileSHA1",
        }),
        // Before 1.3 bmap files carried no checksums.
        Some((1, _)) => Ok(none),
        _ => Err(ctx.bad(
            root.offset,
            format!("a bmap format version 1.x or 2.x (not {version:?})"),
        )),
    }
}

/// Recomputes the file checksum over the raw document with the stored value replaced by ASCII zeroes.
fn verify_file_checksum(ctx: &Ctx, e: &Element, hash: Algo) -> Result<(), BmapError> {
    let stored = ctx.hex(&e.text, hash, e.offset, &format!("<{}>", e.name))?;
    // The value must sit in one text node so it can be found in the raw bytes.
    let at = e
        .text_spans
        .iter()
        .find_map(|&(s, end)| {
            let raw = &ctx.doc[s..end];
            let lead = raw.len() - raw.trim_start().len();
            (raw.trim().eq_ignore_ascii_case(&stored)).then_some(s + lead)
        })
        .ok_or_else(|| ctx.bad(e.offset, format!("<{}> as one plain text value", e.name)))?;
    let mut zeroed = ctx.doc.as_bytes().to_vec();
    zeroed[at..at + stored.len()].fill(b'0');
    let computed = digest::digest(hash, &zeroed);
    if computed != stored {
        return Err(BmapError::ChecksumMismatch {
            origin: ctx.origin.to_string(),
            stored,
            computed,
        });
    }
    Ok(())
}

pub(super) fn parse(doc: &str, origin: &str) -> Result<Bmap, BmapError> {
    let ctx = Ctx { doc, origin };
    let root = xml::parse(doc).map_err(|e| ctx.bad(e.offset, e.expected))?;
    if root.name != "bmap" {
        return Err(ctx.bad(
            root.offset,
            format!("a <bmap> root element (not <{}>)", root.name),
        ));
    }
    let fl = flavour(&ctx, &root)?;
    if let Some(hash) = fl.hash {
        let e = ctx.required(&root, fl.file_checksum)?;
        verify_file_checksum(&ctx, e, hash)?;
    }
    let image_size = ctx.number(&root, "ImageSize")?;
    let block_size = ctx.number(&root, "BlockSize")?;
    let blocks_el = ctx.required(&root, "BlocksCount")?;
    let blocks = ctx.number(&root, "BlocksCount")?;
    let mapped_el = ctx.required(&root, "MappedBlocksCount")?;
    let mapped = ctx.number(&root, "MappedBlocksCount")?;
    if block_size == 0 {
        let e = ctx.required(&root, "BlockSize")?;
        return Err(ctx.bad(e.offset, "a <BlockSize> greater than 0"));
    }
    let expect_blocks = image_size.div_ceil(block_size);
    if blocks != expect_blocks {
        return Err(ctx.bad(
            blocks_el.offset,
            format!("<BlocksCount> {expect_blocks} for an image of {image_size} bytes in blocks of {block_size}"),
        ));
    }
    if blocks.checked_mul(block_size).is_none() {
        return Err(ctx.bad(
            blocks_el.offset,
            "an image size that fits in 64 bits once rounded up to blocks",
        ));
    }
    let map = ctx.required(&root, "BlockMap")?;
    let mut ranges: Vec<Range> = Vec::new();
    let mut count = 0u64;
    for e in &map.children {
        if e.name != "Range" {
            return Err(ctx.bad(
                e.offset,
                format!("only <Range> elements in <BlockMap> (not <{}>)", e.name),
            ));
        }
        let text = e.text.trim();
        let num = |s: &str| s.trim().parse::<u64>().ok();
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (num(a), num(b)),
            None => (num(text), num(text)),
        };
        let (Some(first), Some(last)) = (first, last) else {
            return Err(ctx.bad(
                e.offset,
                format!("a block range \"N\" or \"FIRST-LAST\" (not {text:?})"),
            ));
        };
        if first > last || last >= blocks {
            return Err(ctx.bad(
                e.offset,
                format!("a range with first <= last < BlocksCount ({blocks}), not {first}-{last}"),
            ));
        }
        if ranges.last().is_some_and(|p| first <= p.last) {
            return Err(ctx.bad(e.offset, "ranges in increasing order without overlap"));
        }
        let sum = match (fl.hash, e.attr(fl.range_attr)) {
            (Some(hash), Some(v)) => Some(ctx.hex(
                v,
                hash,
                e.offset,
                &format!("the {} attribute", fl.range_attr),
            )?)
            .filter(|_| hash == Algo::Sha256),
            _ => None,
        };
        count += last - first + 1;
        ranges.push(Range {
            first,
            last,
            sha256: sum,
        });
    }
    if count != mapped {
        return Err(ctx.bad(
            mapped_el.offset,
            format!(
                "<MappedBlocksCount> equal to the blocks in <BlockMap> ({count}), not {mapped}"
            ),
        ));
    }
    Ok(Bmap {
        image_size,
        block_size,
        ranges,
    })
}
