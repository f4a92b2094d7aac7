//! Given/When/Then scaffolding for every aggregate's tests: a history, one command, and what it must
//! decide. Every accepted decision is checked to survive the log codec, and the state after it to survive
//! a snapshot.
use crate::aggregate::{Aggregate, DomainError, DomainEvent};

pub(crate) struct Given<A>(pub A);

pub(crate) fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given(
        history
            .into_iter()
            .fold(A::default(), |state, e| state.apply(&e)),
    )
}

pub(crate) struct When<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Given<A> {
    /// The state after the history, for assertions on it.
    pub(crate) fn state(self) -> A {
        self.0
    }
}

impl<A: Aggregate + PartialEq> Given<A>
where
    A::Event: PartialEq,
{
    pub(crate) fn when(self, cmd: A::Command) -> When<A> {
        let result = self.0.decide(&cmd);
        if let Ok(events) = &result {
            events.iter().for_each(assert_round_trips);
        }
        When {
            state: self.0,
            result,
        }
    }
}

impl<A: Aggregate + PartialEq> When<A>
where
    A::Event: PartialEq,
{
    /// Expect exactly `expected`; returns the state after applying them (which must survive a snapshot).
    #[track_caller]
    pub(crate) fn then(self, expected: Vec<A::Event>) -> A {
        let events = self
            .result
            .unwrap_or_else(|e| panic!("expected events, got error {e:?}"));
        assert_eq!(events, expected);
        let after = events.iter().fold(self.state, |s, e| s.apply(e));
        let json = serde_json::to_string(&after).expect("state serializes");
        let back: A = serde_json::from_str(&json).expect("state deserializes");
        assert_eq!(back, after);
        after
    }

    /// Expect an accepted command, whatever it records; returns the state after applying its events.
    #[track_caller]
    pub(crate) fn then_ok(self) -> A {
        let events = match &self.result {
            Ok(events) => events.clone(),
            Err(e) => panic!("expected events, got error {e:?}"),
        };
        self.then(events)
    }

    #[track_caller]
    pub(crate) fn then_nothing(self) -> A {
        self.then(vec![])
    }

    #[track_caller]
    pub(crate) fn then_err(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    /// Expect a refusal that `matches` accepts.
    #[track_caller]
    pub(crate) fn then_err_where(self, matches: impl Fn(&DomainError) -> bool) {
        match &self.result {
            Err(e) if matches(e) => {}
            other => panic!("unexpected result {other:?}"),
        }
    }

    #[track_caller]
    pub(crate) fn then_invalid(self) {
        match self.result {
            Err(DomainError::Invalid(_)) => {}
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[track_caller]
    pub(crate) fn then_conflict(self) {
        match self.result {
            Err(DomainError::Conflict(_)) => {}
            other => panic!("expected Conflict, got {other:?}"),
        }
    }
}

/// An event decodes from its own encoding to itself.
#[track_caller]
pub(crate) fn assert_round_trips<E: DomainEvent + PartialEq>(e: &E) {
    let decoded = E::decode(e.event_type(), &e.encode()).expect("decodes");
    assert_eq!(&decoded, e);
}

/// One change to a command's variant, as a `fn(&mut Command)` for tables of invalid inputs:
/// `edit!(FlavorCommand::Create { ram_mb } => *ram_mb = 0)` leaves every other variant alone.
macro_rules! edit {
    ($variant:path { $($field:ident),+ } => $change:expr) => {
        |c| {
            if let $variant { $($field,)+ .. } = c {
                $change;
            }
        }
    };
}
pub(crate) use edit;
