//! cutover: ship a front-end build (webpack, Vite, Propshaft, Sprockets) to
//! S3/CloudFront and switch the live manifest in Redis atomically.
//!
//! The binary ([`cli`]) is a thin front over this library. Every command
//! ([`commands`]) that changes something goes one way: gather the facts (the
//! [`build`], and the remote [`state`] read through the [`store`]s), make a
//! [`plan`] (pure: decisions and the writes as steps), hand the steps to
//! the executor ([`exec`]) — a dry run prints them instead — and return a
//! typed outcome that [`render`]s as text or JSON. [`config`] holds the one
//! table of settings, [`contract`] the names other programs read,
//! [`release`] the release's identity and record, [`error`] the one table
//! of exit codes, [`notify`] what a switching command tells its webhooks.

pub mod build;
pub mod canary;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contract;
pub mod error;
pub mod events;
pub mod exec;
pub mod fleet;
pub mod notify;
pub mod plan;
pub mod release;
pub mod render;
pub mod signing;
pub mod state;
pub mod store;
