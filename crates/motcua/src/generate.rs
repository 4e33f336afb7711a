//! `motcua generate --dossiers N [--seed S]`: fills a database (either
//! backend) with synthetic dossiers for load tests and query plans.
//!
//! Distribution: procedures Zipf-like (a few procedures take most
//! dossiers, as birth and residence registrations do); agencies of the
//! procedure's kind (a People's Committee is created for every commune of
//! the provinces that already have a demo agency, so commune procedures
//! spread over real communes); submission times over the 365 days before
//! today, mostly weekdays in office hours; statuses by age — old dossiers
//! are mostly returned or completed (about 8% late), a few refused,
//! withdrawn or stopped, some still open (and overdue), recent ones open at
//! every step.
//!
//! What generated data is and is not:
//! - each dossier has a valid code (gap-free per agency per day, counters
//!   in `dossier_seq` moved past them), a coherent lifecycle (steps planned
//!   on the working-day calendar, holder, due dates) and exactly ONE audit
//!   record (`dossier.generate`, linked into the chain, so `audit verify`
//!   passes) — not the five to eight records a real dossier collects;
//! - no attachments (no document rows, no files), no outbox events;
//! - applicants are synthetic names and national id numbers; one dossier
//!   in a thousand belongs to the demo account `citizen`, if it exists.
//!
//! Rows are written in transactions of `batch` dossiers (with their audit
//! records and counters); the next batch is made on another thread while
//! the database writes the previous one. Generate while no node takes
//! submissions: the generator continues the audit chain from its last
//! record, and a batch that no longer continues it (someone appended
//! meanwhile) is refused by the store and stops the run.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use indicatif::{ProgressBar, ProgressStyle};
use motcua_domain::audit::{AuditEntry, AuditRecord, link};
use motcua_domain::calendar::{Timeliness, WorkingCalendar};
use motcua_domain::dossier::{
    Channel, Evaluation, Lifecycle, Outcome, SatisfactionLevel, Status, StepProgress, plan_steps,
};
use motcua_domain::units::{Agency, AgencyKind, UnitLevel};
use motcua_domain::{AgencyCode, DossierCode, UnitCode};
use motcua_store::{Cell, Store, StoreError, StoredProcedure, TableRows};

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub dossiers: u64,
    pub seed: u64,
    /// Dossiers per transaction.
    pub batch: usize,
    pub progress: bool,
    /// Build the secondary indexes and search terms after the load (much
    /// faster for large loads; see `Store::bulk_defer_indexes`).
    pub defer_indexes: bool,
}

/// From this many dossiers on, `motcua generate` builds indexes after the load.
pub const DEFER_INDEXES_FROM: u64 = 100_000;

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub dossiers: u64,
    pub audit_records: u64,
    pub agencies_created: usize,
    pub seconds: f64,
}

impl Report {
    pub fn rows_per_second(&self) -> f64 {
        (self.dossiers + self.audit_records) as f64 / self.seconds.max(1e-9)
    }
    pub fn dossiers_per_second(&self) -> f64 {
        self.dossiers as f64 / self.seconds.max(1e-9)
    }
}

/// SplitMix64: small, fast, reproducible for a given seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// Index into cumulative weights.
fn weighted(rng: &mut Rng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(1.0);
    let x = rng.unit() * total;
    cumulative
        .partition_point(|c| *c < x)
        .min(cumulative.len() - 1)
}

const FAMILY: &[&str] = &[
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý",
];
const MIDDLE: &[&str] = &[
    "Văn", "Thị", "Minh", "Thu", "Quang", "Ngọc", "Đức", "Thanh", "Hữu", "Xuân", "Anh", "Bảo",
];
const GIVEN: &[&str] = &[
    "An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hòa", "Hùng", "Hương", "Khang",
    "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phong", "Phúc", "Quân", "Sơn", "Tâm", "Thảo",
    "Trang", "Trung", "Tuấn", "Uyên", "Việt", "Yến",
];

/// A dossier decided but not yet numbered into ids and the chain.
struct Spec {
    code: String,
    procedure: usize,
    agency: usize,
    channel: Channel,
    user_id: Option<i64>,
    name: String,
    national_id: String,
    submitted_at: DateTime<Utc>,
    lifecycle: Lifecycle,
    version: i64,
    updated_at: DateTime<Utc>,
}

