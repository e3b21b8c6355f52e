//! The three reads: one message's timeline with its current status per
//! recipient, one address's events, and the suppression list.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{EventsTable, QueryError, Since};
use crate::event::{EventType, format_rfc3339_ms};
use crate::status::{self, SUPPRESSION_REASONS, StatusEvent};
use crate::store::codec::{
    PARTITION_KEY, RECIPIENT, RECIPIENT_INDEX, SUPPRESSION, SUPPRESSION_INDEX, StoredEvent,
};

impl StoredEvent {
    /// One line of what matters beyond the type: bounce type, status code and
    /// reason, clicked URL, the provider's name for an unknown event.
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(bounce) = self.bounce_type {
            parts.push(format!("{} bounce", bounce.as_str()));
        }
        match (&self.status_code, &self.reason) {
            (Some(code), Some(reason)) if !reason.contains(code.as_str()) => {
                parts.push(format!("{code} {reason}"));
            }
            (_, Some(reason)) => parts.push(reason.clone()),
            (Some(code), None) => parts.push(code.clone()),
            (None, None) => {}
        }
        if let Some(url) = &self.url {
            parts.push(url.clone());
        }
        if self.event_type == EventType::Unknown {
            parts.push(format!("provider event {:?}", self.provider_event));
        }
        if !self.raw.is_kept() {
            parts.push("(raw truncated)".to_owned());
        }
        parts.join(" | ")
    }

    fn status_event(&self) -> StatusEvent {
        StatusEvent {
            event_type: self.event_type,
            bounce_type: self.bounce_type,
            event_time_ms: self.event_time_ms,
        }
    }

    /// Later by event time, then by sort key.
    fn is_later_than(&self, other: &StoredEvent) -> bool {
        (self.event_time_ms, &self.sort_key) > (other.event_time_ms, &other.sort_key)
    }
}

/// Every event of one message, in time order, and where it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The message id asked for.
    pub message_id: String,
    /// The current status for each recipient of the message (see [`current_statuses`]).
    pub current_status: Vec<RecipientStatus>,
    /// The events, in time order.
    pub events: Vec<StoredEvent>,
}

/// The current status of a message for one recipient, by [`status::current_status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientStatus {
    /// The recipient; `None` when no event names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The event type of the deciding event.
    pub status: String,
    /// Its bounce type, for bounces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<String>,
    /// Its time, RFC 3339.
    pub time: String,
}

/// The status of each recipient of one message. One message id can cover several
/// recipients (a Tencent `bulkId`), so each gets its own; an event without a
/// recipient counts for all of them.
pub fn current_statuses(events: &[StoredEvent]) -> Vec<RecipientStatus> {
    let named: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.recipient.as_deref())
        .collect();
    let recipients: Vec<Option<&str>> = if named.is_empty() {
        vec![None]
    } else {
        named.into_iter().map(Some).collect()
    };
    recipients
        .into_iter()
        .filter_map(|recipient| {
            let concerning: Vec<StatusEvent> = events
                .iter()
                .filter(|e| e.recipient.is_none() || e.recipient.as_deref() == recipient)
                .map(StoredEvent::status_event)
                .collect();
            let deciding = status::current_status(&concerning)?;
            Some(RecipientStatus {
                recipient: recipient.map(str::to_owned),
                status: deciding.event_type.as_str().to_owned(),
                bounce_type: deciding.bounce_type.map(|b| b.as_str().to_owned()),
                time: format_rfc3339_ms(deciding.event_time_ms),
            })
        })
        .collect()
}

/// An address not to mail again, and the latest event that says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// The address, lower-cased.
    pub address: String,
    /// `hard_bounce`, `complaint` or `unsubscribe`.
    pub reason: String,
    /// The latest suppressing event of the address.
    pub event: StoredEvent,
}

/// One entry per address, from its latest event, sorted by address.
pub fn latest_per_address(events: Vec<StoredEvent>) -> Vec<Suppression> {
    let mut latest: BTreeMap<String, StoredEvent> = BTreeMap::new();
    for event in events {
        let Some(address) = event.recipient.clone() else {
            continue;
        };
        match latest.get(&address) {
            Some(kept) if !event.is_later_than(kept) => {}
            _ => {
                latest.insert(address, event);
            }
        }
    }
    latest
        .into_iter()
        .map(|(address, event)| Suppression {
            reason: event.suppression.clone().unwrap_or_default(),
            address,
            event,
        })
        .collect()
}

impl EventsTable {
    /// Every event of one message in time order, with its current status.
    pub async fn timeline(
        &self,
        message_id: &str,
        page_size: Option<i32>,
    ) -> Result<Timeline, QueryError> {
        let unknown = || QueryError::UnknownMessage(message_id.to_owned());
        if message_id.is_empty() {
            return Err(unknown());
        }
        let request = self.partition_query(None, PARTITION_KEY, message_id, None, page_size);
        let events = self.query_events(request).await?;
        if events.is_empty() {
            return Err(unknown());
        }
        Ok(Timeline {
            message_id: message_id.to_owned(),
            current_status: current_statuses(&events),
            events,
        })
    }

