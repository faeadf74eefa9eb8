//! How cutover connects to Redis (one server, a cluster, a master behind
//! Sentinel, each with TLS) and how a Redis failure is told: one line with
//! the URL masked and the fix named.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ClientTlsConfig, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline,
    RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

use crate::config::sentinel::SentinelUrl;
use crate::config::{mask_url, Config};
use crate::error::Failure;

/// A connection of one of the kinds [`Endpoint`] describes. The rest of the
/// registry sends commands through it and never asks which kind it is.
#[derive(Clone)]
pub(super) enum Conn {
    /// Reconnects by itself after a dropped connection, so retried reads and
    /// the read-back after a failed activation go over a fresh connection.
    Single(ConnectionManager),
    /// Follows MOVED and ASK (slot migrations, failovers) by itself.
    Cluster(ClusterConnection),
    /// The master a Sentinel names, asked again after the connection fails.
    Sentinel(SentinelConn),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(p, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(p, offset, count),
            Conn::Sentinel(c) => c.commands(p, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.db,
        }
    }
}

/// A connection to the master that Sentinel names. After a connection
/// error, a timeout or READONLY (the master was demoted), the next command
/// asks the Sentinels again, so a retried read and the read-back after a
/// lost activation answer reach the new master. A command is never resent
/// here: whether to retry is the caller's decision.
#[derive(Clone)]
pub(super) struct SentinelConn {
    state: Arc<tokio::sync::Mutex<SentinelState>>,
    db: i64,
}

struct SentinelState {
    client: SentinelClient,
    master: Option<MultiplexedConnection>,
    config: AsyncConnectionConfig,
}

impl SentinelConn {
    async fn master(&self) -> RedisResult<MultiplexedConnection> {
        let mut state = self.state.lock().await;
        if let Some(conn) = &state.master {
            return Ok(conn.clone());
        }
        let client = state.client.async_get_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&state.config)
            .await?;
        state.master = Some(conn.clone());
        Ok(conn)
    }

    /// After this error, ask the Sentinels again before the next command.
    async fn check<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.code() == Some("READONLY")
            {
                self.state.lock().await.master = None;
            }
        }
        result
    }

    fn command<'a>(&'a self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let mut conn = self.master().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(result).await
        }
        .boxed()
    }

    fn commands<'a>(
        &'a self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        async move {
            let mut conn = self.master().await?;
            let result = conn.req_packed_commands(p, offset, count).await;
            self.check(result).await
        }
        .boxed()
    }
}

/// Where to connect: one URL, a Redis Cluster through a seed node, or a
/// master behind Sentinel, each with the TLS options. Built from the
/// configuration before anything connects, so a bad file or URL is bad
/// input (exit 2) with nothing changed.
#[derive(Clone)]
pub struct Endpoint {
    kind: Kind,
    /// CA certificates and client certificate from the configured files.
    certs: Option<TlsCertificates>,
    /// Skip verifying the server's certificate.
    insecure: bool,
    /// The URL as messages show it: password masked.
    shown: String,
}

#[derive(Clone)]
enum Kind {
    Single(String),
    /// A seed node's URL.
    Cluster(String),
    Sentinel {
        url: SentinelUrl,
        /// The Sentinels' own password.
        password: Option<String>,
    },
}

