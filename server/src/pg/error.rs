//! Errors as the database client sees them: a SQLSTATE, a severity and a message that says what
//! happened and what to do next, encoded as a PostgreSQL `ErrorResponse`.

use bytes::BytesMut;
use pgwire::messages::response::{ErrorResponse, NoticeResponse};

/// SQLSTATE codes the gateway itself raises.
pub mod sqlstate {
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    pub const UNABLE_TO_CONNECT: &str = "08001";
    pub const REJECTED_CONNECTION: &str = "08004";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const IDLE_SESSION_TIMEOUT: &str = "57P05";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const INTERNAL_ERROR: &str = "XX000";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

/// An error to report to the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PgError {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    pub fn fatal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn fields(&self) -> Vec<(u8, String)> {
        let sev = match self.severity {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        };
        let mut f = vec![
            (b'S', sev.to_string()),
            (b'V', sev.to_string()),
            (b'C', self.code.to_string()),
            (b'M', self.message.clone()),
        ];
        if let Some(d) = &self.detail {
            f.push((b'D', d.clone()));
        }
        if let Some(h) = &self.hint {
            f.push((b'H', h.clone()));
        }
        f
    }

    /// Appends this error as an `ErrorResponse` message.
    pub fn encode(&self, out: &mut BytesMut) {
        super::codec::encode(out, &ErrorResponse::new(self.fields()));
    }

    pub fn to_bytes(&self) -> BytesMut {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b
    }
}

/// Appends a `NoticeResponse` with the given message.
pub fn encode_notice(out: &mut BytesMut, message: &str) {
    let fields = vec![
        (b'S', "NOTICE".to_string()),
        (b'V', "NOTICE".to_string()),
        (b'C', "00000".to_string()),
        (b'M', message.to_string()),
    ];
    super::codec::encode(out, &NoticeResponse::new(fields));
}
