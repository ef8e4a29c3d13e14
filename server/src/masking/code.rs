//! Which functions and operators the masking plan may take at their word.
//!
//! The lineage follows values through a call by what PostgreSQL's own function of that name
//! does: `upper(x)` derives from `x`, `count(x)` reveals nothing, `md5(x)` is a hash. A
//! function of the database's own (`CREATE FUNCTION f() … SELECT string_agg(name, …) FROM
//! customers`) can return anything it reads, and PostgreSQL resolves a call to one wherever
//! its argument types fit better than the built-in's — whatever schema it is in
//! (`public.count(text)` beats `pg_catalog.count("any")` for a text argument). So a call is
//! trusted only when it must reach PostgreSQL's own code: a built-in name the database does not
//! define again outside `pg_catalog` (or one written `pg_catalog.name`), a grammar construct
//! (`COALESCE`, `CURRENT_USER`), or one of the hash functions of an extension (pgcrypto's
//! `digest`, `hmac`), which the lineage judges as hashes. Anything else makes the statement's
//! outputs of unknown origin (masked whole), like a relation the catalog does not know.
//!
//! Architecture invariant: pure; what the database defines is read with the catalog.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Names PostgreSQL's grammar turns into its own constructs, whatever functions of that name
/// exist: sqlparser shows them as calls, PostgreSQL never looks them up.
const GRAMMAR: &[&str] = &[
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "current_user",
    "current_role",
    "session_user",
    "system_user",
    "user",
    "current_catalog",
    "current_schema",
    "grouping",
    "row",
    "trim",
    "extract",
    "position",
    "substring",
    "overlay",
    "normalize",
    "xmlelement",
    "xmlforest",
    "xmlconcat",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmlexists",
];

/// Hash functions an extension provides (pgcrypto): trusted as hashes (see `lineage`).
const EXTENSION_HASHES: &[&str] = &["digest", "hmac"];

/// What the database defines besides PostgreSQL's own code, as the last catalog read found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCode {
    /// Names of functions (aggregates, procedures) outside `pg_catalog` and
    /// `information_schema` that no extension installed, temporary ones included.
    pub functions: BTreeSet<String>,
    /// Names of functions an extension installed.
    pub extension_functions: BTreeSet<String>,
    /// Names of operators outside `pg_catalog` that no extension installed.
    pub operators: BTreeSet<String>,
    /// Names of relations with triggers of their own: a write to one runs code.
    #[serde(default)]
    pub triggered: BTreeSet<String>,
}

/// Whether a call of `name` (as PostgreSQL folds it, qualified as written) must reach
/// PostgreSQL's own function. `code` is `None` when what the database defines is not known
/// (not read yet, or code may have been created since): only grammar constructs pass then.
pub fn trusts_function(code: Option<&UserCode>, name: &str) -> bool {
    let builtin = |n: &str| crate::policy::functions::builtin(n).is_some();
    match name.rsplit_once('.') {
        Some(("pg_catalog", base)) => builtin(base),
        Some(("information_schema", _)) => builtin(name),
        Some(_) => false,
        None if GRAMMAR.contains(&name) => true,
        None => match code {
            None => false,
            Some(c) if c.functions.contains(name) => false,
            Some(c) => {
                builtin(name)
                    || (EXTENSION_HASHES.contains(&name) && c.extension_functions.contains(name))
            }
        },
    }
}

/// Whether an operator (as sqlparser writes it: `+`, `||`, `OPERATOR(public.+)`) must be
/// PostgreSQL's own or an extension's.
pub fn trusts_operator(code: Option<&UserCode>, op: &str) -> bool {
    if let Some(inner) = op.strip_prefix("OPERATOR(") {
        return inner.starts_with("pg_catalog.");
    }
    code.is_some_and(|c| !c.operators.contains(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(functions: &[&str], extension: &[&str], operators: &[&str]) -> UserCode {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        UserCode {
            functions: set(functions),
            extension_functions: set(extension),
            operators: set(operators),
            triggered: BTreeSet::new(),
        }
    }

    #[test]
    fn built_ins_are_trusted_unless_the_database_defines_the_name_again() {
        let none = code(&[], &[], &[]);
        for f in [
            "lower",
            "count",
            "md5",
            "row_to_json",
            "pg_catalog.count",
            "coalesce",
        ] {
            assert!(trusts_function(Some(&none), f), "{f}");
        }
        let overloaded = code(&["count", "leak"], &[], &[]);
        assert!(!trusts_function(Some(&overloaded), "count"));
        assert!(trusts_function(Some(&overloaded), "pg_catalog.count"));
        assert!(!trusts_function(Some(&overloaded), "leak"));
        // Qualified with any other schema: never PostgreSQL's own.
        for f in ["pg_temp.count", "public.lower", "public.count"] {
            assert!(!trusts_function(Some(&none), f), "{f}");
        }
        // A name that is no built-in and not read yet (created since the last read).
        assert!(!trusts_function(Some(&none), "made_since"));
        // Grammar constructs are never looked up, even where the name is defined.
        assert!(trusts_function(
            Some(&code(&["coalesce"], &[], &[])),
            "coalesce"
        ));
    }

    #[test]
    fn nothing_but_grammar_is_trusted_while_the_code_is_unknown() {
        assert!(!trusts_function(None, "lower"));
        assert!(trusts_function(None, "current_user"));
        assert!(!trusts_operator(None, "+"));
    }

    #[test]
    fn extension_hashes_pass_and_other_extension_functions_do_not() {
        let c = code(&[], &["digest", "dblink"], &[]);
        assert!(trusts_function(Some(&c), "digest"));
        assert!(!trusts_function(Some(&c), "dblink"));
        assert!(!trusts_function(Some(&code(&[], &[], &[])), "digest"));
    }

    #[test]
    fn operators_defined_by_the_database_are_not_trusted() {
        let c = code(&[], &[], &["|||", "+"]);
        assert!(!trusts_operator(Some(&c), "+"));
        assert!(!trusts_operator(Some(&c), "|||"));
        assert!(trusts_operator(Some(&c), "||"));
        assert!(!trusts_operator(Some(&c), "OPERATOR(public.+)"));
        assert!(trusts_operator(Some(&c), "OPERATOR(pg_catalog.+)"));
    }
}
