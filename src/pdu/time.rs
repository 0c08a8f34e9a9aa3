//! Time fields: the service centre time stamp and discharge time (TS 23.040
//! §9.2.3.11, §9.2.3.13) and the validity period in its three formats
//! (§9.2.3.12).

use std::time::Duration;

use super::error::{take_field, Field, PResult};

/// A 7-octet time stamp in swapped semi-octets: year, month, day, hour,
/// minute, second, time zone in quarter hours with a sign bit
/// (TS 23.040 §9.2.3.11). The raw octets are kept because real PDUs carry
/// impossible values (month 0, BCD digits above 9); the calendar view is
/// then `None` rather than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// The seven octets as received.
    pub raw: [u8; 7],
}

impl Timestamp {
    /// Builds a time stamp from its fields; `year` is 0..=99 (two digits),
    /// `tz_quarters` is the offset from UTC in 15-minute units (-79..=79).
    pub fn new(
        year: u8,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        tz_quarters: i8,
    ) -> Self {
        let q = tz_quarters.unsigned_abs().min(79);
        let mut tz = swap_bcd(q);
        if tz_quarters < 0 {
            // The sign is bit 3 of the octet: the top bit of the tens digit,
            // which sits in the low nibble once swapped.
            tz |= 0x08;
        }
        Timestamp {
            raw: [
                swap_bcd(year % 100),
                swap_bcd(month % 100),
                swap_bcd(day % 100),
                swap_bcd(hour % 100),
                swap_bcd(minute % 100),
                swap_bcd(second % 100),
                tz,
            ],
        }
    }

    /// From an `OffsetDateTime`; the offset is rounded down to quarter hours
    /// and the year is reduced to two digits.
    pub fn from_datetime(dt: time::OffsetDateTime) -> Self {
        let offset_q = (dt.offset().whole_seconds() / 900).clamp(-79, 79) as i8;
        Timestamp::new(
            (dt.year().rem_euclid(100)) as u8,
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            offset_q,
        )
    }

    /// The six date/time fields, `None` for any octet that is not two BCD
    /// digits.
    pub fn fields(&self) -> [Option<u8>; 6] {
        let mut out = [None; 6];
        for (o, r) in out.iter_mut().zip(self.raw.iter()) {
            *o = unswap_bcd(*r);
        }
        out
    }

    /// The time zone in quarter hours, signed (`None` when its digits are not
    /// BCD).
    pub fn tz_quarters(&self) -> Option<i8> {
        let t = self.raw[6];
        let tens = t & 0x07;
        let units = t >> 4;
        if units > 9 {
            return None;
        }
        let q = (tens * 10 + units) as i8;
        Some(if t & 0x08 != 0 { -q } else { q })
    }

    /// The calendar time with its offset, or `None` when a field is
    /// impossible. Two-digit years: 00..=89 are 2000..=2089 and 90..=99 are
    /// 1990..=1999 (the spec gives no century; no SMS predates 1990).
    pub fn to_datetime(&self) -> Option<time::OffsetDateTime> {
        let [y, mo, d, h, mi, s] = self.fields();
        let y = i32::from(y?);
        let year = if y >= 90 { 1900 + y } else { 2000 + y };
        let month = time::Month::try_from(mo?).ok()?;
        let date = time::Date::from_calendar_date(year, month, d?).ok()?;
        let t = time::Time::from_hms(h?, mi?, s?).ok()?;
        let offset =
            time::UtcOffset::from_whole_seconds(i32::from(self.tz_quarters()?) * 900).ok()?;
        Some(time::PrimitiveDateTime::new(date, t).assume_offset(offset))
    }

    /// RFC 3339 with the offset (e.g. `2011-02-28T11:50:50-05:00`), or `None`
    /// for an impossible time stamp.
    pub fn to_rfc3339(&self) -> Option<String> {
        // A numeric offset always (never `Z`): a zero SMS offset is the
        // SC's local time zone, not a statement that the time is UTC.
        const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
        );
        self.to_datetime().and_then(|dt| dt.format(FORMAT).ok())
    }
}

/// Two decimal digits as swapped semi-octets (units in the high nibble).
fn swap_bcd(v: u8) -> u8 {
    ((v % 10) << 4) | (v / 10 % 10)
}

/// The value of swapped semi-octets, `None` for a nibble above 9.
fn unswap_bcd(o: u8) -> Option<u8> {
    let (tens, units) = (o & 0x0F, o >> 4);
    (tens <= 9 && units <= 9).then_some(tens * 10 + units)
}

/// Parses a 7-octet time stamp as `field`.
pub fn parse_timestamp(field: Field) -> impl Fn(&[u8]) -> PResult<'_, Timestamp> {
    move |input: &[u8]| {
        let (rest, b) = take_field(7, field)(input)?;
        let mut raw = [0u8; 7];
        raw.copy_from_slice(b);
        Ok((rest, Timestamp { raw }))
    }
}

