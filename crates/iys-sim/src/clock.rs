//! The simulator's clock: real time, shifted, frozen or advanced by the control API, so tests
//! can cross IYS's hour and day boundaries without waiting.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Default)]
pub struct SimClock {
    state: Mutex<ClockState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ClockState {
    offset: SignedDuration,
    frozen: Option<Timestamp>,
}

/// What the control API shows of the clock.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockView {
    pub now: Timestamp,
    pub offset_seconds: i64,
    pub frozen: bool,
}

impl SimClock {
    pub fn now(&self) -> Timestamp {
        let s = *self.state.lock().expect("clock lock");
        s.frozen
            .unwrap_or_else(|| shift(Timestamp::now(), s.offset))
    }

    pub fn view(&self) -> ClockView {
        let s = *self.state.lock().expect("clock lock");
        let now = s
            .frozen
            .unwrap_or_else(|| shift(Timestamp::now(), s.offset));
        ClockView {
            now,
            offset_seconds: now.duration_since(Timestamp::now()).as_secs(),
            frozen: s.frozen.is_some(),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: SignedDuration) {
        let mut s = self.state.lock().expect("clock lock");
        match &mut s.frozen {
            Some(t) => *t = shift(*t, by),
            None => s.offset += by,
        }
    }

    /// Sets the current time; a frozen clock stays frozen there.
    pub fn set(&self, to: Timestamp) {
        let mut s = self.state.lock().expect("clock lock");
        match &mut s.frozen {
            Some(t) => *t = to,
            None => s.offset = to.duration_since(Timestamp::now()),
        }
    }

    pub fn freeze(&self) {
        let mut s = self.state.lock().expect("clock lock");
        if s.frozen.is_none() {
            s.frozen = Some(shift(Timestamp::now(), s.offset));
        }
    }

    /// Lets time run again from where it was frozen.
    pub fn unfreeze(&self) {
        let mut s = self.state.lock().expect("clock lock");
        if let Some(t) = s.frozen.take() {
            s.offset = t.duration_since(Timestamp::now());
        }
    }

    pub fn reset(&self) {
        *self.state.lock().expect("clock lock") = ClockState::default();
    }
}

fn shift(t: Timestamp, by: SignedDuration) -> Timestamp {
    t.saturating_add(by).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clocks_move_only_when_told() {
        let c = SimClock::default();
        c.freeze();
        let t0 = c.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(c.now(), t0);
        c.advance(SignedDuration::from_hours(2));
        assert_eq!(c.now(), shift(t0, SignedDuration::from_hours(2)));
        c.unfreeze();
        assert!(c.now() >= shift(t0, SignedDuration::from_hours(2)));
        c.reset();
        assert!(c.now().duration_since(Timestamp::now()).abs() < SignedDuration::from_secs(1));
    }
}