impl Endpoint {
    /// The endpoint `url` names, with the TLS and Sentinel settings of `config`.
    pub fn new(url: &str, config: &Config) -> anyhow::Result<Endpoint> {
        let shown = mask_url(url);
        let read = |key: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                Failure::input(format!(
                    "cannot read {key} {}: {e}; give the path of a PEM file",
                    path.display()
                ))
            })
        };
        let client_tls = match (&config.redis_tls_cert_file, &config.redis_tls_key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read("redis_tls_cert_file", cert)?,
                client_key: read("redis_tls_key_file", key)?,
            }),
            _ => None,
        };
        let root_cert = match &config.redis_ca_file {
            Some(path) => Some(read("redis_ca_file", path)?),
            None => None,
        };
        let certs = (client_tls.is_some() || root_cert.is_some()).then_some(TlsCertificates {
            client_tls,
            root_cert,
        });
        let insecure = config.redis_tls_insecure || url.ends_with("#insecure");
        let kind = if SentinelUrl::is_sentinel(url) {
            Kind::Sentinel {
                url: SentinelUrl::parse(url).map_err(|e| {
                    Failure::input(format!("invalid redis_url {shown}: expected {e}"))
                })?,
                password: config.redis_sentinel_password.clone(),
            }
        } else if config.redis_cluster {
            Kind::Cluster(url.to_string())
        } else {
            Kind::Single(url.to_string())
        };
        Ok(Endpoint {
            kind,
            certs,
            insecure,
            shown,
        })
    }

    /// Whether the primary can move under us (a failover, a slot
    /// migration): then a connection lost or a write refused as READONLY
    /// means "not applied, run again", not a wrong configuration.
    fn follows_failover(&self) -> bool {
        !matches!(self.kind, Kind::Single(_))
    }

    /// The single server's client, with the TLS options.
    fn single_client(&self, url: &str) -> RedisResult<redis::Client> {
        let mut info = url.into_connection_info()?;
        if self.insecure {
            if let ConnectionAddr::TcpTls {
                host,
                port,
                tls_params,
                ..
            } = info.addr().clone()
            {
                info = info.set_addr(ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: true,
                    tls_params,
                });
            }
        }
        match &self.certs {
            Some(certs) => redis::Client::build_with_tls(info, certs.clone()),
            None => redis::Client::open(info),
        }
    }

    fn sentinel_client(
        &self,
        url: &SentinelUrl,
        password: Option<&str>,
    ) -> RedisResult<SentinelClient> {
        let nodes = url
            .sentinels
            .iter()
            .map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder =
            SentinelClientBuilder::new(nodes, &url.master, SentinelServerType::Master)?
                .set_client_to_redis_db(url.db);
        if let Some(user) = &url.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(pass) = &url.password {
            builder = builder.set_client_to_redis_password(pass);
        }
        if let Some(pass) = password {
            builder = builder.set_client_to_sentinel_password(pass);
        }
        builder.build()
    }
}

pub(super) fn timed_out(timeout: Duration) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {}s", timeout.as_secs()),
    ))
}

/// Open a connection of the endpoint's kind and PING it, so a bad server
/// fails here, with a clear message, rather than halfway through. The one
/// place that knows the kinds.
pub(super) async fn open(endpoint: &Endpoint, timeout: Duration) -> anyhow::Result<Conn> {
    let mut conn = match &endpoint.kind {
        Kind::Single(url) => {
            let client = endpoint
                .single_client(url)
                .map_err(|e| bad_settings(endpoint, e))?;
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(1));
            Conn::Single(
                ConnectionManager::new_with_config(client, cfg)
                    .await
                    .map_err(|e| redis_error(endpoint, "connect to", e))?,
            )
        }
        Kind::Cluster(url) => {
            let mut builder = redis::cluster::ClusterClient::builder(vec![url.as_str()])
                .connection_timeout(timeout)
                .response_timeout(timeout);
            if let Some(certs) = &endpoint.certs {
                builder = builder.certs(certs.clone());
            }
            if endpoint.insecure {
                builder = builder.tls(TlsMode::Insecure);
            }
            let client = builder.build().map_err(|e| bad_settings(endpoint, e))?;
            Conn::Cluster(
                client
                    .get_async_connection()
                    .await
                    .map_err(|e| redis_error(endpoint, "connect to", e))?,
            )
        }
        Kind::Sentinel { url, password } => {
            let client = endpoint
                .sentinel_client(url, password.as_deref())
                .map_err(|e| bad_settings(endpoint, e))?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            let conn = SentinelConn {
                state: Arc::new(tokio::sync::Mutex::new(SentinelState {
                    client,
                    master: None,
                    config,
                })),
                db: url.db,
            };
            match conn.master().await {
                Ok(_) => Conn::Sentinel(conn),
                Err(e) if e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel => {
                    return Err(no_master(endpoint, &url.master, &conn).await)
                }
                Err(e) => return Err(redis_error(endpoint, "connect to", e)),
            }
        }
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| redis_error(endpoint, "connect to", e))?;
    Ok(conn)
}