/// TP-VPF, bits 4..3 of the SMS-SUBMIT first octet (TS 23.040 §9.2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityFormat {
    /// 00: no TP-VP.
    None,
    /// 10: one octet, relative.
    Relative,
    /// 01: seven octets, enhanced.
    Enhanced,
    /// 11: seven octets, absolute time stamp.
    Absolute,
}

impl ValidityFormat {
    /// From the first octet of an SMS-SUBMIT.
    pub fn from_first_octet(fo: u8) -> Self {
        match (fo >> 3) & 0x03 {
            0 => Self::None,
            2 => Self::Relative,
            1 => Self::Enhanced,
            _ => Self::Absolute,
        }
    }

    /// The TP-VPF bits in their place in the first octet.
    pub fn first_octet_bits(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Relative => 0x10,
            Self::Enhanced => 0x08,
            Self::Absolute => 0x18,
        }
    }
}

/// TP-VP (TS 23.040 §9.2.3.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidityPeriod {
    /// One octet, relative to the submission (§9.2.3.12.1).
    Relative(u8),
    /// An absolute time stamp (§9.2.3.12.2).
    Absolute(Timestamp),
    /// The seven octets of the enhanced format (§9.2.3.12.3).
    Enhanced([u8; 7]),
}

/// The meaning of an enhanced validity period (TS 23.040 §9.2.3.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnhancedValidity {
    /// Format 000: no validity period.
    None,
    /// Format 001: one octet coded as [`ValidityPeriod::Relative`].
    Relative(u8),
    /// Format 010: 0..=255 seconds.
    Seconds(u8),
    /// Format 011: hours, minutes, seconds in swapped semi-octets (raw).
    HhMmSs([u8; 3]),
    /// A reserved format, carried with its bits.
    Unknown(u8),
}

impl ValidityPeriod {
    /// The relative octet that best covers `d` (rounding up, capped at the
    /// 63 weeks the format can express).
    pub fn relative_from(d: Duration) -> ValidityPeriod {
        let mins = d.as_secs().div_ceil(60);
        let v = if mins <= 12 * 60 {
            mins.div_ceil(5).max(1) - 1
        } else if mins <= 24 * 60 {
            143 + (mins - 12 * 60).div_ceil(30)
        } else if mins <= 30 * 24 * 60 {
            166 + mins.div_ceil(24 * 60)
        } else {
            (192 + mins.div_ceil(7 * 24 * 60)).min(255)
        };
        ValidityPeriod::Relative(v.min(255) as u8)
    }

    /// The duration of a relative value (TS 23.040 §9.2.3.12.1).
    pub fn relative_duration(v: u8) -> Duration {
        let v = u64::from(v);
        let mins = match v {
            0..=143 => (v + 1) * 5,
            144..=167 => 12 * 60 + (v - 143) * 30,
            168..=196 => (v - 166) * 24 * 60,
            _ => (v - 192) * 7 * 24 * 60,
        };
        Duration::from_secs(mins * 60)
    }

    /// The TP-VPF that goes with this value.
    pub fn format(&self) -> ValidityFormat {
        match self {
            Self::Relative(_) => ValidityFormat::Relative,
            Self::Absolute(_) => ValidityFormat::Absolute,
            Self::Enhanced(_) => ValidityFormat::Enhanced,
        }
    }

    /// The decoded enhanced format, `None` for the other formats.
    pub fn enhanced(&self) -> Option<EnhancedValidity> {
        let Self::Enhanced(raw) = self else {
            return None;
        };
        Some(match raw[0] & 0x07 {
            0 => EnhancedValidity::None,
            1 => EnhancedValidity::Relative(raw[1]),
            2 => EnhancedValidity::Seconds(raw[1]),
            3 => EnhancedValidity::HhMmSs([raw[1], raw[2], raw[3]]),
            other => EnhancedValidity::Unknown(other),
        })
    }

