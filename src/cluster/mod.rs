//! The cluster registry: what hosts that share storage must agree on, kept in etcd v3.
//!
//! Guests and their pairs are cluster-wide (docs/cluster.md): a pair is allocated in one
//! etcd transaction that creates the guest's key and the pair's key only if neither
//! exists, so two hosts can never hand out one pair. The keys, below the configured
//! prefix:
//!
//! | key | value |
//! |---|---|
//! | `guests/UUID` | the guest (JSON: name, pair, owner, run pair, libvirt flag) |
//! | `pairs/LOW.HIGH` | the UUID of the guest that holds the pair, as its own or as the pair it runs with |
//! | `owners/UID/UUID` | empty: the guests of a member, for its quota |
//!
//! Every call is bounded by the configured timeout and fails naming etcd and its
//! endpoints; nothing waits for etcd longer.

pub mod admin;
mod guests;
mod holds;
mod kv;
pub mod presence;

pub use guests::EtcdGuests;
pub use holds::EtcdHolds;
pub use kv::Kv;

#[cfg(test)]
pub(crate) mod tests;
