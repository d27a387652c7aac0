//! Child process of the relay test (`tests/relay.rs`): one relay, run until killed.
//!
//! `outbox_relay <database-url> <schema or -> <nats-url>`

use std::time::Duration;

use activity_nats::{Relay, RelayConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, schema, nats] = &args[..] else {
        panic!("usage: outbox_relay <database-url> <schema or -> <nats-url>");
    };
    let schema = (schema != "-").then_some(schema.as_str());
    let db = activity_tests::connect_sized(url, schema, 2).await;
    // NATS may be down when a relay starts: connect in the background and catch up.
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.as_str())
        .await
        .expect("nats client");
    // `RELAY_IDLE_MS=first,longest`: the relay's defaults with these idle polls (for measuring
    // what an idle relay costs); without it, the kill test's quick settings.
    let config = match std::env::var("RELAY_IDLE_MS") {
        Ok(idle) => {
            let ms: Vec<u64> = idle.split(',').filter_map(|v| v.parse().ok()).collect();
            let [first, longest] = ms[..] else {
                panic!("RELAY_IDLE_MS=<first>,<longest>");
            };
            RelayConfig::default()
                .with_idle_poll(Duration::from_millis(first), Duration::from_millis(longest))
        }
        Err(_) => RelayConfig::default()
            .with_batch_rows(20)
            .with_idle_poll(Duration::from_millis(10), Duration::from_millis(100))
            .with_backoff(Duration::from_millis(50), Duration::from_millis(500))
            .with_ack_timeout(Duration::from_secs(1)),
    };
    Relay::with_config(db, client, config).run().await;
}
