//! `redis+sentinel://[user:password@]host:port[,host:port...]/MASTER[/db]`:
//! Redis behind Sentinel. The URL names the Sentinels and the master's name;
//! its credentials and database are the master's (Sentinels that need a
//! password of their own take `redis_sentinel_password`).

use percent_encoding::percent_decode_str;

/// The scheme of a Sentinel URL.
pub const SCHEME: &str = "redis+sentinel://";

/// A parsed Sentinel URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The Sentinels, in the order given (each is asked in turn).
    pub sentinels: Vec<(String, u16)>,
    /// The name the Sentinels monitor the master under.
    pub master: String,
    pub db: i64,
    /// The master's (and its replicas') credentials.
    pub username: Option<String>,
    pub password: Option<String>,
}

/// What a Sentinel URL looks like, for messages.
pub const EXPECTED: &str =
    "redis+sentinel://[user:password@]host:port[,host:port...]/MASTER_NAME[/db]";

fn decode(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "credentials that are valid UTF-8 once percent-decoded".to_string())
}

impl SentinelUrl {
    /// Whether `raw` asks for Sentinel (then [`SentinelUrl::parse`] decides
    /// whether it is valid).
    pub fn is_sentinel(raw: &str) -> bool {
        raw.get(..SCHEME.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
    }

    /// Parse; `Err` says what is expected.
    pub fn parse(raw: &str) -> Result<SentinelUrl, String> {
        if !Self::is_sentinel(raw) {
            return Err(EXPECTED.to_string());
        }
        let rest = &raw[SCHEME.len()..];
        if rest.contains(['?', '#']) {
            return Err(format!("{EXPECTED} (no query or fragment)"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    // `redis://secret@host`, as redis-rs reads it: a password.
                    None => ("", Some(u)),
                };
                let user = (!user.is_empty()).then(|| decode(user)).transpose()?;
                let pass = pass.filter(|p| !p.is_empty()).map(decode).transpose()?;
                (user, pass)
            }
        };
        let mut sentinels = Vec::new();
        for node in hosts.split(',') {
            let parsed = node
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .filter(|(h, p)| !h.is_empty() && *p != 0);
            match parsed {
                Some((h, p)) => sentinels.push((
                    h.trim_start_matches('[').trim_end_matches(']').to_string(),
                    p,
                )),
                None => {
                    return Err(format!(
                        "{EXPECTED}: each Sentinel as host:port (Sentinels listen on 26379 by default), not {node:?}"
                    ))
                }
            }
        }
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let master = match segments.next() {
            Some(m) => decode(m)?,
            None => return Err(format!("{EXPECTED}: the master's name is missing")),
        };
        let db = match segments.next() {
            None => 0,
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| *d >= 0)
                .ok_or_else(|| format!("{EXPECTED}: the database is a number, not {d:?}"))?,
        };
        if segments.next().is_some() {
            return Err(EXPECTED.to_string());
        }
        Ok(SentinelUrl {
            sentinels,
            master,
            db,
            username,
            password,
        })
    }

    /// The URL with the password replaced by `***`.
    pub fn masked(&self) -> String {
        let auth = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (Some(u), None) => format!("{u}@"),
            (u, Some(_)) => format!("{}:***@", u.as_deref().unwrap_or("")),
        };
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect();
        let db = if self.db == 0 {
            String::new()
        } else {
            format!("/{}", self.db)
        };
        format!("{SCHEME}{auth}{}/{}{db}", hosts.join(","), self.master)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinels_master_db_and_credentials() {
        let u =
            SentinelUrl::parse("redis+sentinel://app:p%40ss@10.0.0.1:26379,s2:26380/mymaster/2")
                .unwrap();
        assert_eq!(
            u.sentinels,
            [("10.0.0.1".to_string(), 26379), ("s2".to_string(), 26380)]
        );
        assert_eq!(u.master, "mymaster");
        assert_eq!(u.db, 2);
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(
            u.masked(),
            "redis+sentinel://app:***@10.0.0.1:26379,s2:26380/mymaster/2"
        );
        let u = SentinelUrl::parse("redis+sentinel://:secret@h:1/m").unwrap();
        assert_eq!(
            (u.username, u.password.as_deref(), u.db),
            (None, Some("secret"), 0)
        );
        let u = SentinelUrl::parse("REDIS+SENTINEL://h:1/m/").unwrap();
        assert_eq!(u.masked(), "redis+sentinel://h:1/m");
    }

    #[test]
    fn refuses_what_it_cannot_connect_to() {
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h/m",
            "redis+sentinel://h:1,/m",
            "redis+sentinel://h:x/m",
            "redis+sentinel://h:1/m/x",
            "redis+sentinel://h:1/m/1/2",
            "redis+sentinel://h:1/m?db=1",
            "redis://h:1/m",
        ] {
            assert!(SentinelUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
