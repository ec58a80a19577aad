//! The delivery modes a file can name, and which archive format each one means.

/// How a config file reaches the image (the config's `via:`): as-is, base64-decoded, or expanded
/// from an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// Written as-is.
    #[default]
    Direct,
    Base64,
    Zip,
    Tar,
    Gztar,
    Bztar,
    Xztar,
}

impl Via {
    pub fn is_archive(self) -> bool {
        !matches!(self, Via::Direct | Via::Base64)
    }

    pub fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Base64 => "base64",
            Via::Zip => "zip",
            Via::Tar => "tar",
            Via::Gztar => "gztar",
            Via::Bztar => "bztar",
            Via::Xztar => "xztar",
        }
    }
}
