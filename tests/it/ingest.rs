//! End to end: API Gateway events through the real handler into a real
//! DynamoDB API (in-process emulator), read back from the table.

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn every_fixture_of_every_provider_is_stored_with_its_normalized_fields() {
    let db = Emulator::start().await;
    let app = app(&db);
    let mut expected_items = 0;
    for provider in provider_names() {
        for (name, body) in fixtures(provider) {
            let (status, reply) = parts(app.handle(signed_post(provider, &body)).await);
            assert_eq!(status, 200, "{provider}/{name}: {reply}");
            // The events of the body as sent: a provider that signs inside the body
            // (an SNS envelope) may date an undated event by its signed time.
            let sent = signed(provider, &secrets(provider)[0], &body).body;
            let parsed = mailhooks::providers::by_name(provider)
                .unwrap()
                .parse(&sent)
                .unwrap();
            assert_eq!(reply["received"], parsed.len(), "{provider}/{name}");
            assert_eq!(
                reply["stored"].as_u64().unwrap() + reply["duplicates"].as_u64().unwrap(),
                parsed.len() as u64
            );
            expected_items += reply["stored"].as_u64().unwrap() as usize;
            for event in parsed {
                let item = db
                    .client
                    .get_item()
                    .table_name(TABLE)
                    .key(
                        "message_id",
                        aws_sdk_dynamodb::types::AttributeValue::S(event.message_id.clone()),
                    )
                    .key(
                        "timestamp",
                        aws_sdk_dynamodb::types::AttributeValue::S(
                            mailhooks::store::codec::sort_key(&event),
                        ),
                    )
                    .send()
                    .await
                    .unwrap()
                    .item
                    .unwrap_or_else(|| panic!("{provider}/{name}: item missing"));
                assert_eq!(text(&item, "provider").as_deref(), Some(provider));
                assert_eq!(
                    text(&item, "event_type").as_deref(),
                    Some(event.event_type.as_str())
                );
                assert_eq!(
                    text(&item, "provider_event"),
                    Some(event.provider_event.clone())
                );
                assert_eq!(text(&item, "recipient"), event.recipient.clone());
                assert_eq!(text(&item, "url"), event.url.clone());
                assert_eq!(
                    text(&item, "received_at").as_deref(),
                    Some("2026-11-22T10:15:30.000Z")
                );
                assert_eq!(
                    item["event_time_ms"].as_n().unwrap(),
                    &event.event_time_ms.to_string()
                );
                assert_eq!(
                    mailhooks::store::codec::raw_payload(&item),
                    Some(event.raw.clone())
                );
            }
        }
    }
    assert_eq!(db.items().await.len(), expected_items);
}

#[tokio::test]
async fn documented_tencent_bounce_lands_as_the_readme_describes() {
    let db = Emulator::start().await;
    let (status, reply) = parts(
        app(&db)
            .handle(signed_post("tencent", &fixture("tencent", "bounce")))
            .await,
    );
    assert_eq!(
        (status, reply.clone()),
        (
            200,
            json!({"code":0,"message":"ok","received":1,"stored":1,"duplicates":0,"quarantined":0})
        )
    );
    let items = db.items().await;
    let item = &items[0];
    assert_eq!(
        text(item, "message_id").as_deref(),
        Some("qcloudses-30-251200670-date-20220601142439-8jolHvVR2XcXC1")
    );
    let sort_key = text(item, "timestamp").unwrap();
    assert!(
        sort_key.starts_with("2022-06-01T06:24:43.000Z#bounced#"),
        "{sort_key}"
    );
    assert_eq!(text(item, "bounce_type").as_deref(), Some("hard"));
    assert_eq!(
        text(item, "reason").as_deref(),
        Some("551 5.1.1 recipient is not exist")
    );
    assert_eq!(text(item, "status_code").as_deref(), Some("551 5.1.1"));
    let metadata = item["metadata"].as_m().unwrap();
    assert_eq!(
        metadata["X-Tencentcloudses-Cb-Info"].as_s().unwrap(),
        "ses callback"
    );
    assert!(
        !item.contains_key("expires_at"),
        "no TTL unless EVENT_RETENTION_DAYS is set"
    );
}

#[tokio::test]
async fn same_request_twice_leaves_one_item_per_event() {
    let db = Emulator::start().await;
    let app = app(&db);
    let body = fixture("uspeedo", "batch");
    let (_, first) = parts(app.handle(signed_post("uspeedo", &body)).await);
    let (status, second) = parts(app.handle(signed_post("uspeedo", &body)).await);
    assert_eq!(
        first,
        json!({"code":0,"message":"ok","received":3,"stored":3,"duplicates":0,"quarantined":0})
    );
    assert_eq!(
        (status, second),
        (
            200,
            json!({"code":0,"message":"ok","received":3,"stored":0,"duplicates":3,"quarantined":0})
        )
    );
    assert_eq!(db.items().await.len(), 3);
}

