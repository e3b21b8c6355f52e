//! SES events → [`EmailEvent`]: both payload flavours, event publishing
//! (`eventType`, configuration sets) and identity notifications
//! (`notificationType`), one event per affected recipient.

use serde_json::{Map, Value};

use crate::event::{BounceType, EmailEvent, EventType};
use crate::providers::json::{self, ParseError};
use crate::providers::mime_words;

use super::sns;

/// The route name, stored in `provider`.
pub const PROVIDER: &str = "ses";

/// Most bytes one event may expand into across its recipients (each carries
/// the shared raw JSON): SES allows 50 recipients, a signed message from an
/// allowed topic is still bounded.
pub const MAX_FAN_OUT_BYTES: usize = 16 * 1024 * 1024;

/// Maps one SES event object. `fallback_ms` is the SNS `Timestamp` when the
/// event came in an envelope (used only when the event carries no time of its
/// own); `raw` is the canonical JSON kept with each event.
pub fn map(
    event: &Value,
    fallback_ms: Option<i64>,
    raw: String,
) -> Result<Vec<EmailEvent>, ParseError> {
    let record = json::as_object(event, "an SES event")?;
    let name = json::text(record, "eventType")
        .or_else(|| json::text(record, "notificationType"))
        .ok_or(ParseError::MissingField {
            index: 0,
            field: "eventType",
        })?;
    let mail = json::object(record, "mail").ok_or(ParseError::MissingField {
        index: 0,
        field: "mail",
    })?;
    let message_id = json::text(mail, "messageId").ok_or(ParseError::MissingField {
        index: 0,
        field: "mail.messageId",
    })?;
    let empty = Map::new();
    let detail = json::object(record, detail_key(&name)).unwrap_or(&empty);
    let event_type = classify(&name, detail);
    let time_ms = event_time(&name, detail, mail)?
        .or(fallback_ms)
        .unwrap_or(0);

    let mut template = EmailEvent::new(
        PROVIDER,
        event_type,
        name.as_str(),
        message_id,
        time_ms,
        raw,
    );
    fill_common(&mut template, mail);
    fill_detail(&mut template, &name, detail);

    let recipients = recipients(&name, detail, mail);
    let per_recipient = template.raw.len().saturating_add(256);
    if recipients.len().saturating_mul(per_recipient) > MAX_FAN_OUT_BYTES {
        return Err(ParseError::FanOutTooLarge {
            index: 0,
            recipients: recipients.len(),
        });
    }
    if recipients.is_empty() {
        return Ok(vec![template]);
    }
    Ok(recipients
        .into_iter()
        .map(|(address, own)| {
            let mut event = template.clone();
            event.recipient = Some(address.to_lowercase());
            if let Some(own) = own {
                fill_recipient(&mut event, own);
            }
            event
        })
        .collect())
}

/// The event's own time (see [`event_time`]); `None` when it carries none.
pub fn own_time(event: &Value) -> Result<Option<i64>, ParseError> {
    let record = json::as_object(event, "an SES event")?;
    let name = json::text(record, "eventType")
        .or_else(|| json::text(record, "notificationType"))
        .unwrap_or_default();
    let empty = Map::new();
    let mail = json::object(record, "mail").unwrap_or(&empty);
    let detail = json::object(record, detail_key(&name)).unwrap_or(&empty);
    event_time(&name, detail, mail)
}

/// The object that holds a type's details: `bounce` for `Bounce`,
/// `deliveryDelay` for `DeliveryDelay`, `failure` for `Rendering Failure`.
fn detail_key(name: &str) -> &'static str {
    match name {
        "Bounce" => "bounce",
        "Complaint" => "complaint",
        "Delivery" => "delivery",
        "Send" => "send",
        "Reject" => "reject",
        "Open" => "open",
        "Click" => "click",
        "Rendering Failure" => "failure",
        "DeliveryDelay" => "deliveryDelay",
        "Subscription" => "subscription",
        "Received" => "receipt",
        _ => "",
    }
}

