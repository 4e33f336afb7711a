//! Working-day calendar: office hours, Vietnamese public holidays, the
//! Vietnamese (UTC+7) lunar calendar, and deadline arithmetic in working
//! minutes.
//!
//! All instants handled by this module are [`DateTime<Utc>`]; the calendar
//! itself reasons in Vietnam local time, a fixed UTC+7 offset with no
//! daylight saving ([`VIETNAM_OFFSET`]).
//!
//! * Office time is a list of periods per working day (default 07:30–11:30
//!   and 13:00–17:00, 8 h), optionally plus Saturday-morning reception.
//! * Working days are Monday–Friday, minus public holidays (and their
//!   compensatory days), plus announced make-up working days.
//! * Holidays follow the Labour Code 2019, Art. 112. The spans the
//!   government actually announced are built in for 2025 and 2026; every
//!   other year uses the rule (see `docs/calendar.md`). Operators add later
//!   announcements through [`CalendarConfig`].
//! * Lunar dates (Tết, Hùng Kings day) are computed astronomically for
//!   UTC+7 with Hồ Ngọc Đức's algorithm ([`lunar_to_solar`]), never from a
//!   Chinese (UTC+8) table.
//!
//! Instants before 1900-01-01 local are treated as that instant; deadlines
//! that would fall after the year 9999 saturate to
//! [`DateTime::<Utc>::MAX_UTC`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::PI;
use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc, Weekday,
};
use serde::{Deserialize, Serialize};

/// Vietnam local time: UTC+7, no daylight saving.
pub const VIETNAM_OFFSET: FixedOffset = match FixedOffset::east_opt(7 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+7 is a valid offset"),
};

/// Offset of Vietnam local time from UTC, in hours (used by the lunar
/// calendar).
const TZ_HOURS: f64 = 7.0;

/// First local year the calendar computes in; earlier instants are clamped.
const MIN_YEAR: i32 = 1900;
/// Last local year the calendar computes in; later deadlines saturate.
const MAX_YEAR: i32 = 9999;

const MINUTES_PER_DAY: u32 = 24 * 60;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// One office period in configuration: local times `"HH:MM"`, start
/// inclusive, end exclusive (`"24:00"` is allowed as an end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodConfig {
    pub start: String,
    pub end: String,
}

impl PeriodConfig {
    pub fn new(start: &str, end: &str) -> Self {
        Self {
            start: start.to_owned(),
            end: end.to_owned(),
        }
    }
}

/// An extra day off declared in configuration (an announced span, a
/// swapped day, a local holiday...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayConfig {
    #[serde(deserialize_with = "config_date::one")]
    pub date: NaiveDate,
    /// Vietnamese name shown in admin pages.
    #[serde(default)]
    pub name: String,
    /// English name; defaults to the Vietnamese one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
}

/// The `[calendar]` section of `motcua.toml`. Every field is optional; the
/// [`Default`] is the Vietnamese civil-service calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// Office periods on a working day. Default 07:30–11:30, 13:00–17:00
    /// (8 h, so that one working day is exactly the 8 h processing times
    /// are stored in).
    pub periods: Vec<PeriodConfig>,
    /// Receive dossiers on Saturday mornings (Saturdays that are not
    /// holidays). Default off.
    pub saturday_morning: bool,
    /// Office periods on Saturdays when `saturday_morning` is on. Default
    /// 07:30–11:30.
    pub saturday_periods: Vec<PeriodConfig>,
    /// Use the built-in Vietnamese public holidays. Default on.
    pub builtin_holidays: bool,
    /// Further days off.
    pub extra_holidays: Vec<HolidayConfig>,
    /// Days that are working days whatever else applies (a Saturday worked
    /// to bridge a holiday). They use the normal weekday periods.
    #[serde(deserialize_with = "config_date::many")]
    pub makeup_working_days: Vec<NaiveDate>,
    /// Days on which the built-in rules are ignored: the day is an ordinary
    /// day of its weekday (used when the government swaps a built-in day
    /// off, or cancels a built-in make-up day).
    #[serde(deserialize_with = "config_date::many")]
    pub removed_holidays: Vec<NaiveDate>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            periods: vec![
                PeriodConfig::new("07:30", "11:30"),
                PeriodConfig::new("13:00", "17:00"),
            ],
            saturday_morning: false,
            saturday_periods: vec![PeriodConfig::new("07:30", "11:30")],
            builtin_holidays: true,
            extra_holidays: Vec::new(),
            makeup_working_days: Vec::new(),
            removed_holidays: Vec::new(),
        }
    }
}

/// Calendar changes made by administrators at run time (stored in the
/// database under [`CalendarOverrides::META_KEY`]); they are added to the
/// base `[calendar]` configuration by [`CalendarOverrides::merge_into`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarOverrides {
    pub extra_holidays: Vec<HolidayConfig>,
    #[serde(deserialize_with = "config_date::many")]
    pub makeup_working_days: Vec<NaiveDate>,
    #[serde(deserialize_with = "config_date::many")]
    pub removed_holidays: Vec<NaiveDate>,
}

impl CalendarOverrides {
    /// The `meta` key the overrides are stored under.
    pub const META_KEY: &'static str = "calendar.overrides";

    /// The base configuration with these overrides appended to its lists.
    pub fn merge_into(&self, base: &CalendarConfig) -> CalendarConfig {
        let mut cfg = base.clone();
        cfg.extra_holidays
            .extend(self.extra_holidays.iter().cloned());
        cfg.makeup_working_days
            .extend(self.makeup_working_days.iter().copied());
        cfg.removed_holidays
            .extend(self.removed_holidays.iter().copied());
        cfg
    }

    /// No override at all.
    pub fn is_empty(&self) -> bool {
        self.extra_holidays.is_empty()
            && self.makeup_working_days.is_empty()
            && self.removed_holidays.is_empty()
    }
}

/// Dates in configuration: `"YYYY-MM-DD"` strings, or TOML local dates
/// (`2027-02-12` unquoted), which TOML deserialisers (`toml`, `figment`)
/// hand over as a one-entry map.
mod config_date {
    use std::fmt;

    use chrono::NaiveDate;
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

    struct DateVisitor;

    impl<'de> Visitor<'de> for DateVisitor {
        type Value = NaiveDate;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a date YYYY-MM-DD")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<NaiveDate, E> {
            NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                .map_err(|e| E::custom(format!("invalid date {v:?} ({e}); expected YYYY-MM-DD")))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NaiveDate, A::Error> {
            let Some((_, value)) = map.next_entry::<IgnoredAny, String>()? else {
                return Err(de::Error::custom("expected a date YYYY-MM-DD"));
            };
            if map.next_key::<IgnoredAny>()?.is_some() {
                return Err(de::Error::custom("expected a date YYYY-MM-DD"));
            }
            self.visit_str(&value)
        }
    }

    struct Date(NaiveDate);

    impl<'de> serde::Deserialize<'de> for Date {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(DateVisitor).map(Date)
        }
    }

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        d.deserialize_any(DateVisitor)
    }

    pub fn many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NaiveDate>, D::Error> {
        let dates: Vec<Date> = serde::Deserialize::deserialize(d)?;
        Ok(dates.into_iter().map(|Date(x)| x).collect())
    }
}

/// An invalid calendar configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid calendar configuration: {0}")]
pub struct CalendarError(pub String);

// ---------------------------------------------------------------------------
// Public value types
// ---------------------------------------------------------------------------

/// How a finished task compares to its deadline (see
/// [`WorkingCalendar::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timeliness {
    Early,
    OnTime,
    Late,
}

/// A day off, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name_vi: String,
    pub name_en: String,
}

impl Holiday {
    fn new(date: NaiveDate, name_vi: impl Into<String>, name_en: impl Into<String>) -> Self {
        Self {
            date,
            name_vi: name_vi.into(),
            name_en: name_en.into(),
        }
    }
}

/// A date of the Vietnamese lunar calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunarDate {
    /// Lunar year, numbered like the solar year in which it mostly falls
    /// (lunar 1/1/2026 is 17 Feb 2026).
    pub year: i32,
    /// 1..=12.
    pub month: u32,
    /// 1..=30.
    pub day: u32,
    /// This is the intercalary (leap) month that follows `month`.
    pub leap: bool,
}

// ---------------------------------------------------------------------------
// The calendar
// ---------------------------------------------------------------------------

/// An office period in minutes after local midnight, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    start: u32,
    end: u32,
}

impl Period {
    fn len(self) -> u32 {
        self.end - self.start
    }
}

/// Working-time arithmetic for one agency: office periods, holidays,
/// make-up days. Cheap to clone; built-in holiday tables are shared.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    weekday: Vec<Period>,
    /// Empty unless Saturday-morning reception is on.
    saturday: Vec<Period>,
    builtin: bool,
    extra: BTreeMap<NaiveDate, Holiday>,
    makeup: BTreeSet<NaiveDate>,
    removed: BTreeSet<NaiveDate>,
}

impl Default for WorkingCalendar {
    fn default() -> Self {
        Self::vietnam()
    }
}