struct World {
    procedures: Vec<StoredProcedure>,
    /// Per procedure: the agencies that handle it.
    handlers: Vec<Vec<usize>>,
    agencies: Vec<Agency>,
    proc_cumulative: Vec<f64>,
    calendar: WorkingCalendar,
    citizen: Option<i64>,
    /// Planned steps per (procedure, acceptance hour): planning on the
    /// calendar is the slow part, and acceptance happens on the hour here.
    plans: HashMap<(usize, i64), Vec<StepProgress>>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Makes sure every commune of a province that has a demo agency has its
/// People's Committee; returns how many agencies were created.
async fn ensure_commune_agencies(store: &dyn Store) -> anyhow::Result<usize> {
    let agencies = store.agencies().await?;
    let provinces: Vec<String> = agencies
        .iter()
        .filter_map(|a| {
            let code = a.unit_code.as_str();
            if code.len() == 2 {
                Some(code.to_string())
            } else {
                None
            }
        })
        .collect();
    let units = store.bulk_export("units", None, 100_000).await?;
    let mut created = 0;
    for u in units {
        let (Some(code), Some(name), Some(level)) = (u[0].text(), u[1].text(), u[3].text()) else {
            continue;
        };
        let parent = u[4].text().unwrap_or("");
        if level != UnitLevel::Commune.as_str() || !provinces.iter().any(|p| p == parent) {
            continue;
        }
        let unit = UnitCode::parse(code)?;
        if store
            .agency_for(AgencyKind::CommunePeoplesCommittee, &unit)
            .await?
            .is_some()
        {
            continue;
        }
        let agency = Agency {
            code: AgencyCode::parse(&format!("UB{code}"))?,
            name_vi: format!("Ủy ban nhân dân {name}"),
            name_en: format!("People's Committee of {name}"),
            kind: AgencyKind::CommunePeoplesCommittee,
            unit_code: unit,
            address: format!("Bộ phận Một cửa, {name}"),
        };
        store
            .put_agency(
                &agency,
                crate::system_audit(
                    "agency.put",
                    &serde_json::json!({ "code": agency.code.as_str(), "generated": true }),
                ),
            )
            .await?;
        created += 1;
    }
    Ok(created)
}

impl World {
    async fn load(store: &dyn Store, seed: u64) -> anyhow::Result<Self> {
        let agencies = store.agencies().await?;
        let mut procedures = store.current_procedures().await?;
        procedures.sort_by(|a, b| a.definition.code.cmp(&b.definition.code));
        let mut handlers = Vec::new();
        let mut kept = Vec::new();
        for p in procedures {
            let hs: Vec<usize> = agencies
                .iter()
                .enumerate()
                .filter(|(_, a)| a.kind == p.definition.agency_kind)
                .map(|(i, _)| i)
                .collect();
            if !hs.is_empty() && !p.definition.workflow.is_empty() {
                handlers.push(hs);
                kept.push(p);
            }
        }
        if kept.is_empty() {
            bail!(
                "no enabled procedure has an agency to handle it: start once with `serve --demo` \
                 or import procedures and create agencies first"
            );
        }
        // Zipf-like popularity (s = 1.1) over a seed-dependent ranking.
        let mut order: Vec<usize> = (0..kept.len()).collect();
        let mut rng = Rng(seed ^ 0x5EED);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut weight = vec![0.0; kept.len()];
        for (rank, &p) in order.iter().enumerate() {
            weight[p] = 1.0 / ((rank + 1) as f64).powf(1.1);
        }
        let mut acc = 0.0;
        let proc_cumulative = weight
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        let citizen = store.user_by_name("citizen").await?.map(|u| u.id);
        Ok(Self {
            procedures: kept,
            handlers,
            agencies,
            proc_cumulative,
            calendar: WorkingCalendar::default(),
            citizen,
            plans: HashMap::new(),
        })
    }

