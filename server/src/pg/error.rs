//! Errors as the database client sees them: a SQLSTATE, a severity and a message that says what
//! happened and what to do next, encoded as a PostgreSQL `ErrorResponse`.

use bytes::BytesMut;
use pgwire::messages::response::{ErrorResponse, NoticeResponse};

/// The SQLSTATEs the gateway itself raises, by PostgreSQL's names (Appendix A). Every error
/// the gateway sends a client carries one of these, so a client can act on the code alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlState {
    /// `00000`: a notice.
    SuccessfulCompletion,
    /// `08P01`.
    ProtocolViolation,
    /// `08006`.
    ConnectionFailure,
    /// `08001`.
    UnableToConnect,
    /// `08004`.
    RejectedConnection,
    /// `28000`.
    InvalidAuthorization,
    /// `28P01`.
    InvalidPassword,
    /// `54000`.
    ProgramLimitExceeded,
    /// `53300`.
    TooManyConnections,
    /// `0A000`.
    FeatureNotSupported,
    /// `57P05`.
    IdleSessionTimeout,
    /// `57P01`.
    AdminShutdown,
    /// `XX000`.
    InternalError,
    /// `42501`: a guardrail, grant or masking refusal.
    InsufficientPrivilege,
    /// `42883`.
    UndefinedFunction,
    /// `22021`: text not valid in the session's encoding.
    CharacterNotInRepertoire,
    /// `34000`: an unknown portal.
    InvalidCursorName,
    /// `26000`: an unknown prepared statement.
    InvalidSqlStatementName,
    /// `53100`.
    DiskFull,
    /// `58030`.
    IoError,
}

impl SqlState {
    /// The five-character code.
    pub const fn code(self) -> &'static str {
        match self {
            SqlState::SuccessfulCompletion => "00000",
            SqlState::ProtocolViolation => "08P01",
            SqlState::ConnectionFailure => "08006",
            SqlState::UnableToConnect => "08001",
            SqlState::RejectedConnection => "08004",
            SqlState::InvalidAuthorization => "28000",
            SqlState::InvalidPassword => "28P01",
            SqlState::ProgramLimitExceeded => "54000",
            SqlState::TooManyConnections => "53300",
            SqlState::FeatureNotSupported => "0A000",
            SqlState::IdleSessionTimeout => "57P05",
            SqlState::AdminShutdown => "57P01",
            SqlState::InternalError => "XX000",
            SqlState::InsufficientPrivilege => "42501",
            SqlState::UndefinedFunction => "42883",
            SqlState::CharacterNotInRepertoire => "22021",
            SqlState::InvalidCursorName => "34000",
            SqlState::InvalidSqlStatementName => "26000",
            SqlState::DiskFull => "53100",
            SqlState::IoError => "58030",
        }
    }
}

impl std::fmt::Display for SqlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
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
    pub code: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl PgError {
    pub fn fatal(code: SqlState, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn error(code: SqlState, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    /// A refusal of one statement: the session goes on.
    pub fn refusal(code: SqlState, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::error(code, message).with_hint(hint)
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
            (b'C', self.code.code().to_string()),
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
        (b'C', SqlState::SuccessfulCompletion.code().to_string()),
        (b'M', message.to_string()),
    ];
    super::codec::encode(out, &NoticeResponse::new(fields));
}
