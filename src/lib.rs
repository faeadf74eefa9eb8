//! cutover: ship a webpack build to S3/CloudFront and switch the Rails
//! manifest in Redis atomically.
//!
//! The binary is a thin wrapper over this library. Modules are the stages of
//! a deploy: [`scan`] the build, read its [`manifest`], [`plan`] against S3
//! and Redis, then execute with [`s3`] and [`registry`].

pub mod config;
pub mod error;
pub mod events;
pub mod headers;
pub mod manifest;
pub mod plan;
pub mod release;
pub mod scan;