/// The normalized type of an SES event name.
fn classify(name: &str, detail: &Map<String, Value>) -> EventType {
    match name {
        // SES accepted the send request and will attempt delivery: our `queued`
        // ("the provider accepted the send request"), not `sent`.
        "Send" => EventType::Queued,
        "Delivery" => EventType::Delivered,
        "Bounce" => EventType::Bounced,
        "Complaint" => EventType::Complained,
        "Reject" | "Rendering Failure" => EventType::Rejected,
        "DeliveryDelay" => EventType::Deferred,
        "Open" => EventType::Opened,
        "Click" => EventType::Clicked,
        "Subscription" if opted_out(detail) => EventType::Unsubscribed,
        "Received" => EventType::Inbound,
        _ => EventType::Unknown,
    }
}

/// A subscription event that unsubscribes: all topics, or at least one topic
/// now `OptOut`. An opt-in has no type of its own here: `unknown`.
fn opted_out(detail: &Map<String, Value>) -> bool {
    let Some(new) = json::object(detail, "newTopicPreferences") else {
        return false;
    };
    let all = matches!(json::get(new, "unsubscribeAll"), Some(Value::Bool(true)));
    all || !opted_out_topics(detail).is_empty()
}

/// The topic names whose new status is `OptOut`.
fn opted_out_topics(detail: &Map<String, Value>) -> Vec<String> {
    json::object(detail, "newTopicPreferences")
        .and_then(|new| json::get(new, "topicSubscriptionStatus"))
        .and_then(Value::as_array)
        .map(|topics| {
            topics
                .iter()
                .filter_map(Value::as_object)
                .filter(|t| json::text(t, "subscriptionStatus").as_deref() == Some("OptOut"))
                .filter_map(|t| json::text(t, "topicName"))
                .collect()
        })
        .unwrap_or_default()
}

/// The event's own time: the detail's `timestamp` (bounce, delivery, open, …),
/// `mail.timestamp` for Send, Reject and Rendering Failure (and any type
/// without a time of its own). A time present but unreadable refuses the body.
fn event_time(
    name: &str,
    detail: &Map<String, Value>,
    mail: &Map<String, Value>,
) -> Result<Option<i64>, ParseError> {
    let read = |obj: &Map<String, Value>, field: &'static str| match json::text(obj, "timestamp") {
        None => Ok(None),
        Some(text) => sns::parse_time(&text)
            .map(Some)
            .ok_or(ParseError::MissingField { index: 0, field }),
    };
    let uses_send_time = matches!(name, "Send" | "Reject" | "Rendering Failure");
    if !uses_send_time && let Some(ms) = read(detail, "timestamp")? {
        return Ok(Some(ms));
    }
    read(mail, "mail.timestamp")
}

/// The affected recipients, each with its own detail object when SES gives
/// one: bounced, complained or delayed recipients, delivery recipients, and
/// otherwise every `mail.destination` (Open and Click name no recipient: the
/// event is attributed to every destination, as django-anymail does).
fn recipients<'a>(
    name: &str,
    detail: &'a Map<String, Value>,
    mail: &'a Map<String, Value>,
) -> Vec<(String, Option<&'a Map<String, Value>>)> {
    let listed = |key: &str| -> Vec<(String, Option<&'a Map<String, Value>>)> {
        json::get(detail, key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_object)
                    .filter_map(|r| json::text(r, "emailAddress").map(|a| (a, Some(r))))
                    .collect()
            })
            .unwrap_or_default()
    };
    let found = match name {
        "Bounce" => listed("bouncedRecipients"),
        "Complaint" => listed("complainedRecipients"),
        "DeliveryDelay" => listed("delayedRecipients"),
        "Delivery" => addresses(detail, "recipients"),
        "Received" => addresses(detail, "recipients"),
        _ => Vec::new(),
    };
    if found.is_empty() {
        addresses(mail, "destination")
    } else {
        found
    }
}