    /// How long the message stays valid, when the format says so relative
    /// to submission.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Self::Relative(v) => Some(Self::relative_duration(*v)),
            Self::Absolute(_) => None,
            Self::Enhanced(_) => match self.enhanced()? {
                EnhancedValidity::Relative(v) => Some(Self::relative_duration(v)),
                EnhancedValidity::Seconds(s) => Some(Duration::from_secs(u64::from(s))),
                EnhancedValidity::HhMmSs([h, m, s]) => {
                    let (h, m, s) = (unswap_bcd(h)?, unswap_bcd(m)?, unswap_bcd(s)?);
                    Some(Duration::from_secs(
                        u64::from(h) * 3600 + u64::from(m) * 60 + u64::from(s),
                    ))
                }
                _ => None,
            },
        }
    }

    /// Appends the TP-VP octets.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Relative(v) => out.push(*v),
            Self::Absolute(ts) => out.extend_from_slice(&ts.raw),
            Self::Enhanced(raw) => out.extend_from_slice(raw),
        }
    }

    /// An enhanced validity period of `secs` seconds (format 010, up to 255 s)
    /// or HH:MM:SS (format 011, up to 99:59:59), TS 23.040 §9.2.3.12.3.
    pub fn enhanced_from(d: Duration) -> ValidityPeriod {
        let secs = d.as_secs();
        let mut raw = [0u8; 7];
        if secs <= 255 {
            raw[0] = 0x02;
            raw[1] = secs as u8;
        } else {
            let secs = secs.min(99 * 3600 + 59 * 60 + 59);
            raw[0] = 0x03;
            raw[1] = swap_bcd((secs / 3600) as u8);
            raw[2] = swap_bcd((secs / 60 % 60) as u8);
            raw[3] = swap_bcd((secs % 60) as u8);
        }
        ValidityPeriod::Enhanced(raw)
    }
}

/// Parses TP-VP in the format `vpf` says.
pub fn parse_validity(
    vpf: ValidityFormat,
) -> impl Fn(&[u8]) -> PResult<'_, Option<ValidityPeriod>> {
    move |input: &[u8]| match vpf {
        ValidityFormat::None => Ok((input, None)),
        ValidityFormat::Relative => {
            let (rest, b) = take_field(1, Field::ValidityPeriod)(input)?;
            Ok((rest, Some(ValidityPeriod::Relative(b[0]))))
        }
        ValidityFormat::Absolute => {
            let (rest, ts) = parse_timestamp(Field::ValidityPeriod)(input)?;
            Ok((rest, Some(ValidityPeriod::Absolute(ts))))
        }
        ValidityFormat::Enhanced => {
            let (rest, b) = take_field(7, Field::ValidityPeriod)(input)?;
            let mut raw = [0u8; 7];
            raw.copy_from_slice(b);
            Ok((rest, Some(ValidityPeriod::Enhanced(raw))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(hex: &str) -> Timestamp {
        let b = hex::decode(hex).unwrap();
        parse_timestamp(Field::ServiceCentreTimestamp)(&b)
            .unwrap()
            .1
    }

    #[test]
    fn timestamps_with_signed_quarter_hours() {
        assert_eq!(
            ts("70402132522423").to_rfc3339().unwrap(),
            "2007-04-12T23:25:42+08:00"
        );
        assert_eq!(
            ts("7040213252242B").to_rfc3339().unwrap(),
            "2007-04-12T23:25:42-08:00"
        );
        assert_eq!(
            ts("51117200000080").to_rfc3339().unwrap(),
            "2015-11-27T00:00:00+02:00"
        );
        assert_eq!(ts("7040213252242B").tz_quarters(), Some(-32));
    }

    #[test]
    fn encode_matches_decode() {
        let t = Timestamp::new(99, 2, 12, 5, 57, 30, -12);
        assert_eq!(hex::encode_upper(t.raw), "99202150750329");
        assert_eq!(t.to_rfc3339().unwrap(), "1999-02-12T05:57:30-03:00");
    }

    #[test]
    fn impossible_timestamps_keep_raw_fields() {
        let t = ts("00000000000000");
        assert_eq!(t.to_datetime(), None);
        assert_eq!(t.fields()[0], Some(0));
        assert_eq!(ts("FF000000000000").fields()[0], None);
    }

    #[test]
    fn relative_validity_table() {
        // TS 23.040 §9.2.3.12.1 boundaries.
        let d = ValidityPeriod::relative_duration;
        assert_eq!(d(0), Duration::from_secs(5 * 60));
        assert_eq!(d(143), Duration::from_secs(12 * 3600));
        assert_eq!(d(167), Duration::from_secs(24 * 3600));
        assert_eq!(d(170), Duration::from_secs(4 * 24 * 3600));
        assert_eq!(d(255), Duration::from_secs(63 * 7 * 24 * 3600));
        for v in 0..=255u8 {
            assert_eq!(
                ValidityPeriod::relative_from(d(v)),
                ValidityPeriod::Relative(v)
            );
        }
    }

    #[test]
    fn enhanced_validity() {
        let vp = ValidityPeriod::enhanced_from(Duration::from_secs(90));
        assert_eq!(vp.duration(), Some(Duration::from_secs(90)));
        let vp = ValidityPeriod::enhanced_from(Duration::from_secs(3 * 3600 + 61));
        assert_eq!(
            vp.enhanced(),
            Some(EnhancedValidity::HhMmSs([0x30, 0x10, 0x10]))
        );
        assert_eq!(vp.duration(), Some(Duration::from_secs(3 * 3600 + 61)));
    }
}
