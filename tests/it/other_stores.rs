//! The store against another DynamoDB implementation: moto's server (started by
//! `.ci/moto-tests.sh`), which answers PartiQL's `BatchExecuteStatement` with a
//! 500. The batch path must still store every event once and count exactly,
//! through its conditional `PutItem` fallback. Ignored by a plain `cargo test`
//! because it needs that server.

use std::time::Duration;

use mailhooks::event::{EmailEvent, EventType};
use mailhooks::store::{DynamoStore, sdk, table};

fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run bash .ci/moto-tests.sh")
}

fn events(prefix: &str, n: usize) -> Vec<EmailEvent> {
    (0..n)
        .map(|i| {
            let mut event = EmailEvent::new(
                "uspeedo",
                EventType::Delivered,
                "deliver",
                format!("{prefix}-{i}"),
                1_700_000_000_000,
                format!("{{\"i\":{i}}}"),
            );
            event.recipient = Some(format!("u{i}@example.com"));
            event
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs a DynamoDB API other than the emulator: bash .ci/moto-tests.sh"]
async fn a_store_without_partiql_inserts_stores_large_batches_exactly_once() {
    let client = sdk::local_client(&moto_endpoint(), Duration::from_secs(10));
    let name = format!("mailhooks-other-{}", std::process::id());
    table::create_table(&client, &name).await.unwrap();
    let store = DynamoStore::new(client.clone(), &name, None);
    for prefix in ["first", "second"] {
        let batch = events(prefix, 60);
        let stored = store.put_batch(&batch, 0).await.unwrap();
        assert_eq!((stored.stored, stored.duplicates), (60, 0), "{prefix}");
        let again = store.put_batch(&batch, 0).await.unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 60), "{prefix}");
    }
    let count = client
        .scan()
        .table_name(&name)
        .send()
        .await
        .unwrap()
        .count();
    assert_eq!(count, 120);
}
