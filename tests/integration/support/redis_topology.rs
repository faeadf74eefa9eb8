//! Redis topologies on loopback ports, started by the tests: a Redis Cluster
//! of three masters with a replica each, a master with a replica behind
//! three Sentinels, and TLS servers with certificates made by openssl. Every
//! server dies with the test process; waits are on conditions, never sleeps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::servers::{free_port, spawn_server, wait_for_port};

/// One redis-server (or Sentinel) we started.
#[derive(Debug, Clone)]
pub struct Node {
    pub port: u16,
    pub pid: u32,
}

impl Node {
    /// Kill it as a crash would (SIGKILL) and wait until the port is closed.
    pub fn kill9(&self) {
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
        }
        wait_until(
            Duration::from_secs(10),
            "the killed server's port to close",
            || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
        );
    }
}

/// A redis-server on a free loopback port, in its own directory, with
/// `extra` arguments (or a config file as the first of them).
pub fn start_node(extra: &[&str]) -> Node {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!(
        "cutover-test-topology-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.args(extra);
    cmd.arg("--dir").arg(&dir).args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let pid = spawn_server(cmd);
    wait_for_port(port, "redis-server");
    Node { port, pid }
}

/// Poll `cond` until it holds; fail naming `what` after `limit`.
#[track_caller]
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `redis-cli -p PORT [-a PASSWORD] ARGS...`, its stdout.
pub fn cli(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.arg("-p").arg(port.to_string());
    if let Some(p) = password {
        cmd.args(["-a", p, "--no-auth-warning"]);
    }
    let out = cmd.args(args).output().expect("redis-cli is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One line of CLUSTER NODES.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Slot ranges it serves.
    pub slots: Vec<(u16, u16)>,
}

/// A Redis Cluster of masters with replicas, on loopback.
pub struct Cluster {
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// `masters` masters, each with `replicas` replicas, slots spread evenly;
    /// returns once every node agrees the cluster is ok and every replica
    /// is in sync.
    pub fn start(masters: usize, replicas: usize) -> Cluster {
        let nodes: Vec<Node> = (0..masters * (1 + replicas))
            .map(|_| {
                start_node(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli is installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Cluster { nodes };
        cluster.wait_settled(masters, replicas);
        cluster
    }

    /// The nodes still running.
    pub fn live(&self) -> Vec<&Node> {
        self.nodes
            .iter()
            .filter(|n| std::net::TcpStream::connect(("127.0.0.1", n.port)).is_ok())
            .collect()
    }

    /// CLUSTER NODES as one live node sees it.
    pub fn topology(&self) -> Vec<ClusterNode> {
        let port = self.live()[0].port;
        parse_cluster_nodes(&cli(port, None, &["cluster", "nodes"]))
    }

    /// Wait until every live node says cluster_state:ok, sees `masters`
    /// masters serving all slots, and every replica's link is up.
    pub fn wait_settled(&self, masters: usize, replicas: usize) {
        wait_until(Duration::from_secs(60), "the cluster to settle", || {
            self.live().iter().all(|n| {
                let info = cli(n.port, None, &["cluster", "info"]);
                let nodes = parse_cluster_nodes(&cli(n.port, None, &["cluster", "nodes"]));
                let serving: Vec<&ClusterNode> = nodes
                    .iter()
                    .filter(|c| c.master && !c.failed && !c.slots.is_empty())
                    .collect();
                let slots: u32 = serving
                    .iter()
                    .flat_map(|c| &c.slots)
                    .map(|(a, b)| (*b - *a) as u32 + 1)
                    .sum();
                let repl = cli(n.port, None, &["info", "replication"]);
                info.contains("cluster_state:ok")
                    && serving.len() == masters
                    && slots == 16384
                    && (repl.contains("role:master") || repl.contains("master_link_status:up"))
                    && nodes.iter().filter(|c| !c.master && !c.failed).count() >= masters * replicas
            })
        });
    }

    pub fn slot_of(&self, key: &str) -> u16 {
        cli(self.live()[0].port, None, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .unwrap()
    }

    /// The master serving `slot`.
    pub fn owner(&self, slot: u16) -> ClusterNode {
        self.try_owner(slot)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    fn try_owner(&self, slot: u16) -> Option<ClusterNode> {
        self.topology().into_iter().find(|n| {
            n.master && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
        })
    }

    /// The port of the master serving `slot`, if one does (not mid-failover).
    pub fn owner_port(&self, slot: u16) -> Option<u16> {
        self.try_owner(slot).map(|n| n.port)
    }

    /// A master that does not serve `slot`: a seed that must redirect.
    pub fn other_master(&self, slot: u16) -> ClusterNode {
        let owner = self.owner(slot);
        self.topology()
            .into_iter()
            .find(|n| n.master && !n.failed && n.id != owner.id && !n.slots.is_empty())
            .expect("another master")
    }

    /// The replicas of a master.
    pub fn replicas_of(&self, master: &ClusterNode) -> Vec<ClusterNode> {
        self.topology()
            .into_iter()
            .filter(|n| !n.failed && n.master_id.as_deref() == Some(master.id.as_str()))
            .collect()
    }

    /// Move `slot` and its keys to the master `to`, the way redis-cli
    /// --cluster reshard does: IMPORTING/MIGRATING, MIGRATE key by key, then
    /// SETSLOT NODE on both and the other masters. While it runs, clients
    /// get ASK for the keys already moved.
    pub fn migrate_slot(&self, slot: u16, to: &ClusterNode) {
        let from = self.owner(slot);
        let s = slot.to_string();
        let ok = |port: u16, args: &[&str]| {
            let out = cli(port, None, args);
            assert!(
                out.trim() == "OK" || out.trim().is_empty() || out.contains("NOKEY"),
                "{args:?} on {port}: {out}"
            );
        };
        ok(to.port, &["cluster", "setslot", &s, "importing", &from.id]);
        ok(from.port, &["cluster", "setslot", &s, "migrating", &to.id]);
        loop {
            let keys = cli(from.port, None, &["cluster", "getkeysinslot", &s, "1"]);
            let Some(key) = keys.lines().next().filter(|k| !k.is_empty()) else {
                break;
            };
            let out = cli(
                from.port,
                None,
                &[
                    "migrate",
                    "127.0.0.1",
                    &to.port.to_string(),
                    key,
                    "0",
                    "5000",
                ],
            );
            assert!(
                out.contains("OK") || out.contains("NOKEY"),
                "MIGRATE {key}: {out}"
            );
        }
        for node in self.topology().iter().filter(|n| n.master && !n.failed) {
            ok(node.port, &["cluster", "setslot", &s, "node", &to.id]);
        }
        wait_until(
            Duration::from_secs(30),
            "every node to agree on the slot's new owner",
            || {
                self.live().iter().all(|n| {
                    parse_cluster_nodes(&cli(n.port, None, &["cluster", "nodes"]))
                        .iter()
                        .any(|c| {
                            c.id == to.id && c.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
                        })
                })
            },
        );
    }
}

fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = f[2];
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|x| (x, x)),
                })
                .collect();
            Some(ClusterNode {
                id: f[0].to_string(),
                port,
                master: flags.contains("master"),
                failed: flags.contains("fail") || flags.contains("noaddr"),
                master_id: (f[3] != "-").then(|| f[3].to_string()),
                slots,
            })
        })
        .collect()
}

/// A master and a replica, both with a password, watched by three Sentinels
/// that have a password of their own.
pub struct SentinelGroup {
    pub master: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
}

pub const MASTER_NAME: &str = "mymaster";
pub const DATA_PASSWORD: &str = "data-secret";
pub const SENTINEL_PASSWORD: &str = "sentinel-secret";

impl SentinelGroup {
    pub fn start() -> SentinelGroup {
        let auth = [
            "--requirepass",
            DATA_PASSWORD,
            "--masterauth",
            DATA_PASSWORD,
        ];
        let master = start_node(&auth);
        let mut replica_args = auth.to_vec();
        let master_port = master.port.to_string();
        replica_args.extend(["--replicaof", "127.0.0.1", &master_port]);
        let replica = start_node(&replica_args);
        wait_until(Duration::from_secs(30), "the replica to sync", || {
            cli(replica.port, Some(DATA_PASSWORD), &["info", "replication"])
                .contains("master_link_status:up")
        });
        let sentinels: Vec<Node> = (0..3)
            .map(|_| {
                let port = free_port();
                let dir = std::env::temp_dir().join(format!(
                    "cutover-test-sentinel-{}-{port}",
                    std::process::id()
                ));
                std::fs::create_dir_all(&dir).unwrap();
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 10000\n\
                         sentinel auth-pass {MASTER_NAME} {DATA_PASSWORD}\n\
                         requirepass {SENTINEL_PASSWORD}\n\
                         sentinel sentinel-pass {SENTINEL_PASSWORD}\n",
                        dir = dir.display()
                    ),
                )
                .unwrap();
                let mut cmd = Command::new("redis-server");
                cmd.arg(&conf).arg("--sentinel");
                let pid = spawn_server(cmd);
                wait_for_port(port, "redis-sentinel");
                Node { port, pid }
            })
            .collect();
        let group = SentinelGroup {
            master,
            replica,
            sentinels,
        };
        // A failover needs each Sentinel to know the replica and the others.
        wait_until(
            Duration::from_secs(60),
            "the Sentinels to find each other and the replica",
            || {
                group.sentinels.iter().all(|s| {
                    let info = cli(
                        s.port,
                        Some(SENTINEL_PASSWORD),
                        &["sentinel", "master", MASTER_NAME],
                    );
                    let field = |name: &str| {
                        let lines: Vec<&str> = info.lines().collect();
                        lines
                            .iter()
                            .position(|l| *l == name)
                            .and_then(|i| lines.get(i + 1).map(|v| v.to_string()))
                    };
                    field("num-other-sentinels").as_deref() == Some("2")
                        && field("num-slaves").as_deref() == Some("1")
                })
            },
        );
        group
    }

    /// `redis+sentinel://:PASSWORD@s1,s2,s3/mymaster`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis+sentinel://:{DATA_PASSWORD}@{}/{MASTER_NAME}",
            hosts.join(",")
        )
    }

    /// The port every Sentinel now names as the master's, if they agree.
    pub fn master_port(&self) -> Option<u16> {
        let ports: Vec<Option<u16>> = self
            .sentinels
            .iter()
            .filter(|s| std::net::TcpStream::connect(("127.0.0.1", s.port)).is_ok())
            .map(|s| {
                cli(
                    s.port,
                    Some(SENTINEL_PASSWORD),
                    &["sentinel", "get-master-addr-by-name", MASTER_NAME],
                )
                .lines()
                .nth(1)
                .and_then(|p| p.trim().parse().ok())
            })
            .collect();
        match ports.first() {
            Some(Some(p)) if ports.iter().all(|q| *q == Some(*p)) => Some(*p),
            _ => None,
        }
    }
}

/// A CA, and certificates it signed for the server (localhost, 127.0.0.1)
/// and for a client; plus a second CA that signed nothing here.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn make(dir: &Path) -> Certs {
        std::fs::create_dir_all(dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl is installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=cutover test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("server", "localhost"), ("client", "cutover-client")] {
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_string()
    }

    /// A TLS-only redis-server with these certificates; `auth_clients`:
    /// it asks for a client certificate signed by the CA (mTLS).
    pub fn start_redis(&self, auth_clients: bool) -> u16 {
        let tls_port = free_port();
        let (tp, cert, key, ca) = (
            tls_port.to_string(),
            self.path("server.pem"),
            self.path("server.key"),
            self.path("ca.pem"),
        );
        // The plain port stays on so start_node can wait on it; clients use TLS.
        start_node(&[
            "--tls-port",
            &tp,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            if auth_clients { "yes" } else { "no" },
        ]);
        wait_for_port(tls_port, "redis-server TLS port");
        tls_port
    }
}