impl WorkingCalendar {
    /// Built-in Vietnamese rules with the default office hours
    /// (07:30–11:30, 13:00–17:00 = 8 h, no Saturday reception).
    pub fn vietnam() -> Self {
        Self {
            weekday: vec![
                Period {
                    start: 7 * 60 + 30,
                    end: 11 * 60 + 30,
                },
                Period {
                    start: 13 * 60,
                    end: 17 * 60,
                },
            ],
            saturday: Vec::new(),
            builtin: true,
            extra: BTreeMap::new(),
            makeup: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }

    /// Build a calendar from configuration, validating it.
    pub fn from_config(cfg: &CalendarConfig) -> Result<Self, CalendarError> {
        let weekday = parse_periods("periods", &cfg.periods)?;
        if weekday.is_empty() {
            return Err(CalendarError(
                "`periods` must list at least one office period".to_owned(),
            ));
        }
        let saturday = parse_periods("saturday_periods", &cfg.saturday_periods)?;
        if cfg.saturday_morning && saturday.is_empty() {
            return Err(CalendarError(
                "`saturday_morning` is on but `saturday_periods` is empty".to_owned(),
            ));
        }
        let makeup: BTreeSet<NaiveDate> = cfg.makeup_working_days.iter().copied().collect();
        let mut extra = BTreeMap::new();
        for h in &cfg.extra_holidays {
            if makeup.contains(&h.date) {
                return Err(CalendarError(format!(
                    "{} is listed both in `extra_holidays` and in `makeup_working_days`",
                    h.date
                )));
            }
            let name_vi = if h.name.trim().is_empty() {
                "Ngày nghỉ (theo cấu hình)".to_owned()
            } else {
                h.name.trim().to_owned()
            };
            let name_en = match &h.name_en {
                Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
                _ if h.name.trim().is_empty() => "Day off (configured)".to_owned(),
                _ => name_vi.clone(),
            };
            if extra
                .insert(h.date, Holiday::new(h.date, name_vi, name_en))
                .is_some()
            {
                return Err(CalendarError(format!(
                    "{} is listed twice in `extra_holidays`",
                    h.date
                )));
            }
        }
        Ok(Self {
            weekday,
            saturday: if cfg.saturday_morning {
                saturday
            } else {
                Vec::new()
            },
            builtin: cfg.builtin_holidays,
            extra,
            makeup,
            removed: cfg.removed_holidays.iter().copied().collect(),
        })
    }

    /// Office hours of an ordinary working day, rounded to whole hours
    /// (8 by default). Use [`Self::minutes_per_day`] for exact arithmetic.
    pub fn hours_per_day(&self) -> u32 {
        (self.minutes_per_day() + 30) / 60
    }

    /// Office minutes of an ordinary working day (480 by default).
    pub fn minutes_per_day(&self) -> u32 {
        self.weekday.iter().map(|p| p.len()).sum()
    }

    /// Whether the local date `d` has office time: Monday–Friday that is not
    /// a holiday, a make-up working day, or (with Saturday-morning reception)
    /// a Saturday that is not a holiday.
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        let table = self.year_table(d.year());
        !self.periods_on(d, &table).is_empty()
    }

    /// The instant at which `minutes` working minutes have elapsed counting
    /// from `start`. If `start` is outside office time, counting starts at
    /// the next period start. A deadline that uses up a period exactly lands
    /// at the end of that period (8 h from Monday 07:30 is Monday 17:00).
    /// `minutes <= 0` returns `start` unchanged.
    pub fn add_working_minutes(&self, start: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        if minutes <= 0 {
            return start;
        }
        let Some(mut remaining) = TimeDelta::try_minutes(minutes) else {
            return DateTime::<Utc>::MAX_UTC;
        };
        let local = to_local(start);
        let mut date = local.date();
        let mut time_of_day = local.time() - NaiveTime::MIN;
        let mut rules = DayRules::new(self);
        loop {
            if date.year() > MAX_YEAR {
                return DateTime::<Utc>::MAX_UTC;
            }
            if date.ordinal() == 1 && time_of_day == TimeDelta::zero() {
                let year_minutes = TimeDelta::minutes(rules.year_minutes(date.year()));
                if year_minutes < remaining {
                    remaining -= year_minutes;
                    match NaiveDate::from_ymd_opt(date.year() + 1, 1, 1) {
                        Some(next) => date = next,
                        None => return DateTime::<Utc>::MAX_UTC,
                    }
                    continue;
                }
            }
            for p in rules.periods(date) {
                let period_start = TimeDelta::minutes(i64::from(p.start));
                let period_end = TimeDelta::minutes(i64::from(p.end));
                if time_of_day >= period_end {
                    continue;
                }
                let begin = time_of_day.max(period_start);
                let available = period_end - begin;
                if remaining <= available {
                    return from_local(date, begin + remaining);
                }
                remaining -= available;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => return DateTime::<Utc>::MAX_UTC,
            }
            time_of_day = TimeDelta::zero();
        }
    }

    /// [`Self::add_working_minutes`] for `days` ordinary working days
    /// (`days × minutes_per_day()`).
    pub fn add_working_days(&self, start: DateTime<Utc>, days: i64) -> DateTime<Utc> {
        let minutes = days.saturating_mul(i64::from(self.minutes_per_day()));
        self.add_working_minutes(start, minutes)
    }

    /// Working minutes in `[from, to)`, both instants first truncated to the
    /// whole minute; 0 if `to <= from`. Truncation keeps the result exactly
    /// additive (`between(a, b) + between(b, c) == between(a, c)`) and exactly
    /// inverse to [`Self::add_working_minutes`].
    pub fn working_minutes_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        if to <= from {
            return 0;
        }
        let a = to_local(from);
        let b = to_local(to);
        let (date_a, min_a) = (a.date(), minute_of_day(a));
        let (date_b, min_b) = (b.date(), minute_of_day(b));
        let mut rules = DayRules::new(self);
        if date_a == date_b {
            return overlap(rules.periods(date_a), min_a, min_b);
        }
        let mut total = overlap(rules.periods(date_a), min_a, MINUTES_PER_DAY);
        let mut date = match date_a.succ_opt() {
            Some(d) => d,
            None => return total,
        };
        while date < date_b {
            if date.ordinal() == 1
                && let Some(next_year) = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
                && next_year <= date_b
            {
                total += rules.year_minutes(date.year());
                date = next_year;
                continue;
            }
            total += overlap(rules.periods(date), 0, MINUTES_PER_DAY);
            match date.succ_opt() {
                Some(d) => date = d,
                None => return total,
            }
        }
        total + overlap(rules.periods(date_b), 0, min_b)
    }

    /// Classify a finished task against its deadline:
    ///
    /// * `Late` if `finished > due`;
    /// * `Early` if `finished` falls on an earlier local (UTC+7) calendar day
    ///   than `due`;
    /// * `OnTime` otherwise (finished on the due day, no later than `due`).
    pub fn classify(&self, finished: DateTime<Utc>, due: DateTime<Utc>) -> Timeliness {
        if finished > due {
            Timeliness::Late
        } else if local_date(finished) < local_date(due) {
            Timeliness::Early
        } else {
            Timeliness::OnTime
        }
    }

    /// Days off in `year` for display: built-in holidays (including
    /// compensatory and swapped days, and legal holidays that fall on a
    /// weekend) and configured extra holidays, minus removed days and
    /// make-up days, sorted by date.
    pub fn holidays(&self, year: i32) -> Vec<Holiday> {
        let mut out: BTreeMap<NaiveDate, Holiday> = BTreeMap::new();
        let table = self.year_table(year);
        for h in &table.off {
            if !self.removed.contains(&h.date) {
                out.insert(h.date, h.clone());
            }
        }
        if let Some((first, last)) = year_bounds(year) {
            for (d, h) in self.extra.range(first..=last) {
                out.insert(*d, h.clone());
            }
        }
        out.into_values()
            .filter(|h| !self.makeup.contains(&h.date))
            .collect()
    }

    /// Make-up working days (weekend days worked) in `year`, sorted.
    pub fn makeup_working_days(&self, year: i32) -> Vec<NaiveDate> {
        let mut out: BTreeSet<NaiveDate> = self
            .year_table(year)
            .makeup
            .iter()
            .copied()
            .filter(|d| !self.removed.contains(d) && !self.extra.contains_key(d))
            .collect();
        if let Some((first, last)) = year_bounds(year) {
            out.extend(self.makeup.range(first..=last));
        }
        out.into_iter().collect()
    }

    // -- internals ----------------------------------------------------------

    fn year_table(&self, year: i32) -> Cow<'static, YearTable> {
        if self.builtin {
            builtin_year(year)
        } else {
            Cow::Owned(YearTable::default())
        }
    }

    /// Office periods on local date `d`, given the built-in table of its
    /// year.
    fn periods_on(&self, d: NaiveDate, table: &YearTable) -> &[Period] {
        if self.makeup.contains(&d) {
            return &self.weekday;
        }
        if self.extra.contains_key(&d) {
            return &[];
        }
        if !self.removed.contains(&d) {
            if table.is_makeup(d) {
                return &self.weekday;
            }
            if table.is_off(d) {
                return &[];
            }
        }
        self.ordinary_periods(d.weekday())
    }

    fn ordinary_periods(&self, wd: Weekday) -> &[Period] {
        match wd {
            Weekday::Sat => &self.saturday,
            Weekday::Sun => &[],
            _ => &self.weekday,
        }
    }
}

