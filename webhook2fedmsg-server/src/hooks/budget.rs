//! The bytes of webhook bodies the server holds at once.
//!
//! A delivery reserves room for its body before reading it (its announced
//! length, or step by step as a chunked body arrives) and keeps it until it
//! has been stored, so that many large or slow uploads together cannot take
//! more memory than `limits.max_inflight_body_bytes`. A delivery that finds
//! no room waits a little, then is refused with 503 and `Retry-After`; a
//! chunked body that already holds room and finds none for its next step is
//! refused at once, as waiting while holding room could starve everyone.
//!
//! Known gap: room is reserved before the signature can be checked (HMAC
//! needs the whole body), so uploads that stall with a forged but
//! well-formed signature hold their room until the body timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::HttpError;

/// Room is counted in KiB, so that a permit count (a `u32`) covers any
/// body.
const UNIT: u64 = 1024;

/// A chunked body's reservation grows at least this much at a time.
const MIN_STEP: u64 = 64 * 1024;

/// How long a delivery waits for room before it is refused.
const WAIT: Duration = Duration::from_secs(5);

/// The room for webhook bodies, shared by all requests.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    room: Arc<Semaphore>,
}

/// Room held for one body; given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
}

impl Reservation {
    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl BodyBudget {
    /// A budget of `bytes` (rounded down to whole KiB).
    pub fn new(bytes: u64) -> Self {
        let units = usize::try_from(bytes / UNIT).unwrap_or(usize::MAX);
        Self {
            room: Arc::new(Semaphore::new(units.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Grows `reservation` to hold at least `bytes`, and at most `cap`,
    /// waiting a little for others to give room back.
    ///
    /// A chunked body grows its reservation in steps (doubling, at least
    /// 64 KiB) rather than chunk by chunk.
    pub async fn grow(
        &self,
        reservation: &mut Reservation,
        bytes: u64,
        cap: u64,
    ) -> Result<(), HttpError> {
        if bytes <= reservation.bytes {
            return Ok(());
        }
        let step = reservation.bytes.max(MIN_STEP);
        let target = bytes.max(reservation.bytes + step).min(cap.max(bytes));
        let units = target.div_ceil(UNIT) - reservation.bytes.div_ceil(UNIT);
        let units = u32::try_from(units).map_err(|_| HttpError::Busy)?;
        let acquired = if reservation.permit.is_some() {
            // A body that holds room never waits for more: bodies waiting
            // while holding room could leave none for any of them.
            self.room.clone().try_acquire_many_owned(units).ok()
        } else {
            tokio::time::timeout(WAIT, self.room.clone().acquire_many_owned(units))
                .await
                .ok()
                // The semaphore is never closed.
                .and_then(Result::ok)
        };
        let acquired = acquired.ok_or(HttpError::Busy)?;
        match &mut reservation.permit {
            Some(permit) => permit.merge(acquired),
            None => reservation.permit = Some(acquired),
        }
        reservation.bytes = target.div_ceil(UNIT) * UNIT;
        Ok(())
    }

    /// The room not held by any body, in bytes.
    pub fn available(&self) -> u64 {
        self.room.available_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget of 1 MiB, with `bytes` of it held.
    async fn holding(bytes: u64) -> (BodyBudget, Reservation) {
        let budget = BodyBudget::new(1024 * 1024);
        let mut held = Reservation::default();
        budget.grow(&mut held, bytes, bytes).await.unwrap();
        (budget, held)
    }

    #[tokio::test]
    async fn room_is_held_until_the_reservation_is_dropped() {
        let (budget, first) = holding(700 * 1024).await;
        assert_eq!(first.bytes(), 700 * 1024);
        assert_eq!(budget.available(), 324 * 1024);
        drop(first);
        assert_eq!(budget.available(), 1024 * 1024);
    }

    #[tokio::test]
    async fn a_body_that_finds_no_room_is_refused_after_a_wait() {
        let (budget, _held) = holding(1024 * 1024).await;
        let mut other = Reservation::default();
        let refused = budget.grow(&mut other, 1, 1024).await;
        assert!(matches!(refused, Err(HttpError::Busy)), "{refused:?}");
        assert_eq!(other.bytes(), 0);
    }

    #[tokio::test]
    async fn a_waiting_body_gets_the_room_given_back() {
        let (budget, held) = holding(1024 * 1024).await;
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut reservation = Reservation::default();
                budget
                    .grow(&mut reservation, 10, 10)
                    .await
                    .map(|()| reservation)
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let reservation = waiting.await.unwrap().unwrap();
        assert_eq!(reservation.bytes(), 1024);
    }

    #[tokio::test]
    async fn a_body_holding_room_is_refused_at_once_when_it_cannot_grow() {
        let (budget, _held) = holding(900 * 1024).await;
        let mut growing = Reservation::default();
        budget.grow(&mut growing, 1, 1024 * 1024).await.unwrap();
        let started = std::time::Instant::now();
        let refused = budget.grow(&mut growing, 200 * 1024, 1024 * 1024).await;
        assert!(matches!(refused, Err(HttpError::Busy)), "{refused:?}");
        assert!(started.elapsed() < WAIT / 2, "it did not wait");
        assert_eq!(growing.bytes(), MIN_STEP, "what it held, it still holds");
    }

    #[tokio::test]
    async fn a_growing_body_takes_steps_up_to_its_cap() {
        let budget = BodyBudget::new(10 * 1024 * 1024);
        let mut reservation = Reservation::default();
        budget.grow(&mut reservation, 1, 1024 * 1024).await.unwrap();
        assert_eq!(reservation.bytes(), MIN_STEP);
        budget
            .grow(&mut reservation, MIN_STEP + 1, 1024 * 1024)
            .await
            .unwrap();
        assert_eq!(reservation.bytes(), 2 * MIN_STEP);
        budget
            .grow(&mut reservation, 900 * 1024, 1024 * 1024)
            .await
            .unwrap();
        assert_eq!(reservation.bytes(), 900 * 1024);
        budget
            .grow(&mut reservation, 900 * 1024 + 1, 1024 * 1024)
            .await
            .unwrap();
        assert_eq!(
            reservation.bytes(),
            1024 * 1024,
            "the step stops at the cap"
        );
        assert_eq!(budget.available(), 9 * 1024 * 1024);
    }
}
