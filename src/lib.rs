//! cutover: ship a webpack build to S3/CloudFront and switch the Rails
//! manifest in Redis atomically.
//!
//! The binary is a thin wrapper over this library. Modules are the stages of
//! a deploy: [`scan`] the build, read its [`manifest`], [`plan`] against S3
//! and Redis, then execute with [`s3`] and [`registry`].

pub mod app;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod error;
pub mod events;
pub mod headers;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod registry;
pub mod release;
pub mod s3;
pub mod scan;