/// A client the crate refused to build: a bad URL (or a TLS file that is
/// not what its key says).
fn bad_settings(endpoint: &Endpoint, e: redis::RedisError) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("PEM") || text.contains("certificate") || text.contains("private key") {
        return Failure::input(format!(
            "the TLS files for Redis at {} are not usable ({text}); redis_ca_file and redis_tls_cert_file take PEM certificates, redis_tls_key_file its PEM private key",
            endpoint.shown
        ));
    }
    let expected = match endpoint.kind {
        Kind::Sentinel { .. } => crate::config::sentinel::EXPECTED,
        _ => "redis://[user:password@]host:port[/db] or rediss://...",
    };
    Failure::input(format!(
        "invalid redis_url {}: {text}; expected {expected}",
        endpoint.shown
    ))
}

/// No Sentinel named a master that is up: say whether they do not know
/// the name (a configuration error) or know it without a master up (a
/// failover under way).
async fn no_master(endpoint: &Endpoint, name: &str, conn: &SentinelConn) -> anyhow::Error {
    let known = async {
        let sentinel = conn
            .state
            .lock()
            .await
            .client
            .async_get_sentinel_client()
            .await?;
        let mut c = sentinel.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(name)
            .query_async::<Value>(&mut c)
            .await
    }
    .await;
    match known {
        Err(e) if e.to_string().contains("No such master") => Failure::input(format!(
            "the Sentinels at {} monitor no master named {name:?}; put the name they use (SENTINEL MASTERS lists them) after the Sentinels in REDIS_URL: {}",
            endpoint.shown,
            crate::config::sentinel::EXPECTED
        )),
        _ => Failure::operation(format!(
            "the Sentinels at {} name no master {name:?} that is up (a failover may be under way); nothing was switched: run again",
            endpoint.shown
        )),
    }
}

/// One line for a Redis failure, with the URL masked and the fix named.
pub(super) fn redis_error(endpoint: &Endpoint, op: &str, e: redis::RedisError) -> anyhow::Error {
    let masked_url = endpoint.shown.as_str();
    let code = e.code().unwrap_or("");
    // A server error as Redis wrote it: "WRONGTYPE key holds ...".
    let text = match (e.code(), e.detail()) {
        (Some(c), Some(d)) => format!("{c} {d}"),
        _ => e.to_string(),
    };
    let lower = text.to_ascii_lowercase();
    let sentinel = matches!(endpoint.kind, Kind::Sentinel { .. });
    if matches!(code, "WRONGPASS" | "NOAUTH")
        || e.kind() == redis::ErrorKind::AuthenticationFailed
        || lower.contains("wrongpass")
        || lower.contains("noauth")
        || lower.contains("authentication failed")
    {
        let fix = if sentinel {
            "fix the master's password in REDIS_URL, or the Sentinels' in redis_sentinel_password"
        } else {
            "fix the password in REDIS_URL"
        };
        return Failure::input(format!(
            "Redis at {masked_url} rejected the credentials ({}); {fix}",
            if code.is_empty() {
                "authentication failed"
            } else {
                code
            }
        ));
    }
    if code == "NOPERM" || text.contains("NOPERM") {
        return Failure::input(format!(
            "the Redis user at {masked_url} may not run what cutover needs ({}); grant it (docs/redis.md, \"Minimal ACL\")",
            e.detail().unwrap_or(&text).trim()
        ));
    }
    if code == "READONLY" || text.contains("READONLY") {
        if endpoint.follows_failover() {
            return Failure::operation(format!(
                "Redis at {masked_url} refused to {op} it as READONLY: its master was demoted by a failover while cutover ran; nothing was switched: run again"
            ));
        }
        return Failure::input(format!(
            "Redis at {masked_url} is a read-only replica (READONLY); point REDIS_URL at the primary"
        ));
    }
    if lower.contains("cluster support disabled") {
        return Failure::input(format!(
            "Redis at {masked_url} is not a Redis Cluster; turn redis_cluster off (--redis-cluster, CUTOVER_REDIS_CLUSTER, cutover.toml)"
        ));
    }
    if (code == "MOVED" || code == "ASK" || text.starts_with("Moved"))
        && !endpoint.follows_failover()
    {
        return Failure::input(format!(
            "Redis at {masked_url} is a Redis Cluster node ({code}); turn redis_cluster on (--redis-cluster, CUTOVER_REDIS_CLUSTER=true or redis_cluster = true)"
        ));
    }
    if e.kind() == redis::ErrorKind::InvalidClientConfig {
        let fix = if lower.contains("keymismatch") || lower.contains("keys may not be consistent") {
            "redis_tls_key_file is not the private key of redis_tls_cert_file: give the key that certificate was made for"
        } else {
            "check redis_url and the TLS settings (redis_ca_file, redis_tls_cert_file, redis_tls_key_file)"
        };
        return Failure::input(format!("cannot {op} Redis at {masked_url}: {text}; {fix}"));
    }
    if let Some(fix) = tls_fix(&lower) {
        return Failure::input(format!(
            "cannot {op} Redis at {masked_url} over TLS: {text}; {fix}"
        ));
    }
    let again = if endpoint.follows_failover() {
        "; nothing was switched: if a failover or slot migration is under way, run again in a few seconds"
    } else {
        ""
    };
    if e.is_connection_refusal() || e.is_io_error() || e.is_timeout() {
        return Failure::operation(format!(
            "cannot {op} Redis at {masked_url}: {text}; check REDIS_URL and that Redis is running and reachable{again}"
        ));
    }
    Failure::operation(format!("cannot {op} Redis at {masked_url}: {text}{again}"))
}

