//! Rollouts: the canary as `cutover:{APP}:canary` holds it, its percent,
//! and which keys it is served to (docs/redis.md, "Rollouts and skew
//! protection"). The readers implement [`bucket`] too; the vectors in
//! `tests/contract/rollout.json` keep the three equal.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The share of keys a canary is served to, in hundredths of a percent
/// (1..=9999): "5" is 500, "0.25" is 25.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(u32);

impl Percent {
    /// A percent as given on the command line: a number above 0 and below
    /// 100, with at most two decimals (`5`, `12.5`, `0.25`, `5%`).
    pub fn parse(text: &str) -> Result<Percent, String> {
        let expected = || {
            format!(
                "{text:?} is not a percent for a rollout: give a number above 0 and below 100 with at most two decimals (5, 12.5, 0.25); `cutover rollout complete` makes the canary live for everyone"
            )
        };
        let t = text.trim().trim_end_matches('%');
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 2 || frac.len() > 2 || !digits(whole) || !digits(frac)
        {
            return Err(expected());
        }
        let hundredths = whole.parse::<u32>().map_err(|_| expected())? * 100
            + format!("{frac:0<2}")
                .parse::<u32>()
                .map_err(|_| expected())?;
        if hundredths == 0 {
            return Err(expected());
        }
        Ok(Percent(hundredths))
    }

    /// The threshold keys are compared with: `round(percent * 100)`.
    pub fn threshold(self) -> u32 {
        self.0
    }

    /// From the JSON number a canary holds (None: not a valid percent).
    pub fn from_number(n: f64) -> Option<Percent> {
        let h = (n * 100.0).round();
        (n > 0.0 && n < 100.0 && (1.0..=9999.0).contains(&h)).then_some(Percent(h as u32))
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 % 100 {
            0 => write!(f, "{}%", self.0 / 100),
            r if r % 10 == 0 => write!(f, "{}.{}%", self.0 / 100, r / 10),
            r => write!(f, "{}.{r:02}%", self.0 / 100),
        }
    }
}

/// A JSON number: an integer when whole (`5`), else with its decimals (`0.25`).
impl Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(100) {
            s.serialize_u32(self.0 / 100)
        } else {
            s.serialize_f64(f64::from(self.0) / 100.0)
        }
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
        let n = f64::deserialize(d)?;
        Percent::from_number(n).ok_or_else(|| {
            serde::de::Error::custom(format!("{n} is not a percent above 0 and below 100"))
        })
    }
}

/// `cutover:{APP}:canary`: the release served to a share of the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub v: u32,
    pub release: String,
    pub percent: Percent,
    /// 32 hex characters, chosen when the rollout starts, kept when it is raised.
    pub salt: String,
    /// When the rollout started.
    pub since: String,
    /// The last change: when, who, why.
    pub at: String,
    pub by: Option<String>,
    pub message: Option<String>,
}

impl Canary {
    /// The canary as stored, if it is one readers would serve.
    pub fn parse(text: &str) -> Result<Canary, String> {
        let c: Canary = serde_json::from_str(text).map_err(|e| format!("not a canary ({e})"))?;
        if c.v != 1 {
            return Err(format!("canary version {} (this cutover knows 1)", c.v));
        }
        if c.salt.len() != 32 || !c.salt.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("salt {:?} is not 32 hex characters", c.salt));
        }
        Ok(c)
    }

    /// "B at 5% since T"
    pub fn describe(&self) -> String {
        format!("{} at {} since {}", self.release, self.percent, self.since)
    }

    /// Does `key` get the canary?
    pub fn serves(&self, key: &str) -> bool {
        bucket(&self.salt, key) < self.percent.threshold()
    }
}