#[tokio::test]
async fn re_serialized_retry_is_still_a_duplicate() {
    let db = Emulator::start().await;
    let app = app(&db);
    let body = fixture("engagelab", "click");
    let compact =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&body).unwrap()).unwrap();
    parts(app.handle(signed_post("engagelab", &body)).await);
    let (_, reply) = parts(app.handle(signed_post("engagelab", &compact)).await);
    assert_eq!(reply["duplicates"], 1);
    assert_eq!(db.items().await.len(), 1);
}

#[tokio::test]
async fn uspeedo_batch_retried_after_a_partial_failure_ends_with_exactly_the_right_items() {
    let db = Emulator::start().await;
    let app = app(&db);
    // A first attempt stored only the first item before failing.
    let batch: serde_json::Value = serde_json::from_slice(&fixture("uspeedo", "batch")).unwrap();
    let first_only = json!({"MsgType": 2, "Data": [batch["Data"][0].clone()]});
    parts(
        app.handle(signed_post("uspeedo", first_only.to_string().as_bytes()))
            .await,
    );
    // The provider retries the whole batch.
    let (status, reply) = parts(
        app.handle(signed_post("uspeedo", &fixture("uspeedo", "batch")))
            .await,
    );
    assert_eq!(status, 200);
    assert_eq!(
        (reply["stored"].as_u64(), reply["duplicates"].as_u64()),
        (Some(2), Some(1))
    );
    let mut types: Vec<String> = db
        .items()
        .await
        .iter()
        .map(|i| text(i, "event_type").unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["delivered", "opened", "queued"]);
}

#[tokio::test]
async fn engagelab_target_becomes_one_item_per_recipient() {
    let db = Emulator::start().await;
    let (_, reply) = parts(
        app(&db)
            .handle(signed_post(
                "engagelab",
                &fixture("engagelab", "target_multi"),
            ))
            .await,
    );
    assert_eq!(reply["stored"], 2);
    let mut recipients: Vec<String> = db
        .items()
        .await
        .iter()
        .map(|i| text(i, "recipient").unwrap())
        .collect();
    recipients.sort();
    assert_eq!(recipients, ["12345@hotmail.com", "67890@gmail.com"]);
}

#[tokio::test]
async fn recipient_index_answers_what_happened_to_an_address() {
    let db = Emulator::start().await;
    let app = app(&db);
    for name in ["request_products_doc", "deliver", "open", "click"] {
        parts(
            app.handle(signed_post("uspeedo", &fixture("uspeedo", name)))
                .await,
        );
    }
    let result = db
        .client
        .query()
        .table_name(TABLE)
        .index_name(mailhooks::store::codec::RECIPIENT_INDEX)
        .key_condition_expression("recipient = :r")
        .expression_attribute_values(
            ":r",
            aws_sdk_dynamodb::types::AttributeValue::S("user@example.com".into()),
        )
        .send()
        .await
        .unwrap();
    let types: Vec<String> = result
        .items()
        .iter()
        .map(|i| text(i, "event_type").unwrap())
        .collect();
    assert_eq!(types, ["delivered", "opened", "clicked"], "in time order");
}

#[tokio::test]
async fn retention_sets_the_ttl_attribute() {
    let db = Emulator::start().await;
    let app = app_with(&db.endpoint, config(&[("EVENT_RETENTION_DAYS", "90")]));
    parts(
        app.handle(signed_post("tencent", &fixture("tencent", "open")))
            .await,
    );
    let items = db.items().await;
    assert_eq!(
        items[0]["expires_at"].as_n().unwrap(),
        &(NOW_SECS + 90 * 86_400).to_string()
    );
}

#[tokio::test]
async fn route_event_beyond_the_item_limit_is_stored_compressed() {
    let db = Emulator::start().await;
    let mut route: serde_json::Value =
        serde_json::from_slice(&fixture("engagelab", "route")).unwrap();
    let html = "<p>Quarterly report attached, see the table below.</p>".repeat(20_000);
    route["response"]["response_data"]["html"] = json!(html);
    route["response"]["response_data"]["raw_message"] = json!(html.clone());
    let body = route.to_string();
    assert!(body.len() > 2_000_000);
    let (status, reply) = parts(
        app(&db)
            .handle(signed_post("engagelab", body.as_bytes()))
            .await,
    );
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
    let items = db.items().await;
    assert_eq!(text(&items[0], "raw_encoding").as_deref(), Some("gzip"));
    assert_eq!(text(&items[0], "event_type").as_deref(), Some("inbound"));
    let raw = mailhooks::store::codec::raw_payload(&items[0]).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&raw).unwrap(),
        route
    );
}