/// Per-loop cache of the built-in table of the year being walked through.
struct DayRules<'a> {
    cal: &'a WorkingCalendar,
    year: i32,
    table: Cow<'static, YearTable>,
}

impl<'a> DayRules<'a> {
    fn new(cal: &'a WorkingCalendar) -> Self {
        Self {
            cal,
            year: i32::MIN,
            table: Cow::Owned(YearTable::default()),
        }
    }

    fn load(&mut self, year: i32) {
        if self.year != year {
            self.year = year;
            self.table = self.cal.year_table(year);
        }
    }

    fn periods(&mut self, d: NaiveDate) -> &'a [Period] {
        self.load(d.year());
        let cal: &'a WorkingCalendar = self.cal;
        cal.periods_on(d, &self.table)
    }

    /// Total office minutes in `year`, without walking day by day: count
    /// the ordinary weekdays and Saturdays, then correct for every date some
    /// rule or configuration mentions.
    fn year_minutes(&mut self, year: i32) -> i64 {
        self.load(year);
        let cal = self.cal;
        let Some((first, last)) = year_bounds(year) else {
            return 0;
        };
        let weekday_minutes = i64::from(cal.minutes_per_day());
        let saturday_minutes: i64 = cal.saturday.iter().map(|p| i64::from(p.len())).sum();
        let ordinary = |wd: Weekday| -> i64 {
            match wd {
                Weekday::Sat => saturday_minutes,
                Weekday::Sun => 0,
                _ => weekday_minutes,
            }
        };
        let days = i64::from(last.ordinal());
        let weeks = days / 7;
        let mut total = weeks * (5 * weekday_minutes + saturday_minutes);
        let mut wd = first.weekday();
        for _ in 0..days % 7 {
            total += ordinary(wd);
            wd = wd.succ();
        }
        let mut special: BTreeSet<NaiveDate> = BTreeSet::new();
        special.extend(self.table.off.iter().map(|h| h.date));
        special.extend(self.table.makeup.iter().copied());
        special.extend(cal.extra.range(first..=last).map(|(d, _)| *d));
        special.extend(cal.makeup.range(first..=last));
        special.extend(cal.removed.range(first..=last));
        for d in special {
            let actual: i64 = cal
                .periods_on(d, &self.table)
                .iter()
                .map(|p| i64::from(p.len()))
                .sum();
            total += actual - ordinary(d.weekday());
        }
        total
    }
}

fn year_bounds(year: i32) -> Option<(NaiveDate, NaiveDate)> {
    Some((
        NaiveDate::from_ymd_opt(year, 1, 1)?,
        NaiveDate::from_ymd_opt(year, 12, 31)?,
    ))
}

/// Minutes of `periods` inside `[from, to)` (minutes after midnight).
fn overlap(periods: &[Period], from: u32, to: u32) -> i64 {
    periods
        .iter()
        .map(|p| {
            let s = p.start.max(from);
            let e = p.end.min(to);
            i64::from(e.saturating_sub(s))
        })
        .sum()
}

fn parse_periods(field: &str, cfg: &[PeriodConfig]) -> Result<Vec<Period>, CalendarError> {
    let mut periods = Vec::with_capacity(cfg.len());
    for (i, p) in cfg.iter().enumerate() {
        let start = parse_hhmm(&p.start)
            .map_err(|e| CalendarError(format!("`{field}[{i}].start`: {e}")))?;
        let end =
            parse_hhmm(&p.end).map_err(|e| CalendarError(format!("`{field}[{i}].end`: {e}")))?;
        if start >= end {
            return Err(CalendarError(format!(
                "`{field}[{i}]`: start {} is not before end {}",
                p.start.trim(),
                p.end.trim()
            )));
        }
        periods.push(Period { start, end });
    }
    periods.sort_by_key(|p| p.start);
    for pair in periods.windows(2) {
        if let [a, b] = pair
            && b.start < a.end
        {
            return Err(CalendarError(format!(
                "`{field}`: office periods {}–{} and {}–{} overlap",
                fmt_hhmm(a.start),
                fmt_hhmm(a.end),
                fmt_hhmm(b.start),
                fmt_hhmm(b.end)
            )));
        }
    }
    Ok(periods)
}

/// Parse `"HH:MM"` (00:00..=24:00) into minutes after midnight.
fn parse_hhmm(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a time of day \"HH:MM\" (00:00–24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn fmt_hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

// ---------------------------------------------------------------------------
// Local time
// ---------------------------------------------------------------------------

fn min_supported_local() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(MIN_YEAR, 1, 1)
        .unwrap_or(NaiveDate::MIN)
        .and_time(NaiveTime::MIN)
}

fn max_supported_local() -> NaiveDateTime {
    let last = NaiveDate::from_ymd_opt(MAX_YEAR, 12, 31).unwrap_or(NaiveDate::MAX);
    NaiveTime::from_hms_opt(23, 59, 59).map_or(last.and_time(NaiveTime::MIN), |t| last.and_time(t))
}

fn offset_delta() -> TimeDelta {
    TimeDelta::seconds(i64::from(VIETNAM_OFFSET.local_minus_utc()))
}

/// Local (UTC+7) wall-clock time of `t`, clamped to the supported years.
fn to_local(t: DateTime<Utc>) -> NaiveDateTime {
    let local = t
        .naive_utc()
        .checked_add_signed(offset_delta())
        .unwrap_or(NaiveDateTime::MAX);
    local.clamp(min_supported_local(), max_supported_local())
}

fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&VIETNAM_OFFSET).date_naive()
}

/// The UTC instant of local `date` + `since_midnight`.
fn from_local(date: NaiveDate, since_midnight: TimeDelta) -> DateTime<Utc> {
    date.and_time(NaiveTime::MIN)
        .checked_add_signed(since_midnight)
        .and_then(|l| l.checked_sub_signed(offset_delta()))
        .map_or(DateTime::<Utc>::MAX_UTC, |n| n.and_utc())
}

fn minute_of_day(t: NaiveDateTime) -> u32 {
    let since = t.time() - NaiveTime::MIN;
    u32::try_from(since.num_minutes()).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Built-in holidays
// ---------------------------------------------------------------------------

/// Built-in days off and make-up days of one year.
#[derive(Debug, Clone, Default)]
struct YearTable {
    /// Sorted by date, one entry per date.
    off: Vec<Holiday>,
    /// Sorted.
    makeup: Vec<NaiveDate>,
}

impl YearTable {
    fn is_off(&self, d: NaiveDate) -> bool {
        self.off.binary_search_by_key(&d, |h| h.date).is_ok()
    }
    fn is_makeup(&self, d: NaiveDate) -> bool {
        self.makeup.binary_search(&d).is_ok()
    }
}

const CACHE_FIRST_YEAR: i32 = 1900;
const CACHE_YEARS: usize = 300;
static YEAR_CACHE: [OnceLock<YearTable>; CACHE_YEARS] = [const { OnceLock::new() }; CACHE_YEARS];

/// The built-in table of `year`, computed once per process for 1900–2199.
fn builtin_year(year: i32) -> Cow<'static, YearTable> {
    let slot = usize::try_from(i64::from(year) - i64::from(CACHE_FIRST_YEAR))
        .ok()
        .and_then(|i| YEAR_CACHE.get(i));
    match slot {
        Some(cell) => Cow::Borrowed(cell.get_or_init(|| compute_year(year))),
        None => Cow::Owned(compute_year(year)),
    }
}

fn ymd(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day)
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The legal holidays of `year` (Labour Code 2019, Art. 112), including
/// those that fall on a weekend, sorted by date.
fn legal_holidays(year: i32) -> Vec<Holiday> {
    let mut out = Vec::new();
    let mut push = |d: Option<NaiveDate>, vi: &str, en: &str| {
        if let Some(d) = d {
            out.push(Holiday::new(d, vi, en));
        }
    };
    push(ymd(year, 1, 1), "Tết Dương lịch", "New Year's Day");

    let tet = lunar_new_year(year);
    push(
        tet.pred_opt(),
        "Tết Nguyên đán (ngày cuối năm âm lịch)",
        "Lunar New Year (last day of the lunar year)",
    );
    push(
        Some(tet),
        "Tết Nguyên đán (mùng 1)",
        "Lunar New Year (day 1)",
    );
    for n in 1..=3u64 {
        push(
            tet.checked_add_days(chrono::Days::new(n)),
            &format!("Tết Nguyên đán (mùng {})", n + 1),
            &format!("Lunar New Year (day {})", n + 1),
        );
    }
    push(
        lunar_to_solar(year, 3, 10, false),
        "Giỗ Tổ Hùng Vương (10/3 âm lịch)",
        "Hùng Kings' Commemoration Day",
    );
    push(
        ymd(year, 4, 30),
        "Ngày Chiến thắng (30/4)",
        "Reunification Day (30 April)",
    );
    push(
        ymd(year, 5, 1),
        "Ngày Quốc tế Lao động (1/5)",
        "International Labour Day (1 May)",
    );
    push(
        ymd(year, 9, 2),
        "Quốc khánh (2/9)",
        "National Day (2 September)",
    );
    push(
        national_day_adjacent(year),
        "Quốc khánh (ngày liền kề)",
        "National Day (adjacent day)",
    );
    out.sort_by_key(|h| h.date);
    out.dedup_by_key(|h| h.date);
    out
}

