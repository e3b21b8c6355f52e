//! The normalized email event: one vocabulary and one time unit for every provider.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// What happened to a message, in one vocabulary for every provider
/// (django-anymail's event types, trimmed to what these ESPs report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// The provider accepted the send request.
    Queued,
    /// The message left the provider.
    Sent,
    /// The receiving mail server accepted the message.
    Delivered,
    /// Delivery was delayed; the provider keeps trying.
    Deferred,
    /// The receiving server refused the message (see [`BounceType`]).
    Bounced,
    /// The provider refused to send (block list, earlier unsubscribe, ...).
    Rejected,
    /// The recipient opened the message.
    Opened,
    /// The recipient clicked a link.
    Clicked,
    /// The recipient reported the message as spam.
    Complained,
    /// The recipient unsubscribed.
    Unsubscribed,
    /// A message was received (EngageLab receiving route).
    Inbound,
    /// An event type no provider documents: stored, never dropped.
    Unknown,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: [EventType; 12] = [
        EventType::Queued,
        EventType::Sent,
        EventType::Delivered,
        EventType::Deferred,
        EventType::Bounced,
        EventType::Rejected,
        EventType::Opened,
        EventType::Clicked,
        EventType::Complained,
        EventType::Unsubscribed,
        EventType::Inbound,
        EventType::Unknown,
    ];

    /// The lower-case name stored in DynamoDB and used in sort keys.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Queued => "queued",
            EventType::Sent => "sent",
            EventType::Delivered => "delivered",
            EventType::Deferred => "deferred",
            EventType::Bounced => "bounced",
            EventType::Rejected => "rejected",
            EventType::Opened => "opened",
            EventType::Clicked => "clicked",
            EventType::Complained => "complained",
            EventType::Unsubscribed => "unsubscribed",
            EventType::Inbound => "inbound",
            EventType::Unknown => "unknown",
        }
    }

    /// Parses a stored name back into an event type.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a bounce is permanent (`hard`) or temporary (`soft`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceType {
    /// Permanent failure: the address should not be mailed again.
    Hard,
    /// Temporary failure: a later send may succeed.
    Soft,
}

impl BounceType {
    /// The lower-case name stored in DynamoDB.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceType::Hard => "hard",
            BounceType::Soft => "soft",
        }
    }
}

/// One provider event, normalized. Built by a provider module, stored by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailEvent {
    /// Provider name as routed (`tencent`, `engagelab`, `uspeedo`).
    pub provider: &'static str,
    /// Normalized event type.
    pub event_type: EventType,
    /// The event name exactly as the provider sent it.
    pub provider_event: String,
    /// The per-recipient message id the user can look up at the provider.
    pub message_id: String,
    /// Recipient address, lower-cased, when the provider names one.
    pub recipient: Option<String>,
    /// Event time in Unix milliseconds.
    pub event_time_ms: i64,
    /// Hard or soft, for bounces whose provider says which.
    pub bounce_type: Option<BounceType>,
    /// Failure text (bounce reason, SMTP reply, provider description).
    pub reason: Option<String>,
    /// SMTP or provider status code.
    pub status_code: Option<String>,
    /// Clicked URL.
    pub url: Option<String>,
    /// IP address of the opener / clicker (or sending IP, when that is all there is).
    pub ip: Option<String>,
    /// User agent, or browser and OS as the provider describes them.
    pub user_agent: Option<String>,
    /// Subject, with MIME encoded-words decoded.
    pub subject: Option<String>,
    /// Sender address.
    pub sender: Option<String>,
    /// Request / batch / task id grouping several messages.
    pub batch_id: Option<String>,
    /// Provider template id.
    pub template_id: Option<String>,
    /// Pass-through data the sender attached at send time (EngageLab `custom_args`,
    /// Tencent `X-Tencentcloudses-Cb-*` headers).
    pub metadata: BTreeMap<String, String>,
    /// Other provider fields worth keeping (account, browser, OS, sub-status, ...).
    pub details: BTreeMap<String, String>,
    /// The provider's JSON for this event, canonical (sorted keys, no whitespace).
    pub raw: String,
    /// The provider put the recipient on its deny (suppression) list with this
    /// event (Mandrill's allow/deny-list sync): the address is suppressed even when
    /// the event type alone would not say so (a manual block, a soft bounce).
    pub deny_listed: bool,
}

impl EmailEvent {
    /// Starts an event with the required fields; optional fields are empty.
    pub fn new(
        provider: &'static str,
        event_type: EventType,
        provider_event: impl Into<String>,
        message_id: impl Into<String>,
        event_time_ms: i64,
        raw: String,
    ) -> Self {
        EmailEvent {
            provider,
            event_type,
            provider_event: provider_event.into(),
            message_id: message_id.into(),
            recipient: None,
            event_time_ms,
            bounce_type: None,
            reason: None,
            status_code: None,
            url: None,
            ip: None,
            user_agent: None,
            subject: None,
            sender: None,
            batch_id: None,
            template_id: None,
            metadata: BTreeMap::new(),
            details: BTreeMap::new(),
            raw,
            deny_listed: false,
        }
    }