    fn plan(&mut self, procedure: usize, accepted_at: DateTime<Utc>) -> Vec<StepProgress> {
        let key = (procedure, accepted_at.timestamp() / 3600);
        let def = &self.procedures[procedure].definition;
        let cal = &self.calendar;
        self.plans
            .entry(key)
            .or_insert_with(|| {
                let minutes = def
                    .processing_time
                    .working_minutes(cal.hours_per_day())
                    .max(60);
                plan_steps(&def.workflow, accepted_at, minutes, cal)
            })
            .clone()
    }
}

/// A submission instant on `day` (Vietnam time): office hours mostly.
fn instant_on(rng: &mut Rng, day: NaiveDate) -> DateTime<Utc> {
    let minute_of_day = if rng.chance(0.85) {
        8 * 60 + rng.below(9 * 60)
    } else {
        rng.below(24 * 60)
    };
    let local =
        day.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::minutes(minute_of_day as i64);
    Utc.from_utc_datetime(&(local - Duration::hours(7))) + Duration::seconds(rng.below(60) as i64)
}

/// Decides the state of a dossier submitted at `submitted` as seen at `now`.
fn lifecycle(
    world: &mut World,
    rng: &mut Rng,
    procedure: usize,
    submitted: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Lifecycle, i64, DateTime<Utc>) {
    let mut lc = Lifecycle::new();
    let mut version = 1;
    // Refused at reception, or withdrawn before reception.
    let r = rng.unit();
    if r < 0.04 {
        lc.status = Status::NotAccepted;
        lc.last_note = Some("Hồ sơ chưa đầy đủ thành phần theo quy định".into());
        return (lc, 2, submitted + Duration::hours(4));
    }
    if r < 0.05 {
        lc.status = Status::Withdrawn;
        lc.last_note = Some("Công dân rút hồ sơ".into());
        return (lc, 2, submitted + Duration::hours(20));
    }
    let accepted_at = submitted + Duration::minutes(30 + rng.below(60 * 20) as i64);
    if accepted_at >= now {
        return (lc, 1, submitted);
    }
    let accepted_hour =
        DateTime::from_timestamp(accepted_at.timestamp() / 3600 * 3600, 0).unwrap_or(accepted_at);
    let mut steps = world.plan(procedure, accepted_hour);
    let due = steps.last().map(|s| s.due_at).unwrap_or(accepted_at);
    lc.accepted_at = Some(accepted_at);
    lc.due_at = Some(due);
    lc.appointment_at = Some(due);
    version += 1;
    // Most finish on time; about 8% late; 2% are stuck open long after.
    let span = (due - accepted_at).num_seconds().max(3600);
    let late = rng.chance(0.08);
    let stuck = rng.chance(0.02);
    let finish_fraction = if late {
        1.05 + rng.unit() * 0.6
    } else {
        0.3 + rng.unit() * 0.65
    };
    let finished_at = accepted_at + Duration::seconds((span as f64 * finish_fraction) as i64);
    let n = steps.len();
    // The step reached by `at`.
    let step_at = |at: DateTime<Utc>| -> usize {
        let f = (at - accepted_at).num_seconds() as f64 / (span as f64 * finish_fraction);
        ((f * n as f64) as usize).min(n - 1)
    };
    if finished_at >= now || stuck {
        // Still open.
        let at = if stuck {
            step_at(finished_at)
        } else {
            step_at(now)
        };
        for (i, s) in steps.iter_mut().enumerate().take(at) {
            step_done(
                s,
                accepted_at + Duration::seconds(span * (i as i64 + 1) / (n as i64 + 1)),
            );
            version += 1;
        }
        lc.step = at;
        lc.status = if at == 0 {
            Status::Accepted
        } else {
            Status::Processing
        };
        if let Some(s) = steps.get_mut(at) {
            s.started_at = Some(accepted_at);
        }
        if rng.chance(0.06) {
            lc.paused_from = Some(lc.status);
            lc.paused_at = Some(now - Duration::days(rng.below(5) as i64 + 1));
            lc.status = Status::SupplementRequested;
            lc.last_note = Some("Đề nghị bổ sung bản sao giấy tờ".into());
            version += 1;
        } else if rng.chance(0.01) {
            lc.status = Status::Stopped;
            lc.last_note = Some("Dừng xử lý theo đề nghị của cơ quan có thẩm quyền".into());
            version += 1;
        }
        lc.steps = steps;
        let updated = if stuck {
            finished_at.min(now)
        } else {
            now - Duration::hours(1)
        };
        return (lc, version, updated.max(submitted));
    }
    for (i, s) in steps.iter_mut().enumerate() {
        step_done(
            s,
            accepted_at
                + Duration::seconds(
                    (span as f64 * finish_fraction) as i64 * (i as i64 + 1) / n as i64,
                ),
        );
        version += 1;
    }
    lc.step = n - 1;
    lc.steps = steps;
    lc.status = Status::Completed;
    lc.outcome = Some(if rng.chance(0.96) {
        Outcome::Approved
    } else {
        Outcome::Rejected
    });
    lc.completed_at = Some(finished_at);
    lc.timeliness = Some(if finished_at <= due {
        if rng.chance(0.3) {
            Timeliness::Early
        } else {
            Timeliness::OnTime
        }
    } else {
        Timeliness::Late
    });
    let updated = return_result(&mut lc, rng, &mut version, finished_at, now);
    (lc, version, updated)
}

/// A completed dossier's result returned (most of the time), and sometimes
/// rated; returns when it was last changed.
fn return_result(
    lc: &mut Lifecycle,
    rng: &mut Rng,
    version: &mut i64,
    finished_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let returned_at = finished_at + Duration::hours(2 + rng.below(72) as i64);
    if returned_at >= now || !rng.chance(0.95) {
        return finished_at;
    }
    lc.status = Status::ResultReturned;
    lc.returned_at = Some(returned_at);
    *version += 1;
    if rng.chance(0.3) {
        let level = match rng.below(10) {
            0 => SatisfactionLevel::Dissatisfied,
            1..=5 => SatisfactionLevel::Satisfied,
            _ => SatisfactionLevel::VerySatisfied,
        };
        lc.evaluation = Some(Evaluation {
            level,
            scores: Default::default(),
            at: returned_at + Duration::hours(1),
        });
        *version += 1;
    }
    returned_at
}

/// A workflow step finished by the generator at `t`.
fn step_done(s: &mut StepProgress, t: DateTime<Utc>) {
    s.started_at = Some(t);
    s.finished_at = Some(t);
    s.timeliness = Some(if t <= s.due_at {
        Timeliness::OnTime
    } else {
        Timeliness::Late
    });
    s.handled_by = Some("generator".into());
}

/// Generates `opts.dossiers` dossiers into `store`.
pub async fn generate(store: &dyn Store, opts: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let agencies_created = ensure_commune_agencies(store).await?;
    let world = World::load(store, opts.seed).await?;
    let rng = Rng(opts.seed);
    let now = Utc::now();
    let today = motcua_store::vietnam_day(now);
    let days: Vec<NaiveDate> = (1..=365).map(|i| today - Duration::days(i)).collect();
    // Existing counters: generated codes go on after them.
    let mut counters: HashMap<(usize, NaiveDate), u32> = HashMap::new();
    let index: HashMap<&str, usize> = world
        .agencies
        .iter()
        .enumerate()
        .map(|(i, a)| (a.code.as_str(), i))
        .collect();
    let mut after: Option<Vec<Cell>> = None;
    loop {
        let rows = store
            .bulk_export("dossier_seq", after.as_deref(), 50_000)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last[..2].to_vec());
        for r in &rows {
            if let (Some(a), Some(d), Some(n)) = (r[0].text(), r[1].text(), r[2].int())
                && let (Some(&i), Ok(day)) =
                    (index.get(a), NaiveDate::parse_from_str(d, "%Y-%m-%d"))
            {
                counters.insert((i, day), n as u32);
            }
        }
    }
    let bar = if opts.progress {
        ProgressBar::new(opts.dossiers)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "dossiers [{bar:40}] {pos:>10}/{len:<10} {per_sec:>14} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let next_id = store
        .bulk_last("dossiers")
        .await?
        .and_then(|r| r[0].int())
        .unwrap_or(0)
        + 1;
    let prev = store
        .bulk_last("audit")
        .await?
        .and_then(|r| Some((r[0].int()?, r[12].text()?.to_string())));
    let generator = Gen {
        world,
        rng,
        counters,
        days,
        now,
        seed: opts.seed,
        next_id,
        prev,
    };
    // A large load builds the secondary indexes and the search terms once,
    // in key order, at the end, instead of inserting into them at random
    // places row by row (an interrupted run is finished by `migrate`).
    let deferred = opts.defer_indexes && store.bulk_defer_indexes().await? > 0;
    let loaded = load(store, opts, generator, &bar).await;
    bar.finish();
    if deferred {
        let t = Instant::now();
        if opts.progress {
            eprintln!("building indexes and search terms …");
        }
        store.bulk_restore_indexes().await?;
        if opts.progress {
            eprintln!("indexes built in {:.0} s", t.elapsed().as_secs_f64());
        }
    }
    let written = loaded?;
    Ok(Report {
        dossiers: written,
        audit_records: written,
        agencies_created,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes the generated batches; returns how many dossiers were written.
async fn load(
    store: &dyn Store,
    opts: &Options,
    generator: Gen,
    bar: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut generator = Some(generator);
    // Two stages at once: the next batch is made on a blocking thread
    // while the database writes the previous one.
    let mut remaining = opts.dossiers;
    let mut written = 0u64;
    type Write<'a> =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, StoreError>> + Send + 'a>>;
    let mut pending: Option<(Write<'_>, u64)> = None;
    loop {
        let n = remaining.min(opts.batch.max(1) as u64);
        let making = match generator.take() {
            Some(mut g) if n > 0 => Some(tokio::task::spawn_blocking(move || {
                let parts = g.batch(n as usize);
                (g, parts)
            })),
            _ => None,
        };
        let (wrote, made) = tokio::join!(
            async {
                match pending.take() {
                    Some((w, k)) => w.await.map(|_| k),
                    None => Ok(0),
                }
            },
            async {
                match making {
                    Some(h) => Some(h.await),
                    None => None,
                }
            }
        );
        let k = wrote.context(
            "writing a batch of generated dossiers (is a node writing to this database? \
             generate while no node takes submissions)",
        )?;
        written += k;
        bar.inc(k);
        let Some(made) = made else { break };
        let (g, parts) = made.context("generator thread")?;
        generator = Some(g);
        let parts = parts?;
        pending = Some((Box::pin(async move { store.bulk_import(&parts).await }), n));
        remaining -= n;
    }
    Ok(written)
}

/// The generator's state between batches.
struct Gen {
    world: World,
    rng: Rng,
    counters: HashMap<(usize, NaiveDate), u32>,
    days: Vec<NaiveDate>,
    now: DateTime<Utc>,
    seed: u64,
    next_id: i64,
    prev: Option<(i64, String)>,
}

impl Gen {
    /// The next `n` dossiers to write, and the day counters they moved.
    fn specs(&mut self, n: usize) -> (Vec<Spec>, HashMap<(usize, NaiveDate), u32>) {
        let mut specs = Vec::with_capacity(n);
        let mut touched: HashMap<(usize, NaiveDate), u32> = HashMap::new();
        while specs.len() < n {
            let procedure = weighted(&mut self.rng, &self.world.proc_cumulative);
            let hs = &self.world.handlers[procedure];
            // Some agencies are busier: the first three take an extra share.
            let agency = if hs.len() > 1 && self.rng.chance(0.3) {
                hs[self.rng.below(hs.len().min(3) as u64) as usize]
            } else {
                *self.rng.pick(hs)
            };
            let mut day = *self.rng.pick(&self.days);
            if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && self.rng.chance(0.8) {
                day -= Duration::days(2);
            }
            let counter = self.counters.entry((agency, day)).or_insert(0);
            if *counter >= 9999 {
                continue;
            }
            *counter += 1;
            touched.insert((agency, day), *counter);
            let code = DossierCode::new(&self.world.agencies[agency].code, day, *counter);
            let submitted_at = instant_on(&mut self.rng, day);
            let (lc, version, updated_at) = lifecycle(
                &mut self.world,
                &mut self.rng,
                procedure,
                submitted_at,
                self.now,
            );
            let channel = match self.rng.below(20) {
                0..=11 => Channel::Online,
                12..=18 => Channel::InPerson,
                _ => Channel::Post,
            };
            let name = format!(
                "{} {} {}",
                self.rng.pick(FAMILY),
                self.rng.pick(MIDDLE),
                self.rng.pick(GIVEN)
            );
            let national_id = format!(
                "{:03}{}{:02}{:06}",
                1 + self.rng.below(96),
                self.rng.below(4),
                self.rng.below(100),
                self.rng.below(1_000_000)
            );
            let user_id = if self.rng.chance(0.001) {
                self.world.citizen
            } else {
                None
            };
            specs.push(Spec {
                code: code.as_str().to_string(),
                procedure,
                agency,
                channel,
                user_id,
                name,
                national_id,
                submitted_at,
                lifecycle: lc,
                version,
                updated_at,
            });
        }
        (specs, touched)
    }

    /// The rows of the next `n` dossiers: counters, dossiers, audit.
    fn batch(&mut self, n: usize) -> anyhow::Result<Vec<TableRows>> {
        let (specs, touched) = self.specs(n);
        let seq_rows: Vec<Vec<Cell>> = touched
            .iter()
            .map(|((a, d), n)| {
                vec![
                    Cell::Text(self.world.agencies[*a].code.as_str().to_string()),
                    Cell::Text(d.format("%Y-%m-%d").to_string()),
                    Cell::Int(i64::from(*n)),
                ]
            })
            .collect();
        let mut dossier_rows = Vec::with_capacity(n);
        let mut audit_rows = Vec::with_capacity(n);
        for (i, s) in specs.iter().enumerate() {
            let p = &self.world.procedures[s.procedure].definition;
            let a = &self.world.agencies[s.agency];
            let fields = serde_json::json!({ "generated": self.seed }).to_string();
            let lifecycle_json = serde_json::to_string(&s.lifecycle).context("lifecycle JSON")?;
            dossier_rows.push(vec![
                Cell::Int(self.next_id + i as i64),
                Cell::Text(s.code.clone()),
                Cell::Text(p.code.clone()),
                Cell::Int(i64::from(p.version)),
                Cell::Text(a.code.as_str().to_string()),
                Cell::Text(a.unit_code.as_str().to_string()),
                Cell::Text(s.channel.as_str().to_string()),
                Cell::opt_int(s.user_id),
                Cell::Text(s.name.clone()),
                Cell::Text(s.national_id.clone()),
                Cell::Null,
                Cell::Null,
                Cell::Text(fields),
                Cell::Int(ms(s.submitted_at)),
                Cell::Text(s.lifecycle.status.as_str().to_string()),
                Cell::opt_text(s.lifecycle.holder().map(|r| r.as_str())),
                Cell::opt_int(s.lifecycle.due_at.map(ms)),
                Cell::opt_int(s.lifecycle.appointment_at.map(ms)),
                Cell::Text(lifecycle_json),
                Cell::Int(s.version),
                Cell::Int(ms(s.updated_at)),
                Cell::Text(format!("{:010}", self.rng.below(10_000_000_000))),
            ]);
            let mut entry = AuditEntry::new(
                s.updated_at,
                "generator",
                "system",
                "dossier.generate",
                &serde_json::json!({ "code": s.code, "seed": self.seed }),
            );
            entry.agency_code = Some(a.code.as_str().to_string());
            entry.dossier_code = Some(s.code.clone());
            entry.to_status = Some(s.lifecycle.status.as_str().to_string());
            let rec: AuditRecord = link(self.prev.as_ref().map(|(s, h)| (*s, h.as_str())), entry);
            self.prev = Some((rec.seq, rec.hash.clone()));
            if let Some(row) = dossier_rows.last_mut() {
                row.push(Cell::Int(rec.seq));
            }
            let e = &rec.entry;
            audit_rows.push(vec![
                Cell::Int(rec.seq),
                Cell::Int(e.at.timestamp_micros()),
                Cell::Text(e.actor.clone()),
                Cell::Text(e.actor_role.clone()),
                Cell::opt_text(e.agency_code.clone()),
                Cell::Text(e.action.clone()),
                Cell::opt_text(e.dossier_code.clone()),
                Cell::Null,
                Cell::opt_text(e.to_status.clone()),
                Cell::Null,
                Cell::Text(e.payload_hash.clone()),
                Cell::Text(rec.prev_hash.clone()),
                Cell::Text(rec.hash.clone()),
            ]);
        }
        let parts = vec![
            TableRows {
                table: "dossier_seq",
                rows: seq_rows,
            },
            TableRows {
                table: "dossiers",
                rows: dossier_rows,
            },
            TableRows {
                table: "audit",
                rows: audit_rows,
            },
        ];
        self.next_id += n as i64;
        Ok(parts)
    }
}