/// A new rollout's salt: 16 random bytes, hex.
pub fn new_salt() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// The bucket of `key` under `salt`: the first 4 bytes of
/// SHA-256(salt + ":" + key), big-endian, modulo 10,000.
pub fn bucket(salt: &str, key: &str) -> u32 {
    let digest = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update(b":")
        .chain_update(key.as_bytes())
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract/rollout.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("the vectors")).expect("JSON")
    }

    #[test]
    fn buckets_thresholds_and_population_match_the_shared_vectors() {
        let v = vectors();
        let cases = v["cases"].as_array().expect("cases");
        assert!(cases.len() >= 10);
        for c in cases {
            let (salt, key) = (c["salt"].as_str().unwrap(), c["key"].as_str().unwrap());
            assert_eq!(
                u64::from(bucket(salt, key)),
                c["bucket"].as_u64().unwrap(),
                "{key}"
            );
        }
        for t in v["thresholds"].as_array().expect("thresholds") {
            let p = Percent::from_number(t["percent"].as_f64().unwrap()).expect("a percent");
            assert_eq!(u64::from(p.threshold()), t["threshold"].as_u64().unwrap());
        }
        let pop = &v["population"];
        let salt = pop["salt"].as_str().unwrap();
        let on = |p: u32| {
            (0..10_000)
                .filter(|i| bucket(salt, &format!("user-{i}")) < p)
                .count()
        };
        assert_eq!(on(500) as u64, pop["canary_at_5"].as_u64().unwrap());
        assert_eq!(on(2500) as u64, pop["canary_at_25"].as_u64().unwrap());
    }

    #[test]
    fn the_share_is_the_percent_across_salts_and_a_key_stays_when_it_rises() {
        // 10,000 keys under one salt land within binomial noise of the
        // percent (±0.5% is 2.3 standard deviations at 5%); over 100 salts
        // the mean is within 0.1%, and every key on the canary at 5% is on
        // it at 25%.
        let (mut total, salts) = (0usize, 100);
        for s in 0..salts {
            let salt = format!("{s:032x}");
            let c5: Vec<bool> = (0..10_000)
                .map(|i| bucket(&salt, &format!("user-{i}")) < 500)
                .collect();
            let n = c5.iter().filter(|on| **on).count();
            assert!((400..=600).contains(&n), "salt {salt}: {n} of 10,000 at 5%");
            for (i, on) in c5.iter().enumerate() {
                if *on {
                    assert!(bucket(&salt, &format!("user-{i}")) < 2500);
                }
            }
            total += n;
        }
        let mean = total as f64 / salts as f64 / 100.0;
        assert!((mean - 5.0).abs() < 0.1, "mean share {mean}%");
    }

    #[test]
    fn percents_parse_print_and_serialize() {
        for (text, h, shown, json) in [
            ("5", 500, "5%", "5"),
            ("5%", 500, "5%", "5"),
            ("0.25", 25, "0.25%", "0.25"),
            ("12.5", 1250, "12.5%", "12.5"),
            ("99.99", 9999, "99.99%", "99.99"),
            ("0.01", 1, "0.01%", "0.01"),
        ] {
            let p = Percent::parse(text).unwrap();
            assert_eq!(p.threshold(), h, "{text}");
            assert_eq!(p.to_string(), shown);
            assert_eq!(serde_json::to_string(&p).unwrap(), json);
            assert_eq!(serde_json::from_str::<Percent>(json).unwrap(), p);
        }
        for bad in [
            "0", "100", "150", "-5", "5.555", "", "abc", "1e1", ".5", "0.00",
        ] {
            let e = Percent::parse(bad).unwrap_err();
            assert!(e.contains("not a percent"), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<Percent>("100").is_err());
        assert!(serde_json::from_str::<Percent>("0").is_err());
    }

    #[test]
    fn a_stored_canary_is_checked() {
        let c = Canary {
            v: 1,
            release: "ab".into(),
            percent: Percent(500),
            salt: new_salt(),
            since: "t".into(),
            at: "t".into(),
            by: None,
            message: None,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(Canary::parse(&text).unwrap(), c);
        assert!(Canary::parse(&text.replace("\"v\":1", "\"v\":2")).is_err());
        assert!(Canary::parse(&text.replace(&c.salt, "short")).is_err());
        assert!(Canary::parse("{}").is_err());
    }
}
