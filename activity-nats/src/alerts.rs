//! Alert rules evaluated on the stream: the same [`AlertRule`]s that
//! `activity_seaorm::ops::alerts::AlertEvaluator` checks against the database on a schedule, here counted
//! as committed entries arrive, so a breach is reported within moments instead of at the next
//! scheduled run.
//!
//! Windows are in the entries' own time (`created_at`), so a replayed or delayed stream gives
//! the same breaches as a live one. The de-duplication rule is the database evaluator's: a
//! (rule, group) that fired is quiet until a whole window has passed since the breach it
//! reported, so the handler is called once per breach, not once per entry.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use activity_seaorm::ActivityEntry;
use activity_seaorm::ops::alerts::{AlertGroup, AlertHandler, AlertRule, Breach};
use async_nats::jetstream::{self, consumer::pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::error::{Error, boxed};

/// Counts of the rules' recent matching entries, per rule and group.
#[derive(Debug)]
pub struct StreamAlerts {
    rules: Vec<AlertRule>,
    /// Times of the matching entries still inside each (rule, group)'s window.
    seen: HashMap<(usize, Option<String>), VecDeque<DateTime<Utc>>>,
    fired: HashMap<(usize, Option<String>), DateTime<Utc>>,
}

/// A rule the stream cannot evaluate.
#[derive(Debug, thiserror::Error)]
#[error("alert rule {rule:?} cannot run on the stream: {why}")]
pub struct UnsupportedRule {
    /// The rule's name.
    pub rule: String,
    /// Why.
    pub why: &'static str,
}

impl StreamAlerts {
    /// Evaluate `rules` on entries as they come. Rules the database evaluator refuses (no
    /// tenant and not `unscoped()`, no reader under a read policy, a window not longer than
    /// zero) are refused here too, and so
    /// are rules with text search or detail filters (which need the database's JSON operators):
    /// evaluate those with `AlertEvaluator` on a schedule.
    pub fn new(rules: Vec<AlertRule>) -> Result<Self, UnsupportedRule> {
        for rule in &rules {
            let why = if rule.query.check_tenant().is_err() {
                // As the database evaluator: a rule names its tenant or is explicitly unscoped.
                Some("no team or organization, and not `unscoped()`")
            } else if rule.query.check_reader().is_err() {
                // As every read under a read policy: whose view is counted is explicit.
                Some("no reader, and a read policy is configured (Reader::auditor() counts all)")
            } else if rule.query.search.is_some() {
                Some("text search")
            } else if !rule.query.detail_filters.is_empty() {
                Some("detail filters")
            } else if rule.window <= chrono::Duration::zero() {
                Some("a window not longer than zero")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(UnsupportedRule {
                    rule: rule.name.clone(),
                    why,
                });
            }
        }
        Ok(Self {
            rules,
            seen: HashMap::new(),
            fired: HashMap::new(),
        })
    }

    /// Count `entry` and report each breach it completes (at most one per rule and group per
    /// window): the handler is called for each, and they are returned.
    pub async fn observe(
        &mut self,
        entry: &ActivityEntry,
        handler: &dyn AlertHandler,
    ) -> Vec<Breach> {
        let now = entry.created_at;
        let mut reported = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let mut query = rule.query.clone();
            // The window, not the query's own range, bounds what counts.
            query.from = None;
            query.to = None;
            // The read policy for the rule's reader, as the database evaluator applies it.
            if !query.matches_columns(entry) || !query.allows(entry, activity_seaorm::clock::now())
            {
                continue;
            }
            let group = match rule.group {
                AlertGroup::Organization => entry.organization_id.clone(),
                AlertGroup::Team => entry.team_id.clone(),
                AlertGroup::User => entry.user_id.clone(),
                _ => None,
            };
            let key = (index, group.clone());
            let times = self.seen.entry(key.clone()).or_default();
            times.push_back(now);
            let from = now - rule.window;
            // `(from, now]`, as the database evaluator counts.
            while times.front().is_some_and(|t| *t <= from) {
                times.pop_front();
            }
            let count = times.len() as u64;
            if count <= rule.threshold {
                continue;
            }
            if let Some(fired_at) = self.fired.get(&key)
                && now < *fired_at + rule.window
            {
                continue;
            }
            let breach = Breach::new(rule.name.clone(), group, count, rule.threshold, from, now);
            tracing::warn!(rule = %rule.name, group = ?breach.group, count, "activity alert rule breached (stream)");
            handler.on_breach(&breach).await;
            self.fired.insert(key, now);
            reported.push(breach);
        }
        reported
    }

    /// Evaluate the rules on the stream with a durable consumer (`durable` on `stream`, every
    /// subject) until the consumer fails: each entry is acknowledged once observed. The counts
    /// live in this process; a restart counts afresh from where the consumer resumes.
    pub async fn run(
        &mut self,
        client: async_nats::Client,
        stream: &str,
        durable: &str,
        handler: &dyn AlertHandler,
    ) -> Result<(), Error> {
        let js = jetstream::new(client);
        let stream = js
            .get_stream(stream)
            .await
            .map_err(|e| Error::Stream(boxed(e)))?;
        let consumer = stream
            .get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_owned()),
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::Consumer(boxed(e)))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Error::Consumer(boxed(e)))?;
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "alerts: consumer hiccup");
                    continue;
                }
            };
            if crate::subject::is_erasure_traffic(&message) {
                // Counted once already, as it happened.
                message.ack().await.map_err(Error::Consumer)?;
                continue;
            }
            match serde_json::from_slice::<ActivityEntry>(&message.payload) {
                Ok(entry) => {
                    self.observe(&entry, handler).await;
                }
                Err(e) => tracing::error!(error = %e, "alerts: not an activity entry; skipped"),
            }
            message.ack().await.map_err(Error::Consumer)?;
        }
        Ok(())
    }
}
