//! The states the store keeps as text, each mapped to its database text in one place. Statements
//! that name a state write it into their text with [`Sql::sql`] rather than binding it, so
//! PostgreSQL plans them for that value (the `outbox_work` index leads with the state).

use std::fmt;

use hub_core::{IysState, Mode};
use iys::ConsentStatus;
use serde::Serialize;

use crate::reconcile::DayStatus;

/// An outbox row's state.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(
    serialize_all = "snake_case",
    parse_err_ty = hub_core::InvalidValue,
    parse_err_fn = invalid_state
)]
pub enum OutboxState {
    Pending,
    AwaitingResult,
    Held,
    Done,
    Failed,
    Superseded,
}

impl OutboxState {
    pub const ALL: [OutboxState; 6] = [
        OutboxState::Pending,
        OutboxState::AwaitingResult,
        OutboxState::Held,
        OutboxState::Done,
        OutboxState::Failed,
        OutboxState::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn invalid_state(s: &str) -> hub_core::InvalidValue {
    hub_core::InvalidValue {
        field: "state",
        value: s.to_owned(),
        expected: "pending, awaiting_result, held, done, failed or superseded",
    }
}

impl OutboxState {
    /// The row a ledger decision asks for (`Pending` or `Held`, see `hub_core::Decision`).
    pub fn for_target(target: IysState) -> OutboxState {
        match target {
            IysState::Held => OutboxState::Held,
            _ => OutboxState::Pending,
        }
    }

    /// Not settled yet: waiting, held back, or sent and awaiting a bulk result.
    pub(crate) const OPEN: [OutboxState; 3] = [
        OutboxState::Pending,
        OutboxState::Held,
        OutboxState::AwaitingResult,
    ];
}

/// A value as a quoted SQL literal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Literal(&'static str);

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The texts are the enums' own: no quote to escape.
        write!(f, "'{}'", self.0)
    }
}

/// A value stored as text, written into a statement.
pub(crate) trait Sql: Copy {
    fn text(self) -> &'static str;

    fn sql(self) -> Literal {
        Literal(self.text())
    }
}

/// `('a', 'b')`: the values as an SQL list.
pub(crate) fn sql_list<T: Sql>(values: &[T]) -> String {
    let items: Vec<String> = values.iter().map(|v| v.sql().to_string()).collect();
    format!("({})", items.join(", "))
}

impl Sql for OutboxState {
    fn text(self) -> &'static str {
        self.as_str()
    }
}

impl Sql for IysState {
    fn text(self) -> &'static str {
        self.as_str()
    }
}

impl Sql for Mode {
    fn text(self) -> &'static str {
        self.as_str()
    }
}

impl Sql for ConsentStatus {
    fn text(self) -> &'static str {
        self.as_str()
    }
}

impl Sql for DayStatus {
    fn text(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_as_written() {
        use strum::VariantNames;
        for s in OutboxState::ALL {
            assert_eq!(s.as_str().parse::<OutboxState>(), Ok(s));
        }
        let err = "x".parse::<OutboxState>().unwrap_err();
        assert_eq!(err.expected, hub_core::one_of(OutboxState::VARIANTS));
        for d in DayStatus::ALL {
            assert_eq!(d.as_str().parse::<DayStatus>(), Ok(d));
        }
        let err = "x".parse::<DayStatus>().unwrap_err();
        assert_eq!(err.expected, hub_core::one_of(DayStatus::VARIANTS));
        assert_eq!(
            sql_list(&OutboxState::OPEN),
            "('pending', 'held', 'awaiting_result')"
        );
    }
}