    /// Every event for one address (any case), across messages and providers,
    /// in time order, through the recipient index (without raw payloads).
    pub async fn recipient_events(
        &self,
        address: &str,
        since: Option<&Since>,
        page_size: Option<i32>,
    ) -> Result<Vec<StoredEvent>, QueryError> {
        let address = address.trim().to_lowercase();
        if address.is_empty() {
            return Ok(Vec::new());
        }
        let request =
            self.partition_query(Some(RECIPIENT_INDEX), RECIPIENT, &address, since, page_size);
        self.query_events(request).await
    }

    /// The addresses not to mail again, each with its latest suppressing event
    /// (without its raw payload), sorted by address: one Query per suppression
    /// reason on the sparse index.
    pub async fn suppressions(
        &self,
        since: Option<&Since>,
        page_size: Option<i32>,
    ) -> Result<Vec<Suppression>, QueryError> {
        let mut events = Vec::new();
        for reason in SUPPRESSION_REASONS {
            let request = self.partition_query(
                Some(SUPPRESSION_INDEX),
                SUPPRESSION,
                reason,
                since,
                page_size,
            );
            events.extend(self.query_events(request).await?);
        }
        Ok(latest_per_address(events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    use crate::event::BounceType;
    use crate::store::codec::{self, EVENT_TIME_MS, EVENT_TYPE, Item, SORT_KEY, StoredRaw};

    fn event(recipient: Option<&str>, event_type: &str, t: i64) -> StoredEvent {
        let mut stored = codec::decode(&Item::from([
            (
                SORT_KEY.to_owned(),
                AttributeValue::S(format!("{}#{event_type}#0000000{t}", format_rfc3339_ms(t))),
            ),
            (EVENT_TYPE.to_owned(), AttributeValue::S(event_type.into())),
            (EVENT_TIME_MS.to_owned(), AttributeValue::N(t.to_string())),
        ]));
        stored.recipient = recipient.map(str::to_owned);
        stored
    }

    #[test]
    fn stored_events_read_their_time_from_the_sort_key() {
        let e = event(None, "opened", 1_000);
        assert_eq!(e.time, "1970-01-01T00:00:01.000Z");
        assert_eq!(e.event_time_ms, 1_000);
        assert_eq!(e.detail(), "");
    }

    #[test]
    fn each_recipient_of_a_message_has_its_own_status() {
        let events = [
            event(None, "queued", 1),
            event(Some("a@x.com"), "delivered", 2),
            event(Some("b@x.com"), "bounced", 3),
            event(Some("a@x.com"), "opened", 4),
        ];
        let statuses = current_statuses(&events);
        let summary: Vec<(Option<&str>, &str)> = statuses
            .iter()
            .map(|s| (s.recipient.as_deref(), s.status.as_str()))
            .collect();
        assert_eq!(
            summary,
            [(Some("a@x.com"), "opened"), (Some("b@x.com"), "bounced")]
        );
        assert_eq!(statuses[0].time, "1970-01-01T00:00:00.004Z");
        let anonymous = current_statuses(&[event(None, "queued", 1)]);
        assert_eq!(anonymous[0].recipient, None);
        assert_eq!(anonymous[0].status, "queued");
        assert!(current_statuses(&[]).is_empty());
    }

    #[test]
    fn suppressions_keep_the_latest_event_per_address_sorted() {
        let mut later = event(Some("b@x.com"), "complained", 9);
        later.suppression = Some("complaint".into());
        let mut earlier = event(Some("b@x.com"), "unsubscribed", 5);
        earlier.suppression = Some("unsubscribe".into());
        let mut other = event(Some("a@x.com"), "bounced", 7);
        other.suppression = Some("hard_bounce".into());
        let list = latest_per_address(vec![later, earlier, other]);
        let summary: Vec<(&str, &str)> = list
            .iter()
            .map(|s| (s.address.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            [("a@x.com", "hard_bounce"), ("b@x.com", "complaint")]
        );
    }

    #[test]
    fn details_name_bounce_code_reason_url_and_unknown_names() {
        let mut e = event(Some("a@x.com"), "bounced", 1);
        e.bounce_type = Some(BounceType::Hard);
        e.reason = Some("551 5.1.1 recipient is not exist".into());
        e.status_code = Some("551 5.1.1".into());
        assert_eq!(e.detail(), "hard bounce | 551 5.1.1 recipient is not exist");
        e.status_code = Some("402".into());
        e.reason = Some("unsubscribed".into());
        e.raw = StoredRaw::Truncated { bytes: None };
        assert_eq!(
            e.detail(),
            "hard bounce | 402 unsubscribed | (raw truncated)"
        );
        let mut unknown = event(None, "unknown", 1);
        unknown.provider_event = "teleported".into();
        unknown.url = Some("https://example.com/".into());
        assert_eq!(
            unknown.detail(),
            "https://example.com/ | provider event \"teleported\""
        );
    }
}
