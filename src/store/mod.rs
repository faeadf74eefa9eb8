//! The only modules that do network I/O: S3 ([`s3`], with [`records`], the
//! release records kept outside the public prefix), Redis ([`redis`]: one
//! server of any topology; [`registries`]: every configured Redis target;
//! [`lock`]), the CDN ([`cdn`]), CloudFront ([`cloudfront`]), webhooks
//! ([`notify`]) and the AWS configuration they share ([`aws`]). They speak in the vocabulary of
//! `contract`, `state` and `release`; they know nothing of plans or
//! commands.

pub mod aws;
mod body;
pub mod cdn;
pub mod cloudfront;
pub mod lock;
pub mod notify;
pub mod permissions;
pub mod records;
pub mod redis;
pub mod registries;
pub mod s3;
pub mod scripts;