#[tokio::test]
async fn unknown_event_types_are_stored_as_unknown() {
    let db = Emulator::start().await;
    let body = br#"{"MsgType":2,"Data":[{"MsgId":"m-9","Event":"teleported","ReceiptTime":1234567890,"ReceiptDesc":"??"}]}"#;
    let (status, _) = parts(app(&db).handle(signed_post("uspeedo", body)).await);
    assert_eq!(status, 200);
    let items = db.items().await;
    assert_eq!(text(&items[0], "event_type").as_deref(), Some("unknown"));
    assert_eq!(
        text(&items[0], "provider_event").as_deref(),
        Some("teleported")
    );
}

#[tokio::test]
async fn store_unreachable_answers_503_so_the_provider_retries() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let app = app_with(&endpoint, config(&[("STORE_TIMEOUT_MS", "1500")]));
    let (status, reply) = parts(
        app.handle(signed_post("tencent", &fixture("tencent", "delivered")))
            .await,
    );
    assert_eq!(status, 503);
    assert_eq!(reply["error"], "storage_unavailable");
}

#[tokio::test]
async fn missing_table_answers_500() {
    let db = Emulator::start().await;
    let client =
        mailhooks::store::sdk::local_client(&db.endpoint, std::time::Duration::from_secs(2));
    let store = mailhooks::store::DynamoStore::new(client, "no-such-table", None);
    let app = mailhooks::App::new(
        config(&[]),
        store,
        std::sync::Arc::new(mailhooks::auth::FixedClock(NOW_MS)),
    );
    let (status, reply) = parts(
        app.handle(signed_post("tencent", &fixture("tencent", "delivered")))
            .await,
    );
    assert_eq!(
        (status, reply["error"].as_str()),
        (500, Some("storage_misconfigured"))
    );
}

#[tokio::test]
async fn probes_routes_and_methods() {
    let db = Emulator::start().await;
    let app = app(&db);
    for method in ["GET", "HEAD"] {
        let (status, _) = parts(
            app.handle(to_request(&apigw_event(
                method,
                "/webhooks/engagelab",
                "",
                &[],
                b"",
            )))
            .await,
        );
        assert_eq!(status, 200, "{method}");
    }
    let (status, body) = parts(
        app.handle(to_request(&apigw_event(
            "POST",
            "/webhooks/nonesuch",
            "",
            &[],
            b"{}",
        )))
        .await,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_provider"))
    );
    let (status, _) = parts(
        app.handle(to_request(&apigw_event(
            "POST",
            "/hooks/tencent",
            "",
            &[],
            b"{}",
        )))
        .await,
    );
    assert_eq!(status, 404);
    let (status, body) = parts(
        app.handle(to_request(&apigw_event(
            "PUT",
            "/webhooks/tencent",
            "",
            &[],
            b"{}",
        )))
        .await,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert!(db.items().await.is_empty());
}

#[tokio::test]
async fn stage_prefix_and_base64_bodies_are_handled() {
    let db = Emulator::start().await;
    let app = app(&db);
    let body = fixture("engagelab", "open");
    let headers = signed("engagelab", &secrets("engagelab")[1], &body).headers;
    let mut event = apigw_event("POST", "/prod/webhooks/engagelab", "", &headers, &body);
    event["requestContext"]["stage"] = json!("prod");
    use base64::Engine;
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    event["isBase64Encoded"] = json!(true);
    let (status, reply) = parts(app.handle(to_request(&event)).await);
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
}

#[tokio::test]
async fn alb_and_function_url_events_are_accepted() {
    let db = Emulator::start().await;
    let app = app(&db);
    let body = String::from_utf8(fixture("tencent", "click")).unwrap();
    let alb = json!({
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mailhooks/abc"}},
        "httpMethod": "POST",
        "path": "/webhooks/tencent",
        "queryStringParameters": {"token": secrets("tencent")[0]},
        "headers": {"content-type": "application/json", "host": "hooks.example.com:8080"},
        "body": body,
        "isBase64Encoded": false
    });
    let (status, reply) = parts(app.handle(to_request(&alb)).await);
    assert_eq!(
        (status, reply["stored"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );

    let mut url_event = apigw_event(
        "POST",
        "/webhooks/tencent",
        &format!("token={}", secrets("tencent")[1]),
        &[],
        body.as_bytes(),
    );
    url_event["requestContext"]["domainName"] = json!("abcdefgh.lambda-url.us-east-1.on.aws");
    let (status, reply) = parts(app.handle(to_request(&url_event)).await);
    assert_eq!(
        (status, reply["duplicates"].as_u64()),
        (200, Some(1)),
        "{reply}"
    );
}