/// The day the rule adds to National Day: Friday 3 September when 2
/// September is a Thursday, otherwise 1 September (a Monday when 2
/// September is a Tuesday).
fn national_day_adjacent(year: i32) -> Option<NaiveDate> {
    let national_day = ymd(year, 9, 2)?;
    if national_day.weekday() == Weekday::Thu {
        ymd(year, 9, 3)
    } else {
        ymd(year, 9, 1)
    }
}

/// Legal holidays plus a compensatory day off, on the next weekday that is
/// not already off, for every legal holiday on a Saturday or Sunday.
fn rule_year(year: i32) -> Vec<Holiday> {
    let legal = legal_holidays(year);
    let mut taken: BTreeSet<NaiveDate> = legal.iter().map(|h| h.date).collect();
    let mut out = legal.clone();
    for h in legal.iter().filter(|h| is_weekend(h.date)) {
        let mut d = h.date;
        while let Some(next) = d.succ_opt() {
            d = next;
            if !is_weekend(d) && !taken.contains(&d) {
                taken.insert(d);
                out.push(Holiday::new(
                    d,
                    format!("Nghỉ bù {}", h.name_vi),
                    format!("{} (compensatory day off)", h.name_en),
                ));
                break;
            }
        }
    }
    out.sort_by_key(|h| h.date);
    out
}

/// A day off the government announced instead of (or on top of) the rule.
struct AnnouncedDay {
    month: u32,
    day: u32,
    name_vi: &'static str,
    name_en: &'static str,
}

/// Differences between the announced calendar of a year and the rule.
struct Announcement {
    year: i32,
    /// Days off the rule gives but the announcement does not.
    remove: &'static [(u32, u32)],
    /// Days off the announcement adds.
    add: &'static [AnnouncedDay],
    /// Make-up working days.
    makeup: &'static [(u32, u32)],
}

/// Announced spans for civil servants (cán bộ, công chức, viên chức).
const ANNOUNCEMENTS: &[Announcement] = &[
    // Official letter 8726/VPCP-KGVX (26 Nov 2024) and the MoLISA notice:
    // Tết off Sat 25 Jan – Sun 2 Feb 2025, the compensatory day for Sat
    // 1 Feb (4th day of Tết) taken before Tết on Mon 27 Jan; 30/4–1/5 off
    // Wed 30 Apr – Sun 4 May with Fri 2 May swapped for Sat 26 Apr; National
    // Day off Sat 30 Aug – Tue 2 Sep (1 + 2 Sep, as the rule gives).
    Announcement {
        year: 2025,
        remove: &[(2, 3)],
        add: &[
            AnnouncedDay {
                month: 1,
                day: 27,
                name_vi: "Nghỉ bù Tết Nguyên đán (mùng 4 rơi vào thứ Bảy 1/2)",
                name_en: "Lunar New Year (compensatory day off for Saturday 1 Feb)",
            },
            AnnouncedDay {
                month: 5,
                day: 2,
                name_vi: "Nghỉ lễ 30/4–1/5 (hoán đổi, làm bù thứ Bảy 26/4/2025)",
                name_en: "30 April – 1 May break (swapped; worked on Saturday 26 Apr 2025)",
            },
        ],
        makeup: &[(4, 26)],
    },
    // New Year 2026: letter 12729/VPCP-KGVX (25 Dec 2025), off Thu 1 – Sun
    // 4 Jan, Fri 2 Jan swapped for Sat 10 Jan. Tết 2026 (approved Oct
    // 2025): off Sat 14 – Sun 22 Feb, the legal days being Mon 16 – Fri
    // 20 Feb. National Day 2026 (same approval): off Sat 29 Aug – Wed 2 Sep,
    // Mon 31 Aug swapped for Sat 22 Aug. Hùng Kings day on Sun 26 Apr gives
    // Mon 27 Apr off by the rule.
    Announcement {
        year: 2026,
        remove: &[],
        add: &[
            AnnouncedDay {
                month: 1,
                day: 2,
                name_vi: "Nghỉ Tết Dương lịch (hoán đổi, làm bù thứ Bảy 10/1/2026)",
                name_en: "New Year break (swapped; worked on Saturday 10 Jan 2026)",
            },
            AnnouncedDay {
                month: 8,
                day: 31,
                name_vi: "Nghỉ lễ Quốc khánh (hoán đổi, làm bù thứ Bảy 22/8/2026)",
                name_en: "National Day break (swapped; worked on Saturday 22 Aug 2026)",
            },
        ],
        makeup: &[(1, 10), (8, 22)],
    },
];

fn compute_year(year: i32) -> YearTable {
    let mut off: BTreeMap<NaiveDate, Holiday> =
        rule_year(year).into_iter().map(|h| (h.date, h)).collect();
    let mut makeup = Vec::new();
    for a in ANNOUNCEMENTS.iter().filter(|a| a.year == year) {
        for &(m, d) in a.remove {
            if let Some(date) = ymd(year, m, d) {
                off.remove(&date);
            }
        }
        for day in a.add {
            if let Some(date) = ymd(year, day.month, day.day) {
                off.insert(date, Holiday::new(date, day.name_vi, day.name_en));
            }
        }
        makeup.extend(a.makeup.iter().filter_map(|&(m, d)| ymd(year, m, d)));
    }
    makeup.sort();
    makeup.dedup();
    YearTable {
        off: off.into_values().collect(),
        makeup,
    }
}

// ---------------------------------------------------------------------------
// Vietnamese lunar calendar (Hồ Ngọc Đức's algorithm, time zone UTC+7)
// ---------------------------------------------------------------------------

/// Julian date of the new moon of 1 Jan 1900 (lunation 0 of the algorithm),
/// used to estimate lunation numbers.
const LUNATION_EPOCH: f64 = 2_415_021.076_998_695;
const SYNODIC_MONTH: f64 = 29.530_588_853;
/// `num_days_from_ce` of a date plus this is its Julian day number.
const JDN_CE_OFFSET: i64 = 1_721_425;

fn jdn(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce()) + JDN_CE_OFFSET
}

fn from_jdn(j: i64) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(j - JDN_CE_OFFSET).ok()?)
}

/// Julian day number of a proleptic Gregorian date (valid for any year the
/// lunar functions are asked about, even beyond chrono's range).
fn jdn_ymd(year: i64, month: i64, day: i64) -> i64 {
    let a = (14 - month).div_euclid(12);
    let y = year + 4800 - a;
    let m = month + 12 * a - 3;
    day + (153 * m + 2).div_euclid(5) + 365 * y + y.div_euclid(4) - y.div_euclid(100)
        + y.div_euclid(400)
        - 32045
}

/// Julian date (UT) of the `k`-th new moon after 1 Jan 1900.
fn new_moon(k: i64) -> f64 {
    let k = k as f64;
    let t = k / 1236.85;
    let t2 = t * t;
    let t3 = t2 * t;
    let dr = PI / 180.0;
    let mut jd1 = 2_415_020.759_33 + 29.530_588_68 * k + 0.000_117_8 * t2 - 0.000_000_155 * t3;
    jd1 += 0.000_33 * ((166.56 + 132.87 * t - 0.009_173 * t2) * dr).sin();
    let m = 359.224_2 + 29.105_356_08 * k - 0.000_033_3 * t2 - 0.000_003_47 * t3;
    let mpr = 306.025_3 + 385.816_918_06 * k + 0.010_730_6 * t2 + 0.000_012_36 * t3;
    let f = 21.296_4 + 390.670_506_46 * k - 0.001_652_8 * t2 - 0.000_002_39 * t3;
    let mut c1 = (0.173_4 - 0.000_393 * t) * (m * dr).sin() + 0.002_1 * (2.0 * dr * m).sin();
    c1 -= 0.406_8 * (mpr * dr).sin() + 0.016_1 * (dr * 2.0 * mpr).sin();
    c1 -= 0.000_4 * (dr * 3.0 * mpr).sin();
    c1 += 0.010_4 * (dr * 2.0 * f).sin() - 0.005_1 * (dr * (m + mpr)).sin();
    c1 -= 0.007_4 * (dr * (m - mpr)).sin() + 0.000_4 * (dr * (2.0 * f + m)).sin();
    c1 -= 0.000_4 * (dr * (2.0 * f - m)).sin() - 0.000_6 * (dr * (2.0 * f + mpr)).sin();
    c1 += 0.001_0 * (dr * (2.0 * f - mpr)).sin() + 0.000_5 * (dr * (2.0 * mpr + m)).sin();
    let deltat = if t < -11.0 {
        0.001 + 0.000_839 * t + 0.000_226_1 * t2 - 0.000_008_45 * t3 - 0.000_000_081 * t * t3
    } else {
        -0.000_278 + 0.000_265 * t + 0.000_262 * t2
    };
    jd1 + c1 - deltat
}

/// Julian day number of the local (UTC+7) day of the `k`-th new moon.
fn new_moon_day(k: i64) -> i64 {
    (new_moon(k) + 0.5 + TZ_HOURS / 24.0).floor() as i64
}

