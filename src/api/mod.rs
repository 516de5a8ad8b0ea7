//! The local API: the `io.svirtpool` varlink interface on a Unix socket, for
//! virt-manager's pool picker, libvirt hooks and scripts.

mod args;
pub mod auth;
pub mod client;
mod monitor;
mod pages;
pub mod replies;
pub mod server;
pub mod service;
mod session;
pub mod types;
