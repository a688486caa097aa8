//! Resource subscriptions: which connection asked to hear of which
//! subscribable resource, and the handle a handler uses to say one changed.
//!
//! Two ways in, one table:
//! - **2026-07-28** `subscriptions/listen`: a request that stays open and
//!   carries the notifications; it works over stateless HTTP, and its
//!   subscriptions end with the request.
//! - **2025-11-25** `resources/subscribe`: kept per connection, the stdio
//!   process or a legacy HTTP session (`access.sessions`), which drops its
//!   subscriptions when it closes.
//!
//! Each connection holds at most [`MAX_PER_CONNECTION`] URIs, and at most
//! [`MAX_LISTENERS`] listen streams are open at once, so the table is bounded.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::SubscriptionSink;
use rmcp::{Peer, RoleServer};

/// Subscriptions one connection may hold: more than a contract's resources,
/// far fewer than a client looping over a template's URIs would ask for.
pub const MAX_PER_CONNECTION: usize = 64;

/// `subscriptions/listen` streams open at once, over all callers.
pub const MAX_LISTENERS: usize = 4096;

/// Every connection's subscriptions, shared by all the server's connections.
#[derive(Default)]
pub struct Subscriptions {
    connections: Mutex<HashMap<Arc<str>, Connection>>,
    listeners: std::sync::atomic::AtomicU64,
}

struct Connection {
    sink: Sink,
    uris: BTreeSet<String>,
}

/// Where a connection's notifications go.
#[derive(Clone)]
enum Sink {
    /// The connection itself (stdio, a legacy session's GET stream).
    Peer(Peer<RoleServer>),
    /// A `subscriptions/listen` request's stream, which tags each notification with its id.
    Listen(SubscriptionSink),
}

/// A subscription refused because the connection, or the server, holds its share.
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany;

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Connection>> {
        // A panic elsewhere while holding the lock leaves a map that is still whole.
        self.connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that `connection` (reached through `peer`) wants to hear of `uri`.
    /// Subscribing twice is one subscription.
    pub fn subscribe(&self, connection: &str, peer: &Peer<RoleServer>, uri: &str) -> Result<(), TooMany> {
        let mut connections = self.lock();
        let entry = connections.entry(Arc::from(connection)).or_insert_with(|| Connection {
            sink: Sink::Peer(peer.clone()),
            uris: BTreeSet::new(),
        });
        if entry.uris.contains(uri) {
            return Ok(());
        }
        if entry.uris.len() >= MAX_PER_CONNECTION {
            return Err(TooMany);
        }
        entry.uris.insert(uri.to_owned());
        Ok(())
    }

    /// Registers a `subscriptions/listen` stream for `uris` (already accepted and
    /// authorized); the returned key ends it through [`Subscriptions::forget`].
    pub fn listen(&self, sink: SubscriptionSink, uris: Vec<String>) -> Result<String, TooMany> {
        let mut connections = self.lock();
        let open = connections.keys().filter(|k| k.starts_with("listen:")).count();
        if open >= MAX_LISTENERS || uris.len() > MAX_PER_CONNECTION {
            return Err(TooMany);
        }
        let n = self.listeners.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("listen:{n}");
        connections.insert(
            Arc::from(key.as_str()),
            Connection {
                sink: Sink::Listen(sink),
                uris: uris.into_iter().collect(),
            },
        );
        Ok(key)
    }

    /// Ends one subscription; `false` if there was none.
    pub fn unsubscribe(&self, connection: &str, uri: &str) -> bool {
        let mut connections = self.lock();
        let Some(entry) = connections.get_mut(connection) else {
            return false;
        };
        let removed = entry.uris.remove(uri);
        if entry.uris.is_empty() {
            connections.remove(connection);
        }
        removed
    }

    /// Drops every subscription of a connection that closed.
    pub fn forget(&self, connection: &str) {
        self.lock().remove(connection);
    }

    /// Subscriptions held, over all connections.
    pub fn len(&self) -> usize {
        self.lock().values().map(|c| c.uris.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn subscribers(&self, uri: &str) -> Vec<(Arc<str>, Sink)> {
        self.lock()
            .iter()
            .filter(|(_, c)| c.uris.contains(uri))
            .map(|(id, c)| (id.clone(), c.sink.clone()))
            .collect()
    }
}

/// What a handler holds to report that a subscribable resource changed:
/// `context.resources.updated(uri)`. Cheap to clone, so a handler may keep
/// one in a background task that watches the data behind a resource.
#[derive(Clone, Default)]
pub struct ResourceUpdates {
    /// `None` in a context built outside a server (tests, background work): nobody to tell.
    /// Not an empty table, so a request's context costs no allocation until a handler gets it.
    hub: Option<Arc<Subscriptions>>,
}

impl std::fmt::Debug for ResourceUpdates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.hub.as_ref().map_or(0, |hub| hub.len());
        f.debug_struct("ResourceUpdates").field("subscriptions", &held).finish()
    }
}

impl ResourceUpdates {
    pub(crate) fn new(hub: Arc<Subscriptions>) -> ResourceUpdates {
        ResourceUpdates { hub: Some(hub) }
    }

    /// Sends `notifications/resources/updated` for `uri` to every connection
    /// subscribed to it, and returns how many were told. A connection that
    /// cannot be reached any more loses its subscriptions.
    pub async fn updated(&self, uri: &str) -> usize {
        let Some(hub) = &self.hub else {
            return 0;
        };
        let mut told = 0;
        for (connection, sink) in hub.subscribers(uri) {
            let sent = match &sink {
                Sink::Peer(peer) => peer
                    .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                    .await
                    .map_err(|e| e.to_string()),
                Sink::Listen(sink) => sink.notify_resource_updated(uri).await.map_err(|e| e.to_string()),
            };
            match sent {
                Ok(()) => told += 1,
                Err(e) => {
                    tracing::debug!(uri, error = %e, "a subscriber's connection is gone; dropping its subscriptions");
                    hub.forget(&connection);
                }
            }
        }
        told
    }
}