/// The fix for a TLS handshake the server or cutover refused, from the
/// error's text (rustls' words); None when it is not such an error.
fn tls_fix(lower: &str) -> Option<&'static str> {
    if lower.contains("certificaterequired") || lower.contains("certificate required") {
        Some("this Redis asks for a client certificate: set redis_tls_cert_file and redis_tls_key_file")
    } else if lower.contains("unknownissuer")
        || lower.contains("unknown ca")
        || lower.contains("badsignature")
    {
        Some("its certificate is not signed by a CA cutover trusts: set redis_ca_file to the PEM of the CA that signed it (or, for a provider's self-signed certificate, redis_tls_insecure = true)")
    } else if lower.contains("notvalidforname") {
        Some("its certificate is not made out for this host name: connect with the name the certificate names")
    } else if lower.contains("invalid peer certificate") || lower.contains("decrypterror") {
        Some("check redis_ca_file, or the certificate the server presents")
    } else if lower.contains("alert")
        && (lower.contains("badcertificate")
            || lower.contains("bad certificate")
            || lower.contains("decrypt"))
    {
        Some("the server refused the client certificate: check redis_tls_cert_file and redis_tls_key_file against the CA the server trusts")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{exit_code, one_line};

    fn endpoint(url: &str, cluster: bool) -> Endpoint {
        let mut config = Config::default();
        config.redis_cluster = cluster;
        Endpoint::new(url, &config).unwrap()
    }

    fn readonly() -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "READONLY",
            "You can't write against a read only replica.".to_string(),
        ))
    }

    #[test]
    fn readonly_is_a_failover_where_the_primary_moves_and_a_fix_where_it_cannot() {
        // A plain URL at a replica: the configuration is wrong.
        let err = redis_error(&endpoint("redis://h:1", false), "activate on", readonly());
        assert_eq!(exit_code(&err), 2, "{err}");
        assert!(one_line(&err).contains("point REDIS_URL at the primary"));
        // Behind Sentinel or in a cluster, the master was demoted under us.
        for t in [
            endpoint("redis+sentinel://:pw@h:26379/mymaster", false),
            endpoint("redis://h:1", true),
        ] {
            let err = redis_error(&t, "activate on", readonly());
            assert_eq!(exit_code(&err), 1, "{err}");
            let line = one_line(&err);
            assert!(
                line.contains("READONLY") && line.contains("nothing was switched: run again"),
                "{line}"
            );
            assert!(!line.contains("pw@"), "{line}");
        }
    }
}
