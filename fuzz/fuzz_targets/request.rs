//! Fuzzes the whole request path — route, headers, authentication, parsing,
//! item building, quarantine — through `App::handle`, with an in-memory store
//! that builds every item as `DynamoStore` does and checks it against
//! DynamoDB's documented rules (`fuzz_support::check_item` for events,
//! `fuzz_support::check_record` for quarantine records) and, for the first and
//! then every 64th store, also writes the items into the embedded DynamoDB
//! emulator (the first, so that replaying one crash input takes that path too):
//! events with a plain put, records with the store's own conditional put
//! (`store::put_if_new`). Secrets: every provider's local
//! development secret (the seeds in `seeds/request/` are signed with them); the
//! timestamp window is off so signed seeds stay valid.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use mailhooks::auth::FixedClock;
use mailhooks::event::EmailEvent;
use mailhooks::fuzz_support::{check_item, check_record, new_record, record_item};
use mailhooks::local_server::{self, LocalOptions, LocalStack};
use mailhooks::providers::Unparsed;
use mailhooks::store::codec::{self, Item};
use mailhooks::store::{ClaimOutcome, EventStore, PutOutcome, QuarantineOutcome, ReplayClaim, StoreError, quarantine};
use mailhooks::{App, Config};

/// Table of the embedded emulator.
const TABLE: &str = "fuzz";
/// Every this many stores go to the emulator as well: a loopback round trip per
/// item, where the rule checker costs next to nothing.
const EMULATOR_EVERY: u64 = 64;

/// Builds and checks every item (as the DynamoDB store would) and keeps nothing.
struct ItemBuildingStore {
    emulator: LocalStack,
    stores: AtomicU64,
}

impl ItemBuildingStore {
    /// Whether this store (of events or of quarantined parts) also goes to the emulator.
    fn to_emulator(&self) -> bool {
        self.stores.fetch_add(1, Ordering::Relaxed).is_multiple_of(EMULATOR_EVERY)
    }

    /// Deletes a written item again, so that the in-memory table does not grow over a long run.
    async fn forget(&self, item: &Item) {
        let mut delete = self.emulator.client.delete_item().table_name(TABLE);
        for name in [codec::PARTITION_KEY, codec::SORT_KEY] {
            delete = delete.key(name, item.get(name).cloned().unwrap_or_else(|| panic!("no {name}")));
        }
        if let Err(err) = delete.send().await {
            panic!("the emulator did not delete an item: {err:?}");
        }
    }
}

impl EventStore for ItemBuildingStore {
    async fn put_events(&self, events: &[EmailEvent], received_at_ms: i64) -> Result<PutOutcome, StoreError> {
        let to_emulator = self.to_emulator();
        for event in events {
            let built = codec::encode(event, received_at_ms, Some(30));
            if let Err(broken) = check_item(event, &built) {
                panic!("item DynamoDB would refuse: {broken}");
            }
            if !to_emulator {
                continue;
            }
            let client = &self.emulator.client;
            if let Err(err) = client.put_item().table_name(TABLE).set_item(Some(built.clone())).send().await {
                panic!("the emulator refused an item: {err:?}");
            }
            self.forget(&built).await;
        }
        Ok(PutOutcome { stored: events.len(), ..PutOutcome::default() })
    }

    /// Builds each part's record as `DynamoStore` does without a raw archive
    /// (`quarantine::draft`, then `with_body`) and checks it; on the emulator's
    /// schedule writes it with the store's conditional put, which must find it new
    /// (every record written is deleted again).
    async fn quarantine(
        &self,
        provider: &str,
        parts: &[Unparsed],
        content_type: Option<&str>,
        received_at_ms: i64,
    ) -> Result<QuarantineOutcome, StoreError> {
        let to_emulator = self.to_emulator();
        for part in parts {
            let record = new_record(provider, part, content_type, received_at_ms);
            let built = record_item(&record);
            if let Err(broken) = check_record(&record, &built) {
                panic!("quarantine record DynamoDB would refuse: {broken}");
            }
            if !to_emulator {
                continue;
            }
            match mailhooks::store::put_if_new(&self.emulator.client, TABLE, built.clone()).await {
                Ok(true) => self.forget(&built).await,
                Ok(false) => panic!("a record deleted after its write was still there"),
                Err(err) => panic!("the emulator refused a quarantine record: {err:?}"),
            }
        }
        Ok(QuarantineOutcome { new: parts.len(), duplicates: 0 })
    }

    /// Keeps no claims, as it keeps no events: every claim is a first one.
    async fn claim_replay(&self, _claim: &ReplayClaim) -> Result<ClaimOutcome, StoreError> {
        Ok(ClaimOutcome::New)
    }
}

fn app() -> &'static (tokio::runtime::Runtime, App<ItemBuildingStore>) {
    static APP: OnceLock<(tokio::runtime::Runtime, App<ItemBuildingStore>)> = OnceLock::new();
    APP.get_or_init(|| {
        let mut vars = vec![
            ("TABLE_NAME", "fuzz"),
            ("MAILHOOKS_DEV_SKIP_FRESHNESS", "true"),
            ("EMIT_METRICS", "false"),
        ];
        vars.extend(mailhooks::providers::ALL.iter().map(|p| (p.secrets_env(), p.local_secret())));
        // SNS envelopes verify against the development certificate; nothing is fetched.
        let certificates = mailhooks::providers::ses::dev::temporary_certificate_dir()
            .unwrap_or_else(|e| panic!("certificate folder: {e}"));
        let certificates = certificates.to_string_lossy().into_owned();
        vars.push(("SNS_CERTIFICATES_DIR", certificates.as_str()));
        // The development URL of every provider that signs one, as the seeds are signed for it.
        vars.extend(mailhooks::providers::ALL.iter().filter_map(|p| p.signed_url()).map(|u| (u.env, u.local)));
        let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
            .unwrap_or_else(|e| panic!("fuzz config: {e}"));
        // One thread: the emulator's server task runs while a request is handled.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
        let options = LocalOptions { port: 0, dynamodb_port: 0, db: None, table: TABLE.into() };
        let emulator = runtime.block_on(local_server::start(&options)).unwrap_or_else(|e| panic!("emulator: {e}"));
        let store = ItemBuildingStore { emulator, stores: AtomicU64::new(0) };
        (runtime, App::new(config, store, Arc::new(FixedClock(1_795_342_530_000))))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(request) = mailhooks::fuzz_support::parse_request(data) else { return };
    let (runtime, app) = app();
    let status = runtime.block_on(app.handle(request)).status().as_u16();
    // 503: an SNS certificate named by the input is not in SNS_CERTIFICATES_DIR
    // (SNS would retry); the store here never fails.
    assert!(matches!(status, 200 | 400 | 401 | 404 | 405 | 413 | 503), "unexpected status {status}");
});