/// Sun's apparent longitude in radians, normalised to [0, 2π), at Julian
/// date `jd` (UT).
fn sun_longitude(jd: f64) -> f64 {
    let t = (jd - 2_451_545.0) / 36_525.0;
    let t2 = t * t;
    let dr = PI / 180.0;
    let m = 357.529_10 + 35_999.050_30 * t - 0.000_155_9 * t2 - 0.000_000_48 * t * t2;
    let l0 = 280.466_45 + 36_000.769_83 * t + 0.000_303_2 * t2;
    let mut dl = (1.914_600 - 0.004_817 * t - 0.000_014 * t2) * (dr * m).sin();
    dl += (0.019_993 - 0.000_101 * t) * (dr * 2.0 * m).sin() + 0.000_290 * (dr * 3.0 * m).sin();
    let l = (l0 + dl) * dr;
    l - 2.0 * PI * (l / (2.0 * PI)).floor()
}

/// Sector 0..=11 (30° each) of the sun's longitude at the start of local
/// day `day` (a Julian day number).
fn sun_sector(day: i64) -> i64 {
    (sun_longitude(day as f64 - 0.5 - TZ_HOURS / 24.0) / PI * 6.0).floor() as i64
}

/// Julian day number of the start of lunar month 11 (the month containing
/// the winter solstice) of lunar year `year`.
fn lunar_month_11(year: i64) -> i64 {
    let off = jdn_ymd(year, 12, 31) - 2_415_021;
    let k = (off as f64 / SYNODIC_MONTH).floor() as i64;
    let nm = new_moon_day(k);
    if sun_sector(nm) >= 9 {
        new_moon_day(k - 1)
    } else {
        nm
    }
}

/// Offset (in months after month 11 starting at `a11`) of the leap month
/// of a 13-month lunar year: the first month containing no major solar
/// term.
fn leap_month_offset(a11: i64) -> i64 {
    let k = ((a11 as f64 - LUNATION_EPOCH) / SYNODIC_MONTH + 0.5).floor() as i64;
    let mut i = 1;
    let mut arc = sun_sector(new_moon_day(k + i));
    loop {
        let last = arc;
        i += 1;
        arc = sun_sector(new_moon_day(k + i));
        if arc == last || i >= 14 {
            break;
        }
    }
    i - 1
}

/// Month-number of the leap month for a given leap offset.
fn leap_month_number(leap_off: i64) -> i64 {
    (leap_off + 9).rem_euclid(12) + 1
}

/// The solar date of a Vietnamese lunar date, or `None` if it does not
/// exist (no such leap month that year, day 30 of a 29-day month, month or
/// day out of range).
pub fn lunar_to_solar(
    lunar_year: i32,
    lunar_month: u32,
    lunar_day: u32,
    leap_month: bool,
) -> Option<NaiveDate> {
    if !(1..=12).contains(&lunar_month) || !(1..=30).contains(&lunar_day) {
        return None;
    }
    let year = i64::from(lunar_year);
    let month = i64::from(lunar_month);
    let (a11, b11) = if month < 11 {
        (lunar_month_11(year - 1), lunar_month_11(year))
    } else {
        (lunar_month_11(year), lunar_month_11(year + 1))
    };
    let k = (0.5 + (a11 as f64 - LUNATION_EPOCH) / SYNODIC_MONTH).floor() as i64;
    let mut off = (month - 11).rem_euclid(12);
    if b11 - a11 > 365 {
        let leap_off = leap_month_offset(a11);
        if leap_month && month != leap_month_number(leap_off) {
            return None;
        }
        if leap_month || off >= leap_off {
            off += 1;
        }
    } else if leap_month {
        return None;
    }
    let start = new_moon_day(k + off);
    let next = new_moon_day(k + off + 1);
    if i64::from(lunar_day) > next - start {
        return None;
    }
    from_jdn(start + i64::from(lunar_day) - 1)
}

/// The Vietnamese lunar date of solar date `d`.
pub fn solar_to_lunar(d: NaiveDate) -> LunarDate {
    let day_number = jdn(d);
    // The lunation estimate can be off by one near a new moon; settle on the
    // last new moon day not after `d`.
    let mut k = ((day_number as f64 - LUNATION_EPOCH) / SYNODIC_MONTH).floor() as i64;
    while new_moon_day(k) > day_number {
        k -= 1;
    }
    while new_moon_day(k + 1) <= day_number {
        k += 1;
    }
    let month_start = new_moon_day(k);
    let y = i64::from(d.year());
    let mut a11 = lunar_month_11(y);
    let mut b11 = a11;
    let mut lunar_year;
    if a11 >= month_start {
        lunar_year = y;
        a11 = lunar_month_11(y - 1);
    } else {
        lunar_year = y + 1;
        b11 = lunar_month_11(y + 1);
    }
    let lunar_day = day_number - month_start + 1;
    let diff = (month_start - a11).div_euclid(29);
    let mut leap = false;
    let mut lunar_month = diff + 11;
    if b11 - a11 > 365 {
        let leap_diff = leap_month_offset(a11);
        if diff >= leap_diff {
            lunar_month = diff + 10;
            leap = diff == leap_diff;
        }
    }
    if lunar_month > 12 {
        lunar_month -= 12;
    }
    if lunar_month >= 11 && diff < 4 {
        lunar_year -= 1;
    }
    LunarDate {
        year: i32::try_from(lunar_year).unwrap_or(d.year()),
        month: u32::try_from(lunar_month).unwrap_or(1),
        day: u32::try_from(lunar_day).unwrap_or(1),
        leap,
    }
}

