//! Fuzzes the whole request path — route, headers, authentication, parsing,
//! item building — through `App::handle`, with an in-memory store. Secrets:
//! tencent `t`, engagelab `k`, uspeedo `u`; the timestamp window is off so
//! signed seeds stay valid.
#![no_main]

use std::sync::{Arc, OnceLock};

use mailhooks::auth::FixedClock;
use mailhooks::event::EmailEvent;
use mailhooks::store::{EventStore, PutOutcome, StoreError, item};
use mailhooks::{App, Config};

/// Builds every item (as the DynamoDB store would) and keeps nothing.
struct ItemBuildingStore;

impl EventStore for ItemBuildingStore {
    async fn put_events(&self, events: &[EmailEvent], received_at_ms: i64) -> Result<PutOutcome, StoreError> {
        for event in events {
            let built = item::build(event, received_at_ms, Some(30));
            assert!(item::estimate_item(&built) <= item::MAX_ITEM_BYTES);
        }
        Ok(PutOutcome { stored: events.len(), ..PutOutcome::default() })
    }
}

fn app() -> &'static (tokio::runtime::Runtime, App<ItemBuildingStore>) {
    static APP: OnceLock<(tokio::runtime::Runtime, App<ItemBuildingStore>)> = OnceLock::new();
    APP.get_or_init(|| {
        let vars = [
            ("TABLE_NAME", "fuzz"),
            ("TENCENT_TOKENS", "t"),
            ("ENGAGELAB_APP_KEYS", "k"),
            ("USPEEDO_TOKENS", "u"),
            ("MAILHOOKS_DEV_SKIP_FRESHNESS", "true"),
            ("EMIT_METRICS", "false"),
        ];
        let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
            .unwrap_or_else(|e| panic!("fuzz config: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap_or_else(|e| panic!("{e}"));
        (runtime, App::new(config, ItemBuildingStore, Arc::new(FixedClock(1_795_342_530_000))))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(request) = mailhooks::fuzz_support::parse_request(data) else { return };
    let (runtime, app) = app();
    let status = runtime.block_on(app.handle(request)).status().as_u16();
    assert!(matches!(status, 200 | 400 | 401 | 404 | 405 | 413), "unexpected status {status}");
});
