//! Alert rules evaluated on the stream: the same [`AlertRule`]s that
//! `activity_seaorm::ops::alerts::AlertEvaluator` checks against the database on a schedule, here counted
//! as committed entries arrive, so a breach is reported within moments instead of at the next
//! scheduled run.
//!
//! Windows are in the entries' own time (`created_at`), so a replayed or delayed stream gives
//! the same breaches as a live one: each entry is counted with the entries of its group whose
//! time falls in the window ending at its own, whatever order they arrived in; a redelivered
//! entry (same id) counts once; an entry stamped ahead of the wall clock never pushes the
//! others out of the window; groups with nothing left in their window are forgotten. The
//! de-duplication rule is the database evaluator's: a (rule, group) that fired is quiet until a
//! whole window has passed since the breach it reported, so the handler is called once per
//! breach, not once per entry.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use activity_seaorm::ActivityEntry;
use activity_seaorm::ops::alerts::{AlertGroup, AlertHandler, AlertRule, Breach};
use async_nats::jetstream::{self, consumer::pull};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use uuid::Uuid;

use crate::error::{Error, boxed};

/// Counts of the rules' recent matching entries, per rule and group.
#[derive(Debug)]
pub struct StreamAlerts {
    rules: Vec<AlertRule>,
    /// The matching entries (time, id) still inside each (rule, group)'s window.
    seen: HashMap<GroupKey, BTreeSet<(DateTime<Utc>, Uuid)>>,
    fired: HashMap<GroupKey, DateTime<Utc>>,
    /// Entries observed since groups were last swept for idle ones.
    since_sweep: usize,
}

/// A rule (by index) and the group it counts (organization, team or user id).
type GroupKey = (usize, Option<String>);

/// How many observed entries between two sweeps of idle groups.
const SWEEP_EVERY: usize = 1024;

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
            since_sweep: 0,
        })
    }

    /// The (rule, group) pairs with entries in their window: bounded by what is recent, not by
    /// every user or tenant ever seen.
    pub fn tracked_groups(&self) -> usize {
        self.seen.len()
    }

    /// Count `entry` and report each breach it completes (at most one per rule and group per
    /// window): the handler is called for each, and they are returned.
    pub async fn observe(
        &mut self,
        entry: &ActivityEntry,
        handler: &dyn AlertHandler,
    ) -> Vec<Breach> {
        let now = entry.created_at;
        let wall = activity_seaorm::clock::now();
        let ahead = chrono::Duration::minutes(1);
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
            // A redelivery is the same (time, id): counted once.
            times.insert((now, entry.id));
            let from = now - rule.window;
            // Only an entry not stamped ahead of the wall clock moves the window on: one entry
            // from a fast clock must not push every other out of it.
            if now <= wall + ahead {
                let keep = times.split_off(&(from, Uuid::max()));
                *times = keep;
            }
            // `(from, now]`, as the database evaluator counts: the entries of the window ending
            // at this entry's time, whatever order they arrived in.
            let count = times
                .range((from, Uuid::max())..=(now, Uuid::max()))
                .count() as u64;
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
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.sweep(wall);
        }
        reported
    }

    /// Forget groups with nothing left in their window, and breaches whose quiet period is over.
    fn sweep(&mut self, wall: DateTime<Utc>) {
        let rules = &self.rules;
        let newest = self
            .seen
            .values()
            .filter_map(|t| t.last().map(|(at, _)| *at))
            .filter(|at| *at <= wall)
            .max();
        let Some(newest) = newest else {
            return;
        };
        self.seen.retain(|(index, _), times| {
            let Some(rule) = rules.get(*index) else {
                return false;
            };
            times
                .last()
                .is_some_and(|(at, _)| *at > newest - rule.window)
        });
        self.fired.retain(|(index, _), fired_at| {
            rules
                .get(*index)
                .is_some_and(|r| newest < *fired_at + r.window)
        });
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