/// Vietnamese lunar New Year's day (mùng 1 Tết) of `year`, computed for
/// UTC+7 (2 Feb 2030, where Chinese tables give 3 Feb).
pub fn lunar_new_year(year: i32) -> NaiveDate {
    let y = i64::from(year);
    let a11 = lunar_month_11(y - 1);
    let b11 = lunar_month_11(y);
    let k = (0.5 + (a11 as f64 - LUNATION_EPOCH) / SYNODIC_MONTH).floor() as i64;
    // Month 1 is two lunations after month 11, three if month 11 or 12 is
    // followed by a leap month.
    let off = if b11 - a11 > 365 && leap_month_offset(a11) <= 2 {
        3
    } else {
        2
    };
    from_jdn(new_moon_day(k + off)).unwrap_or(NaiveDate::MIN)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    #[test]
    fn overrides_roundtrip_and_merge() {
        let o = CalendarOverrides {
            extra_holidays: vec![HolidayConfig {
                date: NaiveDate::from_ymd_opt(2027, 3, 10).unwrap(),
                name: "Nghỉ".to_owned(),
                name_en: None,
            }],
            makeup_working_days: vec![NaiveDate::from_ymd_opt(2027, 3, 13).unwrap()],
            removed_holidays: vec![],
        };
        let json = serde_json::to_string(&o).unwrap();
        let back: CalendarOverrides = serde_json::from_str(&json).unwrap();
        assert_eq!(back, o);
        let cal = WorkingCalendar::from_config(&o.merge_into(&CalendarConfig::default())).unwrap();
        assert!(!cal.is_working_day(NaiveDate::from_ymd_opt(2027, 3, 10).unwrap()));
        assert!(cal.is_working_day(NaiveDate::from_ymd_opt(2027, 3, 13).unwrap()));
    }
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Vietnam local time → UTC instant.
    fn vn(y: i32, m: u32, day: u32, h: u32, min: u32) -> DateTime<Utc> {
        VIETNAM_OFFSET
            .with_ymd_and_hms(y, m, day, h, min, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn cal() -> WorkingCalendar {
        WorkingCalendar::vietnam()
    }

    // -- lunar --------------------------------------------------------------

    #[test]
    fn calendar_lunar_new_year_vietnam() {
        let expected = [
            (2025, d(2025, 1, 29)),
            (2026, d(2026, 2, 17)),
            (2027, d(2027, 2, 6)),
            (2028, d(2028, 1, 26)),
            (2029, d(2029, 2, 13)),
            (2030, d(2030, 2, 2)),
        ];
        for (year, date) in expected {
            assert_eq!(lunar_new_year(year), date, "Tết {year}");
            assert_eq!(lunar_to_solar(year, 1, 1, false), Some(date), "1/1 {year}");
        }
    }

    #[test]
    fn calendar_lunar_historic_differences_from_china() {
        // Years where the Vietnamese (UTC+7) Tết differs from the Chinese one.
        assert_eq!(lunar_new_year(1968), d(1968, 1, 29)); // China 30 Jan
        assert_eq!(lunar_new_year(1985), d(1985, 1, 21)); // China 20 Feb
        assert_eq!(lunar_new_year(2007), d(2007, 2, 17)); // China 18 Feb
    }

    #[test]
    fn calendar_lunar_2030_differs_from_china() {
        // The new moon of 2 Feb 2030 is at 23:07 UTC+7, i.e. 3 Feb at UTC+8.
        assert_eq!(lunar_new_year(2030), d(2030, 2, 2));
        assert_ne!(lunar_new_year(2030), d(2030, 2, 3));
    }

    #[test]
    fn calendar_lunar_hung_kings_day() {
        let expected = [
            (2025, d(2025, 4, 7)),
            (2026, d(2026, 4, 26)),
            (2027, d(2027, 4, 16)),
            (2028, d(2028, 4, 4)),
            (2029, d(2029, 4, 23)),
            (2030, d(2030, 4, 12)),
        ];
        for (year, date) in expected {
            assert_eq!(lunar_to_solar(year, 3, 10, false), Some(date), "{year}");
        }
    }

    #[test]
    fn calendar_lunar_leap_months_and_invalid_dates() {
        // Ất Tỵ (2025) has a leap 6th month starting 25 Jul 2025.
        assert_eq!(lunar_to_solar(2025, 6, 1, true), Some(d(2025, 7, 25)));
        assert_eq!(lunar_to_solar(2025, 6, 1, false), Some(d(2025, 6, 25)));
        assert_eq!(lunar_to_solar(2025, 5, 1, true), None);
        assert_eq!(lunar_to_solar(2026, 6, 1, true), None);
        assert_eq!(lunar_to_solar(2026, 13, 1, false), None);
        assert_eq!(lunar_to_solar(2026, 1, 0, false), None);
        // Month 12 of Ất Tỵ has 29 days: its day 29 is 16 Feb 2026, day 30
        // does not exist.
        assert_eq!(lunar_to_solar(2025, 12, 29, false), Some(d(2026, 2, 16)));
        assert_eq!(lunar_to_solar(2025, 12, 30, false), None);
        assert_eq!(
            solar_to_lunar(d(2025, 7, 25)),
            LunarDate {
                year: 2025,
                month: 6,
                day: 1,
                leap: true
            }
        );
        assert_eq!(
            solar_to_lunar(d(2026, 2, 16)),
            LunarDate {
                year: 2025,
                month: 12,
                day: 29,
                leap: false
            }
        );
    }

    #[test]
    fn calendar_lunar_round_trip_every_day() {
        let mut day = d(2000, 1, 1);
        while day < d(2101, 1, 1) {
            let l = solar_to_lunar(day);
            assert_eq!(
                lunar_to_solar(l.year, l.month, l.day, l.leap),
                Some(day),
                "{day} -> {l:?}"
            );
            day = day.succ_opt().unwrap();
        }
    }

    // -- holidays -----------------------------------------------------------

    fn weekday_days_off(year: i32) -> Vec<NaiveDate> {
        let c = cal();
        let mut out = Vec::new();
        let mut day = d(year, 1, 1);
        while day.year() == year {
            if !is_weekend(day) && !c.is_working_day(day) {
                out.push(day);
            }
            day = day.succ_opt().unwrap();
        }
        out
    }

    #[test]
    fn calendar_2025_matches_announcement() {
        let expected = vec![
            d(2025, 1, 1),
            d(2025, 1, 27),
            d(2025, 1, 28),
            d(2025, 1, 29),
            d(2025, 1, 30),
            d(2025, 1, 31),
            d(2025, 4, 7),
            d(2025, 4, 30),
            d(2025, 5, 1),
            d(2025, 5, 2),
            d(2025, 9, 1),
            d(2025, 9, 2),
        ];
        assert_eq!(weekday_days_off(2025), expected);
        assert!(cal().is_working_day(d(2025, 4, 26)), "make-up Saturday");
        assert!(cal().is_working_day(d(2025, 2, 3)), "Monday after Tết");
        assert_eq!(cal().makeup_working_days(2025), vec![d(2025, 4, 26)]);
    }

    #[test]
    fn calendar_2026_matches_announcement() {
        let expected = vec![
            d(2026, 1, 1),
            d(2026, 1, 2),
            d(2026, 2, 16),
            d(2026, 2, 17),
            d(2026, 2, 18),
            d(2026, 2, 19),
            d(2026, 2, 20),
            d(2026, 4, 27),
            d(2026, 4, 30),
            d(2026, 5, 1),
            d(2026, 8, 31),
            d(2026, 9, 1),
            d(2026, 9, 2),
        ];
        assert_eq!(weekday_days_off(2026), expected);
        assert_eq!(
            cal().makeup_working_days(2026),
            vec![d(2026, 1, 10), d(2026, 8, 22)]
        );
    }

    #[test]
    fn calendar_rule_years_have_eleven_days_off() {
        // 11 legal days; weekend ones are compensated, so every rule year
        // has exactly 11 weekday days off.
        for year in 2027..=2060 {
            assert_eq!(weekday_days_off(year).len(), 11, "{year}");
        }
    }

    #[test]
    fn calendar_2027_tet_compensation() {
        // Tết 2027: Fri 5 Feb (last day) .. Tue 9 Feb; Sat 6 and Sun 7 are
        // compensated by Wed 10 and Thu 11.
        let off: Vec<_> = weekday_days_off(2027)
            .into_iter()
            .filter(|x| x.month() == 2)
            .collect();
        assert_eq!(
            off,
            vec![
                d(2027, 2, 5),
                d(2027, 2, 8),
                d(2027, 2, 9),
                d(2027, 2, 10),
                d(2027, 2, 11)
            ]
        );
    }

    #[test]
    fn calendar_national_day_rule() {
        // 2027: 2 Sep is a Thursday -> Fri 3 Sep.
        assert!(!cal().is_working_day(d(2027, 9, 3)));
        assert!(cal().is_working_day(d(2027, 9, 1)));
        // 2025: Tuesday -> Monday 1 Sep.
        assert!(!cal().is_working_day(d(2025, 9, 1)));
        assert!(cal().is_working_day(d(2025, 9, 3)));
        // 2029: Sunday 2 Sep, Saturday 1 Sep -> Mon 3 and Tue 4 off.
        assert!(!cal().is_working_day(d(2029, 9, 3)));
        assert!(!cal().is_working_day(d(2029, 9, 4)));
        assert!(cal().is_working_day(d(2029, 9, 5)));
    }

    #[test]
    fn calendar_holidays_listing() {
        let h = cal().holidays(2026);
        assert!(h.windows(2).all(|w| w[0].date < w[1].date));
        let hung = h.iter().find(|x| x.date == d(2026, 4, 26)).unwrap();
        assert!(hung.name_vi.contains("Hùng Vương"));
        let comp = h.iter().find(|x| x.date == d(2026, 4, 27)).unwrap();
        assert!(comp.name_vi.starts_with("Nghỉ bù"));
        assert!(comp.name_en.contains("compensatory"));
    }

    // -- working time -------------------------------------------------------

    #[test]
    fn calendar_defaults() {
        let c = cal();
        assert_eq!(c.hours_per_day(), 8);
        assert_eq!(c.minutes_per_day(), 480);
        let from_default = WorkingCalendar::from_config(&CalendarConfig::default()).unwrap();
        assert_eq!(from_default.weekday, c.weekday);
        assert_eq!(from_default.saturday, c.saturday);
        assert!(!c.is_working_day(d(2025, 3, 8)));
        assert!(!c.is_working_day(d(2025, 3, 9)));
        assert!(c.is_working_day(d(2025, 3, 10)));
    }

    #[test]
    fn calendar_full_day_lands_at_end_of_day() {
        // Monday 10 Mar 2025 07:30 + 8 h -> Monday 17:00, not Tuesday 07:30.
        let c = cal();
        assert_eq!(
            c.add_working_minutes(vn(2025, 3, 10, 7, 30), 480),
            vn(2025, 3, 10, 17, 0)
        );
        assert_eq!(
            c.add_working_minutes(vn(2025, 3, 10, 7, 30), 240),
            vn(2025, 3, 10, 11, 30)
        );
        assert_eq!(
            c.add_working_minutes(vn(2025, 3, 10, 7, 30), 241),
            vn(2025, 3, 10, 13, 1)
        );
        // Outside office time: counting starts at the next period.
        assert_eq!(
            c.add_working_minutes(vn(2025, 3, 10, 12, 0), 30),
            vn(2025, 3, 10, 13, 30)
        );
        assert_eq!(
            c.add_working_minutes(vn(2025, 3, 10, 5, 0), 480),
            vn(2025, 3, 10, 17, 0)
        );
        assert_eq!(
            c.add_working_minutes(vn(2025, 3, 10, 18, 0), 60),
            vn(2025, 3, 11, 8, 30)
        );
    }

    #[test]
    fn calendar_friday_afternoon_over_weekend() {
        // Friday 14 Mar 2025 16:00: one hour left on Friday.
        let c = cal();
        let fri = vn(2025, 3, 14, 16, 0);
        assert_eq!(c.add_working_minutes(fri, 60), vn(2025, 3, 14, 17, 0));
        assert_eq!(c.add_working_minutes(fri, 120), vn(2025, 3, 17, 8, 30));
        assert_eq!(c.add_working_minutes(fri, 180), vn(2025, 3, 17, 9, 30));
        assert_eq!(c.working_minutes_between(fri, vn(2025, 3, 17, 9, 30)), 180);
    }

    #[test]
    fn calendar_non_positive_minutes() {
        let c = cal();
        let t = vn(2025, 3, 15, 3, 17);
        assert_eq!(c.add_working_minutes(t, 0), t);
        assert_eq!(c.add_working_minutes(t, -100), t);
        assert_eq!(c.working_minutes_between(t, t), 0);
        assert_eq!(c.working_minutes_between(vn(2025, 3, 17, 9, 0), t), 0);
    }

    #[test]
    fn calendar_accepted_before_tet_2025() {
        // Friday 24 Jan 2025 10:00 + 1 working day: 5.5 h on Friday, then
        // nothing until Monday 3 Feb.
        let c = cal();
        let accepted = vn(2025, 1, 24, 10, 0);
        let due = c.add_working_days(accepted, 1);
        assert_eq!(due, vn(2025, 2, 3, 10, 0));
        assert_eq!(c.working_minutes_between(accepted, due), 480);
    }

    #[test]
    fn calendar_national_day_2025() {
        // Friday 29 Aug 2025 13:30 + 2 working days (960 min): 210 min on
        // Friday, Mon 1 and Tue 2 Sep off, 480 on Wednesday 3 Sep, the last
        // 270 on Thursday 4 Sep (240 in the morning, 30 after lunch).
        let c = cal();
        let start = vn(2025, 8, 29, 13, 30);
        assert_eq!(c.add_working_days(start, 2), vn(2025, 9, 4, 13, 30));
    }

    #[test]
    fn calendar_makeup_saturday_counts() {
        // Friday 25 Apr 2025 17:00 + 4 h -> Saturday 26 Apr 11:30 (make-up).
        let c = cal();
        assert_eq!(
            c.add_working_minutes(vn(2025, 4, 25, 17, 0), 240),
            vn(2025, 4, 26, 11, 30)
        );
        assert_eq!(
            c.working_minutes_between(vn(2025, 4, 26, 0, 0), vn(2025, 4, 27, 0, 0)),
            480
        );
        // Tuesday 29 Apr 17:00 + 1 h -> Monday 5 May 08:30 (30/4-4/5 off).
        assert_eq!(
            c.add_working_minutes(vn(2025, 4, 29, 17, 0), 60),
            vn(2025, 5, 5, 8, 30)
        );
    }

    #[test]
    fn calendar_sub_minute_instants() {
        let c = cal();
        let start = vn(2025, 3, 10, 9, 0) + TimeDelta::seconds(30);
        let end = c.add_working_minutes(start, 1);
        assert_eq!(end, vn(2025, 3, 10, 9, 1) + TimeDelta::seconds(30));
        assert_eq!(c.working_minutes_between(start, end), 1);
        // 20 seconds crossing a minute boundary count as one minute...
        let a = vn(2025, 3, 10, 9, 0) + TimeDelta::seconds(50);
        let b = vn(2025, 3, 10, 9, 1) + TimeDelta::seconds(10);
        assert_eq!(c.working_minutes_between(a, b), 1);
        // ...and 50 seconds within one minute as none.
        assert_eq!(
            c.working_minutes_between(vn(2025, 3, 10, 9, 0), a),
            0,
            "same minute"
        );
        // Near a period end: 11:29:30 + 1 min -> 13:00:30.
        let s = vn(2025, 3, 10, 11, 29) + TimeDelta::seconds(30);
        assert_eq!(
            c.add_working_minutes(s, 1),
            vn(2025, 3, 10, 13, 0) + TimeDelta::seconds(30)
        );
    }

    #[test]
    fn calendar_large_durations_are_fast_and_exact() {
        let c = cal();
        let start = vn(2025, 1, 2, 8, 0);
        let minutes = 10_000 * 480;
        let t = std::time::Instant::now();
        let due = c.add_working_minutes(start, minutes);
        assert_eq!(c.working_minutes_between(start, due), minutes);
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(due.year() > 2060 && due.year() < 2070, "{due}");
        // A year of working time is the sum of its days.
        let mut rules = DayRules::new(&c);
        for year in [2025, 2026, 2030, 2100] {
            let mut by_day = 0;
            let mut day = d(year, 1, 1);
            while day.year() == year {
                by_day += overlap(rules.periods(day), 0, MINUTES_PER_DAY);
                day = day.succ_opt().unwrap();
            }
            assert_eq!(rules.year_minutes(year), by_day, "{year}");
        }
    }

    #[test]
    fn calendar_extreme_inputs_saturate() {
        let c = cal();
        let start = vn(2025, 1, 2, 8, 0);
        assert_eq!(
            c.add_working_minutes(start, i64::MAX),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            c.add_working_minutes(start, 5_000_000_000),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            c.add_working_minutes(DateTime::<Utc>::MAX_UTC, 10),
            DateTime::<Utc>::MAX_UTC
        );
        assert!(c.working_minutes_between(DateTime::<Utc>::MIN_UTC, start) > 0);
        // Before 1900 counts from 1900-01-01.
        let early = Utc.with_ymd_and_hms(1800, 1, 1, 0, 0, 0).unwrap();
        assert!(c.add_working_minutes(early, 1) > vn(1900, 1, 1, 0, 0));
    }

    #[test]
    fn calendar_classify() {
        let c = cal();
        let due = vn(2025, 3, 12, 17, 0);
        assert_eq!(c.classify(vn(2025, 3, 12, 17, 1), due), Timeliness::Late);
        assert_eq!(c.classify(due, due), Timeliness::OnTime);
        assert_eq!(c.classify(vn(2025, 3, 12, 7, 45), due), Timeliness::OnTime);
        assert_eq!(c.classify(vn(2025, 3, 11, 23, 59), due), Timeliness::Early);
        // Local date, not UTC date: 12 Mar 06:00 local is 11 Mar in UTC.
        assert_eq!(c.classify(vn(2025, 3, 12, 6, 0), due), Timeliness::OnTime);
        assert_eq!(
            serde_json::to_string(&Timeliness::OnTime).unwrap(),
            "\"on_time\""
        );
    }

    // -- configuration ------------------------------------------------------

    #[test]
    fn calendar_config_from_json() {
        let cfg: CalendarConfig = serde_json::from_str(
            r#"{
                "periods": [{"start": "08:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}],
                "saturday_morning": true,
                "extra_holidays": [{"date": "2027-02-12", "name": "Nghỉ Tết (hoán đổi)", "name_en": "Tết (swap)"}],
                "makeup_working_days": ["2027-02-20"],
                "removed_holidays": ["2027-09-03"]
            }"#,
        )
        .unwrap();
        let c = WorkingCalendar::from_config(&cfg).unwrap();
        assert_eq!(c.hours_per_day(), 8);
        assert!(!c.is_working_day(d(2027, 2, 12)));
        assert!(c.is_working_day(d(2027, 2, 20)));
        assert!(c.is_working_day(d(2027, 9, 3)));
        assert!(c.holidays(2027).iter().all(|h| h.date != d(2027, 9, 3)));
        assert!(
            c.holidays(2027)
                .iter()
                .any(|h| h.date == d(2027, 2, 12) && h.name_en == "Tết (swap)")
        );
        assert_eq!(c.makeup_working_days(2027), vec![d(2027, 2, 20)]);
        // Saturday morning: Sat 13 Mar 2027 08:00-12:00 counts.
        assert!(c.is_working_day(d(2027, 3, 13)));
        assert_eq!(
            c.working_minutes_between(vn(2027, 3, 13, 0, 0), vn(2027, 3, 14, 0, 0)),
            240
        );
        // A make-up Saturday uses the full weekday periods.
        assert_eq!(
            c.working_minutes_between(vn(2027, 2, 20, 0, 0), vn(2027, 2, 21, 0, 0)),
            480
        );
        // Saturday that is a legal holiday (Tết 2027): no reception.
        assert!(!c.is_working_day(d(2027, 2, 6)));
        // TOML local dates reach serde as a one-entry map (toml, figment).
        let toml_like: CalendarConfig = serde_json::from_str(
            r#"{"removed_holidays": [{"$__toml_private_datetime": "2027-09-03"}],
                "extra_holidays": [{"date": {"$__toml_private_datetime": "2027-02-12"}}]}"#,
        )
        .unwrap();
        assert_eq!(toml_like.removed_holidays, vec![d(2027, 9, 3)]);
        assert_eq!(toml_like.extra_holidays[0].date, d(2027, 2, 12));
        let bad = serde_json::from_str::<CalendarConfig>(r#"{"removed_holidays": ["2027-02-30"]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("2027-02-30") && bad.contains("YYYY-MM-DD"),
            "{bad}"
        );
        // Empty object = defaults.
        let empty: CalendarConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, CalendarConfig::default());
    }

    #[test]
    fn calendar_config_without_builtins() {
        let cfg = CalendarConfig {
            builtin_holidays: false,
            ..CalendarConfig::default()
        };
        let c = WorkingCalendar::from_config(&cfg).unwrap();
        assert!(c.is_working_day(d(2025, 1, 29)));
        assert!(c.holidays(2025).is_empty());
    }

    #[test]
    fn calendar_config_removed_cancels_builtin_makeup() {
        let cfg = CalendarConfig {
            removed_holidays: vec![d(2025, 4, 26), d(2025, 5, 2)],
            ..CalendarConfig::default()
        };
        let c = WorkingCalendar::from_config(&cfg).unwrap();
        assert!(!c.is_working_day(d(2025, 4, 26)));
        assert!(c.is_working_day(d(2025, 5, 2)));
        assert!(c.makeup_working_days(2025).is_empty());
    }

    #[test]
    fn calendar_config_validation() {
        let with_periods = |p: &[(&str, &str)]| CalendarConfig {
            periods: p.iter().map(|(s, e)| PeriodConfig::new(s, e)).collect(),
            ..CalendarConfig::default()
        };
        let err = |cfg: &CalendarConfig| {
            WorkingCalendar::from_config(cfg)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let e = err(&with_periods(&[("07:30", "11:30"), ("11:00", "17:00")]));
        assert!(e.contains("overlap"), "{e}");
        let e = err(&with_periods(&[("12:00", "08:00")]));
        assert!(e.contains("not before"), "{e}");
        let e = err(&with_periods(&[("7h30", "11:30")]));
        assert!(e.contains("HH:MM") && e.contains("periods[0].start"), "{e}");
        for bad in ["25:00", "24:01", "07:60", "7:5", "", "-1:00", "07:30:00"] {
            let e = err(&with_periods(&[(bad, "23:00")]));
            assert!(e.contains("HH:MM"), "{bad}: {e}");
        }
        let e = err(&with_periods(&[]));
        assert!(e.contains("at least one"), "{e}");
        assert!(WorkingCalendar::from_config(&with_periods(&[("7:30", "24:00")])).is_ok());
        // Touching periods are fine.
        let c =
            WorkingCalendar::from_config(&with_periods(&[("13:00", "17:00"), ("08:00", "13:00")]))
                .unwrap();
        assert_eq!(c.hours_per_day(), 9);
        let conflict = CalendarConfig {
            extra_holidays: vec![HolidayConfig {
                date: d(2027, 1, 4),
                name: String::new(),
                name_en: None,
            }],
            makeup_working_days: vec![d(2027, 1, 4)],
            ..CalendarConfig::default()
        };
        assert!(err(&conflict).contains("2027-01-04"));
        let unknown = serde_json::from_str::<CalendarConfig>(r#"{"saturday_mornings": true}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn calendar_hours_per_day_rounds() {
        // 07:30-11:30 + 13:30-17:00 is 7.5 h: hours_per_day rounds to 8, but
        // a full day of 480 minutes then spills into the next morning.
        let cfg = CalendarConfig {
            periods: vec![
                PeriodConfig::new("07:30", "11:30"),
                PeriodConfig::new("13:30", "17:00"),
            ],
            ..CalendarConfig::default()
        };
        let c = WorkingCalendar::from_config(&cfg).unwrap();
        assert_eq!(c.minutes_per_day(), 450);
        assert_eq!(c.hours_per_day(), 8);
        assert_eq!(
            c.add_working_minutes(vn(2025, 3, 10, 7, 30), 480),
            vn(2025, 3, 11, 8, 0)
        );
        assert_eq!(
            c.add_working_days(vn(2025, 3, 10, 7, 30), 1),
            vn(2025, 3, 10, 17, 0)
        );
    }

    // -- documentation ------------------------------------------------------

    /// The built-in table as it appears in `docs/calendar.md`.
    fn builtin_table_markdown() -> String {
        let c = cal();
        let mut out = String::from(
            "<!-- BEGIN GENERATED TABLE (cargo test -p motcua-domain calendar_docs -- --nocapture) -->\n",
        );
        for year in 2025..=2030 {
            out.push_str(&format!("\n#### {year}\n\n"));
            out.push_str("| Date | Day | Vietnamese | English |\n|---|---|---|---|\n");
            for h in c.holidays(year) {
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    h.date,
                    h.date.format("%a"),
                    h.name_vi,
                    h.name_en
                ));
            }
            let makeup = c.makeup_working_days(year);
            if !makeup.is_empty() {
                let list: Vec<String> = makeup
                    .iter()
                    .map(|m| format!("{} ({})", m, m.format("%a")))
                    .collect();
                out.push_str(&format!("\nMake-up working days: {}.\n", list.join(", ")));
            }
        }
        out.push_str("\n<!-- END GENERATED TABLE -->\n");
        out
    }

    #[test]
    fn calendar_docs_table_is_current() {
        let table = builtin_table_markdown();
        println!("{table}");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/calendar.md");
        if let Ok(doc) = std::fs::read_to_string(path) {
            assert!(
                doc.contains(&table),
                "docs/calendar.md is out of date: paste the table printed by this test"
            );
        }
    }

    // -- properties ---------------------------------------------------------

    /// Instants between 2024 and 2032, at second resolution, plus some
    /// nanoseconds now and then.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        let lo = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let hi = Utc
            .with_ymd_and_hms(2032, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        (lo..hi, prop_oneof![Just(0u32), 0u32..1_000_000_000])
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap())
    }

    /// Instants on office-relevant grid points (period edges, minutes).
    fn minute_instant() -> impl Strategy<Value = DateTime<Utc>> {
        let lo = Utc
            .with_ymd_and_hms(2024, 6, 1, 0, 0, 0)
            .unwrap()
            .timestamp()
            / 60;
        let hi = Utc
            .with_ymd_and_hms(2031, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp()
            / 60;
        (lo..hi).prop_map(|m| DateTime::from_timestamp(m * 60, 0).unwrap())
    }

    fn calendars() -> impl Strategy<Value = WorkingCalendar> {
        prop_oneof![
            Just(WorkingCalendar::vietnam()),
            Just(
                WorkingCalendar::from_config(&CalendarConfig {
                    saturday_morning: true,
                    extra_holidays: vec![HolidayConfig {
                        date: NaiveDate::from_ymd_opt(2027, 2, 12).unwrap(),
                        name: "x".into(),
                        name_en: None,
                    }],
                    makeup_working_days: vec![NaiveDate::from_ymd_opt(2027, 2, 20).unwrap()],
                    ..CalendarConfig::default()
                })
                .unwrap()
            ),
            Just(
                WorkingCalendar::from_config(&CalendarConfig {
                    periods: vec![
                        PeriodConfig::new("00:00", "00:01"),
                        PeriodConfig::new("08:00", "12:00"),
                        PeriodConfig::new("12:00", "24:00"),
                    ],
                    ..CalendarConfig::default()
                })
                .unwrap()
            ),
        ]
    }

    fn minutes() -> impl Strategy<Value = i64> {
        prop_oneof![0i64..2_000, 0i64..300_000, Just(480), Just(240)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn calendar_prop_add_then_between(c in calendars(), start in instant(), m in minutes()) {
            let end = c.add_working_minutes(start, m);
            prop_assert_eq!(c.working_minutes_between(start, end), m);
        }

        #[test]
        fn calendar_prop_add_monotonic_in_minutes(
            c in calendars(), start in instant(), m1 in minutes(), m2 in minutes()
        ) {
            let (lo, hi) = if m1 <= m2 { (m1, m2) } else { (m2, m1) };
            prop_assert!(c.add_working_minutes(start, lo) <= c.add_working_minutes(start, hi));
            if lo < hi {
                prop_assert!(c.add_working_minutes(start, lo) < c.add_working_minutes(start, hi));
            }
        }

        #[test]
        fn calendar_prop_add_monotonic_in_start(
            c in calendars(), s1 in instant(), s2 in instant(), m in minutes()
        ) {
            let (lo, hi) = if s1 <= s2 { (s1, s2) } else { (s2, s1) };
            prop_assert!(c.add_working_minutes(lo, m) <= c.add_working_minutes(hi, m));
        }

        #[test]
        fn calendar_prop_add_lands_in_office_time(
            c in calendars(), start in instant(), m in 1i64..300_000
        ) {
            let end = c.add_working_minutes(start, m);
            let local = end.with_timezone(&VIETNAM_OFFSET).naive_local();
            let since = local.time() - NaiveTime::MIN;
            let day = local.date();
            // Inside (start, end] of a period of `day`, or exactly at the end
            // of a period ending at 24:00 on the previous day.
            let inside = |date: NaiveDate, t: TimeDelta| {
                let table = c.year_table(date.year());
                c.periods_on(date, &table).iter().any(|p| {
                    t > TimeDelta::minutes(i64::from(p.start))
                        && t <= TimeDelta::minutes(i64::from(p.end))
                })
            };
            let ok = inside(day, since)
                || (since == TimeDelta::zero()
                    && inside(day.pred_opt().unwrap(), TimeDelta::days(1)));
            prop_assert!(ok, "{} lands outside office time", local);
            prop_assert!(end > start);
        }

        #[test]
        fn calendar_prop_between_additive(
            c in calendars(), a in instant(), b in instant(), x in instant()
        ) {
            let mut v = [a, b, x];
            v.sort();
            let [a, b, x] = v;
            prop_assert_eq!(
                c.working_minutes_between(a, x),
                c.working_minutes_between(a, b) + c.working_minutes_between(b, x)
            );
        }

        #[test]
        fn calendar_prop_between_matches_minute_walk(
            c in calendars(), a in minute_instant(), len in 0i64..20_000
        ) {
            // Brute force: count the whole minutes [t, t+1) inside office time.
            let b = a + TimeDelta::minutes(len);
            let mut count = 0;
            let mut t = a;
            while t < b {
                let local = t.with_timezone(&VIETNAM_OFFSET).naive_local();
                let table = c.year_table(local.year());
                let mod_ = minute_of_day(local);
                if c.periods_on(local.date(), &table).iter().any(|p| mod_ >= p.start && mod_ < p.end) {
                    count += 1;
                }
                t += TimeDelta::minutes(1);
            }
            prop_assert_eq!(c.working_minutes_between(a, b), count);
        }

        #[test]
        fn calendar_prop_lunar_round_trip(days in 0i64..(300 * 366)) {
            let day = d(1900, 1, 1) + TimeDelta::days(days);
            let l = solar_to_lunar(day);
            prop_assert_eq!(lunar_to_solar(l.year, l.month, l.day, l.leap), Some(day));
        }
    }
}