    /// First 8 hex digits of SHA-256 over what identifies this event.
    ///
    /// The raw JSON is canonical, so a retry that re-serializes the same event
    /// (other key order or whitespace) hashes the same.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.provider,
            self.message_id.as_str(),
            self.recipient.as_deref().unwrap_or(""),
            self.provider_event.as_str(),
            self.raw.as_str(),
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hex::encode(&hasher.finalize()[..4])
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds, e.g. `2026-11-22T10:15:30.123Z`.
///
/// Times outside the representable range are clamped to the Unix epoch.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000) else {
        return "1970-01-01T00:00:00.000Z".to_owned();
    };
    let Ok(year) = u16::try_from(t.year()) else {
        // Years before 0 (only from nonsense timestamps): the general formatter.
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        return t
            .format(&format)
            .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned());
    };
    // Written digit by digit: twice per stored event, and `time`'s formatter was
    // ~5 % of the CPU per event (benches/cpu.rs).
    let mut out = String::with_capacity(24);
    for (value, width, separator) in [
        (year, 4, '-'),
        (u16::from(u8::from(t.month())), 2, '-'),
        (u16::from(t.day()), 2, 'T'),
        (u16::from(t.hour()), 2, ':'),
        (u16::from(t.minute()), 2, ':'),
        (u16::from(t.second()), 2, '.'),
        (t.millisecond(), 3, 'Z'),
    ] {
        push_digits(&mut out, value, width);
        out.push(separator);
    }
    out
}

/// Appends `value` as exactly `width` decimal digits, zero-padded (`value < 10^width`).
fn push_digits(out: &mut String, value: u16, width: u32) {
    for power in (0..width).rev() {
        let digit = (value / 10u16.pow(power) % 10) as u8;
        out.push(char::from(b'0' + digit));
    }
}

/// Interprets a Unix timestamp that may be in seconds or milliseconds.
///
/// Values above 10^11 are milliseconds (10^11 s is the year 5138; 10^11 ms is 1973).
pub fn unix_to_ms(value: i64) -> i64 {
    if value.unsigned_abs() > 100_000_000_000 {
        value
    } else {
        value.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_formatting_agrees_with_the_time_crate() {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        // Around the epoch, leap days, year ends, 4-digit year edges, the far future.
        for ms in [
            0,
            1,
            999,
            -1,
            951_782_399_999,
            951_782_400_000,
            1_709_251_199_999,
            1_735_689_599_999,
            -62_167_219_200_000,
            -62_135_596_800_001,
            253_402_300_799_999,
            1_795_342_530_123,
        ] {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&format).ok());
            assert_eq!(Some(format_rfc3339_ms(ms)), expected, "{ms}");
        }
        let mut ms: i64 = -86_400_000 * 400;
        while ms < 4_102_444_800_000 {
            let expected = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()
                .and_then(|t| t.format(&format).ok());
            assert_eq!(Some(format_rfc3339_ms(ms)), expected, "{ms}");
            ms += 86_400_000 * 7 + 3_723_457;
        }
    }

    #[test]
    fn formats_milliseconds_in_utc() {
        assert_eq!(
            format_rfc3339_ms(1_654_064_683_000),
            "2022-06-01T06:24:43.000Z"
        );
        assert_eq!(
            format_rfc3339_ms(1_676_615_711_325),
            "2023-02-17T06:35:11.325Z"
        );
    }

    #[test]
    fn detects_seconds_and_milliseconds_by_magnitude() {
        assert_eq!(unix_to_ms(1_234_567_890), 1_234_567_890_000);
        assert_eq!(unix_to_ms(1_234_567_890_000), 1_234_567_890_000);
        assert_eq!(
            unix_to_ms(i64::MIN),
            i64::MIN,
            "no overflow on the most negative time"
        );
        assert_eq!(format_rfc3339_ms(i64::MIN), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("nope"), None);
    }

    fn sample() -> EmailEvent {
        EmailEvent::new(
            "tencent",
            EventType::Clicked,
            "click",
            "bulk-1",
            1_700_000_000_123,
            r#"{"a":1}"#.into(),
        )
    }

    #[test]
    fn content_hash_is_eight_hex_digits() {
        let hash = sample().content_hash();
        assert_eq!(hash.len(), 8);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn same_event_same_hash_different_content_different_hash() {
        let a = sample();
        assert_eq!(a.content_hash(), sample().content_hash());
        let mut other_raw = sample();
        other_raw.raw = r#"{"a":2}"#.into();
        assert_ne!(a.content_hash(), other_raw.content_hash());
        let mut other_recipient = sample();
        other_recipient.recipient = Some("x@example.com".into());
        assert_ne!(a.content_hash(), other_recipient.content_hash());
    }
}
