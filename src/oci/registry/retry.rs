//! How registry transport failures are classified for the shared retry engine (`crate::net::retry`).

use crate::oci::error::OciError;

/// A failed registry attempt. Boxed: `OciError` is large and this travels in every `Result`.
pub(super) type Failed = crate::net::retry::Failed<Box<OciError>>;

/// `?` on a plain `OciError` inside an attempt makes it permanent (boxed).
impl From<OciError> for Failed {
    fn from(e: OciError) -> Self {
        Failed::Fatal(Box::new(e))
    }
}

/// The retry engine builds `Cancelled` with the reference when the caller's token fires.
impl crate::net::retry::Retryable for OciError {
    fn cancelled(what: &str) -> Self {
        OciError::Cancelled {
            reference: what.to_string(),
        }
    }

    fn is_cancelled(&self) -> bool {
        OciError::is_cancelled(self)
    }
}

/// A transport error: connection failures say the registry is down, the rest interrupted a transfer.
pub(super) fn send_failure(registry: &str, url: &str, cause: reqwest::Error) -> Failed {
    let err = if cause.is_connect() {
        OciError::RegistryDown {
            registry: registry.to_string(),
            url: url.to_string(),
            cause,
        }
    } else {
        OciError::Transfer {
            url: url.to_string(),
            done: 0,
            cause,
        }
    };
    Failed::Retry {
        err: Box::new(err),
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::retry::Retryable;

    #[test]
    fn cancelled_names_the_reference() {
        let e = Box::<OciError>::cancelled("r");
        assert!(e.is_cancelled());
        assert!(matches!(*e, OciError::Cancelled { ref reference } if reference == "r"));
    }
}
