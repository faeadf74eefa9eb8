//! The only modules that do network I/O: S3 ([`s3`], [`records`]) and Redis
//! ([`redis`], [`targets`], [`lock`]). They speak in the vocabulary of `contract`,
//! `state` and `release`; they know nothing of plans or commands.

pub mod aws;
mod body;
pub mod cdn;
pub mod cloudfront;
pub mod lock;
pub mod records;
pub mod redis;
pub mod s3;
pub mod scripts;
pub mod targets;