fn addresses<'a>(
    obj: &Map<String, Value>,
    key: &str,
) -> Vec<(String, Option<&'a Map<String, Value>>)> {
    json::get(obj, key)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(json::value_text)
                .map(|a| (a, None))
                .collect()
        })
        .unwrap_or_default()
}

/// Fields every SES event shares: sender, subject, tags.
fn fill_common(event: &mut EmailEvent, mail: &Map<String, Value>) {
    event.sender = json::text(mail, "source");
    event.subject = json::object(mail, "commonHeaders")
        .and_then(|h| json::text(h, "subject"))
        .map(|s| mime_words::decode(&s));
    for field in ["sendingAccountId", "sourceArn", "sourceIp"] {
        if let Some(value) = json::text(mail, field) {
            event.details.insert(field.into(), value);
        }
    }
    // Message tags: `ses:`-prefixed ones are SES's own (configuration set,
    // caller); the others are what the sender attached.
    if let Some(tags) = json::object(mail, "tags") {
        for (key, values) in tags {
            let text = match values {
                Value::Array(list) => list
                    .iter()
                    .filter_map(json::value_text)
                    .collect::<Vec<_>>()
                    .join(","),
                other => json::value_text(other).unwrap_or_default(),
            };
            if key.starts_with("ses:") {
                event.details.insert(key.clone(), text);
            } else {
                event.metadata.insert(key.clone(), text);
            }
        }
    }
}

/// Fields of the type's detail object.
fn fill_detail(event: &mut EmailEvent, name: &str, detail: &Map<String, Value>) {
    let keep = [
        "bounceType",
        "bounceSubType",
        "feedbackId",
        "reportingMTA",
        "remoteMtaIp",
        "complaintFeedbackType",
        "complaintSubType",
        "arrivalDate",
        "processingTimeMillis",
        "delayType",
        "expirationTime",
        "contactList",
        "source",
    ];
    for field in keep {
        if let Some(value) = json::text(detail, field) {
            event.details.insert(field.into(), value);
        }
    }
    match name {
        "Bounce" => {
            event.bounce_type = match json::text(detail, "bounceType").as_deref() {
                Some("Permanent") => Some(BounceType::Hard),
                Some("Transient") => Some(BounceType::Soft),
                _ => None,
            };
        }
        "Delivery" => {
            event.reason = json::text(detail, "smtpResponse");
            event.status_code = event.reason.as_deref().and_then(json::smtp_code);
            event.ip = json::text(detail, "remoteMtaIp");
        }
        "Complaint" => {
            event.user_agent = json::text(detail, "userAgent");
            event.reason = json::text(detail, "complaintFeedbackType");
        }
        "Reject" => event.reason = json::text(detail, "reason"),
        "Rendering Failure" => {
            event.reason = json::text(detail, "errorMessage");
            event.template_id = json::text(detail, "templateName");
        }
        "Open" | "Click" => {
            event.ip = json::text(detail, "ipAddress");
            event.user_agent = json::text(detail, "userAgent");
            event.url = json::text(detail, "link");
        }
        "Subscription" => {
            let topics = opted_out_topics(detail);
            if !topics.is_empty() {
                event
                    .details
                    .insert("optedOutTopics".into(), topics.join(","));
            }
            if let Some(new) = json::object(detail, "newTopicPreferences")
                && let Some(all) = json::get(new, "unsubscribeAll").and_then(Value::as_bool)
            {
                event
                    .details
                    .insert("unsubscribeAll".into(), all.to_string());
            }
        }
        _ => {}
    }
}

/// Fields of one bounced, complained or delayed recipient.
fn fill_recipient(event: &mut EmailEvent, recipient: &Map<String, Value>) {
    if let Some(diagnostic) = json::text(recipient, "diagnosticCode") {
        event.reason = Some(diagnostic);
    }
    if let Some(status) = json::text(recipient, "status") {
        event.status_code = Some(status);
    }
    if let Some(action) = json::text(recipient, "action") {
        event.details.insert("action".into(), action);
    }
}
