//! cutover: ship a webpack build to S3/CloudFront and switch the Rails
//! manifest in Redis atomically.
//!
//! The binary ([`cli`]) is a thin front over this library. A command
//! ([`commands`]) reads the [`build`] and the remote [`state`] through the
//! [`store`]s, makes a [`plan`] (pure: decisions and the writes as steps),
//! and hands the steps to the executor ([`exec`]); a dry run prints them
//! instead. [`config`] holds the one table of settings, [`contract`] the
//! names other programs read, [`error`] the one table of exit codes.

pub mod build;
pub mod cli;
pub mod commands;
pub mod config;
pub mod contract;
pub mod error;
pub mod events;
pub mod exec;
pub mod plan;
pub mod release;
pub mod render;
pub mod state;
pub mod store;
