//! Identifiers: newtypes for instance and organization ids, and the ZITADEL-compatible
//! id generator (sonyflake layout, decimal string).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts any non-blank id (ids of imported stores are not ours to reshape).
            pub fn new(id: impl Into<String>) -> Result<Self> {
                let id = id.into();
                if id.trim().is_empty() {
                    return Err(Error::invalid($field, "must not be empty"));
                }
                if id.contains('\0') {
                    return Err(Error::invalid(
                        $field,
                        "contains the NUL character (U+0000), which cannot be stored",
                    ));
                }
                Ok(Self(id))
            }

            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The id of an instance (tenant).
    InstanceId,
    "instance_id"
);
string_id!(
    /// The id of an organization, unique within its instance.
    OrgId,
    "org_id"
);

/// Sonyflake layout as ZITADEL uses it: 39 bits of time in 10 ms units since
/// 2019-04-29 00:00:00 UTC, 8 bits of sequence, 16 bits of machine id; printed in decimal.
///
/// Written here rather than taken from the `sonyflake` crate because that crate reads the
/// wall clock and the network interfaces itself; the core does no I/O, so time comes in as
/// an argument (from the `Clock` port) and the machine id from configuration.
#[derive(Debug, Clone)]
pub struct SonyflakeIds {
    machine_id: u16,
    last_tick: u64,
    sequence: u16,
}

/// 2019-04-29T00:00:00Z, ZITADEL's sonyflake epoch.
pub const SONYFLAKE_EPOCH: OffsetDateTime = time::macros::datetime!(2019-04-29 00:00:00 UTC);
const SEQUENCE_BITS: u32 = 8;
const MACHINE_BITS: u32 = 16;
const TIME_BITS: u32 = 39;

impl SonyflakeIds {
    /// A generator for `machine_id`; unique only while no other process uses the same machine id.
    pub fn new(machine_id: u16) -> Self {
        Self {
            machine_id,
            last_tick: 0,
            sequence: 0,
        }
    }

    /// The machine id in the low 16 bits of every id.
    pub fn machine_id(&self) -> u16 {
        self.machine_id
    }

    /// The next id at `now`. When the 256 ids of one 10 ms tick are used up, the id borrows
    /// the next tick (as sonyflake does by sleeping), so ids stay unique and increasing.
    pub fn next_id(&mut self, now: OffsetDateTime) -> Result<String> {
        let elapsed = now - SONYFLAKE_EPOCH;
        let tick = u64::try_from(elapsed.whole_milliseconds() / 10)
            .map_err(|_| Error::internal("clock is before the sonyflake epoch 2019-04-29"))?;
        if tick <= self.last_tick {
            self.sequence = (self.sequence + 1) & ((1 << SEQUENCE_BITS) - 1);
            if self.sequence == 0 {
                self.last_tick += 1;
            }
        } else {
            self.last_tick = tick;
            self.sequence = 0;
        }
        if self.last_tick >= 1 << TIME_BITS {
            return Err(Error::internal("sonyflake time bits exhausted"));
        }
        let id = (self.last_tick << (SEQUENCE_BITS + MACHINE_BITS))
            | (u64::from(self.sequence) << MACHINE_BITS)
            | u64::from(self.machine_id);
        Ok(id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ids_follow_the_sonyflake_layout() {
        let mut ids = SonyflakeIds::new(7);
        let at = datetime!(2019-04-29 00:00:01 UTC);
        let id: u64 = ids.next_id(at).unwrap().parse().unwrap();
        assert_eq!(id >> 24, 100, "one second is 100 ticks of 10 ms");
        assert_eq!(id & 0xffff, 7, "machine id in the low 16 bits");
        assert_eq!((id >> 16) & 0xff, 0);
    }

    #[test]
    fn ids_are_unique_and_increasing_within_one_tick() {
        let mut ids = SonyflakeIds::new(1);
        let at = datetime!(2026-01-01 00:00:00 UTC);
        let mut last = 0u64;
        for _ in 0..1000 {
            let id: u64 = ids.next_id(at).unwrap().parse().unwrap();
            assert!(id > last);
            last = id;
        }
    }

    #[test]
    fn a_clock_before_the_epoch_is_an_error() {
        let mut ids = SonyflakeIds::new(1);
        assert!(ids.next_id(datetime!(2019-01-01 00:00:00 UTC)).is_err());
    }

    #[test]
    fn blank_ids_are_rejected() {
        assert!(InstanceId::new("  ").is_err());
        assert!(OrgId::new("o\0x").is_err());
        assert_eq!(OrgId::new("o1").unwrap().as_str(), "o1");
    }
}
