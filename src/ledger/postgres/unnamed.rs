//! Every statement the PostgreSQL ledger sends is unnamed: parsed, bound and run in one go
//! (the extended protocol's unnamed statement, `query_typed`), with each parameter's type
//! said by the Rust type that carries it. Named prepared statements are session state: behind
//! PgBouncer in transaction mode (the usual answer to too many clients) two clients' `s4`
//! meet on one server connection ("prepared statement already exists", or one client's
//! parameters bound to another's statement). Unnamed statements live until the next one on
//! the same connection, inside the same transaction, so nothing outlives a transaction.

use postgres::types::{ToSql, Type};

/// A value sent as a parameter, with the PostgreSQL type it is sent as.
pub trait Param: ToSql + Sync {
    fn pg_type() -> Type;
}

macro_rules! param {
    ($($t:ty => $pg:expr),* $(,)?) => {
        $(impl Param for $t {
            fn pg_type() -> Type {
                $pg
            }
        })*
    };
}

param! {
    bool => Type::BOOL,
    i32 => Type::INT4,
    i64 => Type::INT8,
    f64 => Type::FLOAT8,
    String => Type::TEXT,
    &str => Type::TEXT,
    &String => Type::TEXT,
    Vec<String> => Type::TEXT_ARRAY,
    Vec<&str> => Type::TEXT_ARRAY,
    Vec<&String> => Type::TEXT_ARRAY,
    Vec<f64> => Type::FLOAT8_ARRAY,
    Vec<i64> => Type::INT8_ARRAY,
    Vec<Option<i32>> => Type::INT4_ARRAY,
    Vec<Option<f64>> => Type::FLOAT8_ARRAY,
}

impl<T: Param> Param for Option<T> {
    fn pg_type() -> Type {
        T::pg_type()
    }
}

/// One typed parameter of an unnamed statement.
pub type Arg<'a> = (&'a (dyn ToSql + Sync), Type);

/// `v` as a parameter of its own type.
pub fn arg<T: Param>(v: &T) -> Arg<'_> {
    (v, T::pg_type())
}

/// Parameters built at run time (filters): each value boxed with its type.
#[derive(Default)]
pub struct Args(Vec<(Box<dyn ToSql + Sync>, Type)>);

impl Args {
    /// Adds `v`; returns its placeholder number (`$n`).
    pub fn push<T: Param + 'static>(&mut self, v: T) -> usize {
        self.0.push((Box::new(v), T::pg_type()));
        self.0.len()
    }

    /// Adds the values of `more` after these, renumbered by the caller's SQL.
    pub fn typed(&self) -> Vec<Arg<'_>> {
        self.0
            .iter()
            .map(|(v, t)| (v.as_ref(), t.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
