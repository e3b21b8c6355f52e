//! The current status of a message, derived from its events whatever order they
//! arrived in (providers retry and deliver out of order).
//!
//! Precedence rule: each event type has a rank; the status is the event with the
//! highest rank, and among equal ranks the latest by event time. Ranks, low to high:
//!
//! | rank | event types | why |
//! |---|---|---|
//! | 0 | `unknown`, `inbound` | say nothing about delivery |
//! | 1 | `queued` | accepted by the provider |
//! | 2 | `sent` | left the provider |
//! | 3 | `deferred` | a temporary failure: any later outcome replaces it |
//! | 4 | `delivered` | the receiving server accepted it |
//! | 5 | `bounced` (soft) | a soft bounce after delivery attempts |
//! | 6 | `opened` | engagement proves delivery, so it outranks `delivered` and soft bounces |
//! | 7 | `clicked` | stronger engagement than an open |
//! | 8 | `rejected`, `bounced` (hard or unknown type) | final failures: the message did not arrive |
//! | 9 | `unsubscribed`, `complained` | the recipient's own decision: final, must be honoured |
//!
//! So a `delivered` that arrives after a `bounced` never downgrades it, a late
//! `deferred` never hides a `delivered`, and an open after a hard bounce (a
//! provider's image-proxy artefact) does not resurrect the message.

use crate::event::{BounceType, EventType};

/// What [`current_status`] needs of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusEvent {
    /// Normalized type.
    pub event_type: EventType,
    /// Bounce type, for bounces.
    pub bounce_type: Option<BounceType>,
    /// Event time, Unix ms.
    pub event_time_ms: i64,
}

/// The rank of an event in the precedence rule (higher wins).
pub fn rank(event_type: EventType, bounce_type: Option<BounceType>) -> u8 {
    match event_type {
        EventType::Unknown | EventType::Inbound => 0,
        EventType::Queued => 1,
        EventType::Sent => 2,
        EventType::Deferred => 3,
        EventType::Delivered => 4,
        EventType::Bounced if bounce_type == Some(BounceType::Soft) => 5,
        EventType::Opened => 6,
        EventType::Clicked => 7,
        EventType::Rejected | EventType::Bounced => 8,
        EventType::Unsubscribed | EventType::Complained => 9,
    }
}

/// The event that determines a message's current status, or `None` for no events.
pub fn current_status(events: &[StatusEvent]) -> Option<StatusEvent> {
    events
        .iter()
        .copied()
        .max_by_key(|e| (rank(e.event_type, e.bounce_type), e.event_time_ms))
}

/// Why an event means the address must not be mailed again, if it does:
/// a hard bounce, a complaint or an unsubscribe. Soft bounces, bounces of unknown
/// type and provider rejections (the provider already suppresses those) do not.
pub fn suppression_reason(
    event_type: EventType,
    bounce_type: Option<BounceType>,
) -> Option<&'static str> {
    match (event_type, bounce_type) {
        (EventType::Bounced, Some(BounceType::Hard)) => Some("hard_bounce"),
        (EventType::Complained, _) => Some("complaint"),
        (EventType::Unsubscribed, _) => Some("unsubscribe"),
        _ => None,
    }
}

/// The suppression reason of an address the provider put on its deny list for a
/// reason [`suppression_reason`] does not name (a manual block, a soft bounce).
pub const DENY_LIST: &str = "deny_list";

/// Every suppression reason stored: what [`suppression_reason`] returns, and [`DENY_LIST`].
pub const SUPPRESSION_REASONS: [&str; 4] = ["hard_bounce", "complaint", "unsubscribe", DENY_LIST];

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event_type: EventType, t: i64) -> StatusEvent {
        StatusEvent {
            event_type,
            bounce_type: None,
            event_time_ms: t,
        }
    }

    fn status(events: &[StatusEvent]) -> Option<EventType> {
        current_status(events).map(|e| e.event_type)
    }

    #[test]
    fn the_lifecycle_in_order_ends_at_the_last_step() {
        let events = [
            ev(EventType::Queued, 1),
            ev(EventType::Sent, 2),
            ev(EventType::Delivered, 3),
            ev(EventType::Opened, 4),
        ];
        assert_eq!(status(&events), Some(EventType::Opened));
    }

    #[test]
    fn out_of_order_arrival_gives_the_same_status() {
        let mut events = vec![
            ev(EventType::Delivered, 3),
            ev(EventType::Queued, 1),
            ev(EventType::Deferred, 2),
        ];
        assert_eq!(status(&events), Some(EventType::Delivered));
        events.reverse();
        assert_eq!(status(&events), Some(EventType::Delivered));
    }

    #[test]
    fn a_late_delivered_never_downgrades_a_hard_bounce() {
        let hard = StatusEvent {
            event_type: EventType::Bounced,
            bounce_type: Some(BounceType::Hard),
            event_time_ms: 5,
        };
        assert_eq!(
            status(&[hard, ev(EventType::Delivered, 9)]),
            Some(EventType::Bounced)
        );
    }

    #[test]
    fn a_delivery_after_a_soft_bounce_is_overtaken_by_engagement_only() {
        let soft = StatusEvent {
            event_type: EventType::Bounced,
            bounce_type: Some(BounceType::Soft),
            event_time_ms: 5,
        };
        assert_eq!(
            current_status(&[soft, ev(EventType::Delivered, 9)]),
            Some(soft)
        );
        assert_eq!(
            status(&[soft, ev(EventType::Opened, 9)]),
            Some(EventType::Opened)
        );
    }

    #[test]
    fn complaints_and_unsubscribes_are_final() {
        let events = [
            ev(EventType::Complained, 1),
            ev(EventType::Clicked, 2),
            ev(EventType::Delivered, 3),
        ];
        assert_eq!(status(&events), Some(EventType::Complained));
    }

    #[test]
    fn only_hard_bounces_complaints_and_unsubscribes_suppress() {
        for t in EventType::ALL {
            for b in [None, Some(BounceType::Hard), Some(BounceType::Soft)] {
                let reason = suppression_reason(t, b);
                if let Some(r) = reason {
                    assert!(SUPPRESSION_REASONS.contains(&r));
                }
                let expected = matches!(
                    (t, b),
                    (EventType::Bounced, Some(BounceType::Hard))
                        | (EventType::Complained, _)
                        | (EventType::Unsubscribed, _)
                );
                assert_eq!(reason.is_some(), expected, "{t:?} {b:?}");
            }
        }
    }

    #[test]
    fn equal_ranks_take_the_latest() {
        let events = [ev(EventType::Unsubscribed, 7), ev(EventType::Complained, 3)];
        assert_eq!(status(&events), Some(EventType::Unsubscribed));
        assert_eq!(status(&[]), None);
        assert_eq!(
            status(&[ev(EventType::Unknown, 1), ev(EventType::Queued, 0)]),
            Some(EventType::Queued)
        );
    }
}
