//! The fast-path FunctionCall message (`F`): a call of a function by OID, with no SQL text.
//!
//! It can call anything `SELECT` can (`set_config('role', …)`, `pg_read_file`,
//! `pg_terminate_backend`), so it gets a decision like any statement. The gateway decides it as
//! the `SELECT` it stands for, `SELECT pg_catalog.fn($1, …)`, which the policy, the approval hold
//! and the audit then treat like any other statement.
//!
//! Only built-in functions can be named that way: their OIDs are fixed in PostgreSQL's catalog
//! source (below 10000) and the same in every supported version. Drivers use the interface for
//! the large-object API (PgJDBC's `LargeObjectManager`), so those functions are the ones
//! accepted; any other OID is refused with a message that says to call the function with
//! `SELECT`, which the gateway can check.
//!
//! Architecture invariant: pure; no I/O.

use super::error::SqlState;

/// Large-object functions by their fixed OIDs, with their arity.
const VETTED: &[(u32, &str, usize)] = &[
    (715, "lo_create", 1),
    (952, "lo_open", 2),
    (953, "lo_close", 1),
    (954, "loread", 2),
    (955, "lowrite", 2),
    (956, "lo_lseek", 3),
    (957, "lo_creat", 1),
    (958, "lo_tell", 1),
    (964, "lo_unlink", 1),
    (1004, "lo_truncate", 2),
    (3170, "lo_lseek64", 3),
    (3171, "lo_tell64", 1),
    (3172, "lo_truncate64", 2),
];

/// Why a FunctionCall is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallRefused {
    #[error("the fast-path function call of function OID {0} is refused by the gateway")]
    NotVetted(u32),
    #[error("the fast-path function call of {name} passes {got} arguments, not {expected}")]
    Arity {
        name: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("malformed FunctionCall message")]
    Malformed,
}

impl CallRefused {
    pub fn sqlstate(&self) -> SqlState {
        match self {
            CallRefused::NotVetted(_) => SqlState::InsufficientPrivilege,
            CallRefused::Arity { .. } => SqlState::UndefinedFunction,
            CallRefused::Malformed => SqlState::ProtocolViolation,
        }
    }

    pub const HINT: &'static str = "Call the function with SELECT (e.g. SELECT fn($1)), so the gateway can check it; only the large-object functions may be called through the fast-path interface.";
}

/// The statement a FunctionCall frame (tag and length included) stands for.
pub fn statement(frame: &[u8]) -> Result<String, CallRefused> {
    let mut r = super::wire::Reader::body(frame);
    let oid = r.u32().ok_or(CallRefused::Malformed)?;
    let nformats = r.count().ok_or(CallRefused::Malformed)?;
    r.bytes(2 * nformats).ok_or(CallRefused::Malformed)?;
    let nargs = r.count().ok_or(CallRefused::Malformed)?;
    let &(_, name, arity) = VETTED
        .iter()
        .find(|(o, _, _)| *o == oid)
        .ok_or(CallRefused::NotVetted(oid))?;
    if nargs != arity {
        return Err(CallRefused::Arity {
            name,
            got: nargs,
            expected: arity,
        });
    }
    let params: Vec<String> = (1..=nargs).map(|i| format!("${i}")).collect();
    Ok(format!("SELECT pg_catalog.{name}({})", params.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(oid: u32, args: &[&[u8]]) -> Vec<u8> {
        let mut body = oid.to_be_bytes().to_vec();
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&(args.len() as i16).to_be_bytes());
        for a in args {
            body.extend_from_slice(&(a.len() as i32).to_be_bytes());
            body.extend_from_slice(a);
        }
        body.extend_from_slice(&1i16.to_be_bytes());
        let mut f = vec![b'F'];
        f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        f.extend(body);
        f
    }

    #[test]
    fn large_object_calls_become_the_select_they_stand_for() {
        assert_eq!(
            statement(&call(952, &[&[0, 0, 0, 1], &[0, 4, 0, 0]])),
            Ok("SELECT pg_catalog.lo_open($1, $2)".into())
        );
        assert_eq!(
            statement(&call(964, &[&[0, 0, 0, 1]])),
            Ok("SELECT pg_catalog.lo_unlink($1)".into())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        // set_config, pg_terminate_backend, pg_read_file: not vetted.
        for oid in [2078, 2096, 3826, 16384] {
            assert_eq!(statement(&call(oid, &[])), Err(CallRefused::NotVetted(oid)));
        }
        assert!(matches!(
            statement(&call(952, &[])),
            Err(CallRefused::Arity { .. })
        ));
        assert_eq!(statement(b"F\0\0\0\x06\0"), Err(CallRefused::Malformed));
        assert_eq!(
            statement(&call(952, &[])[..12]),
            Err(CallRefused::Malformed)
        );
    }
}
