//! What every command works with: the store, the object store, the clock,
//! the calendars in force, the units and the catalogue (read once and
//! kept), the installation's key, and who is told when a dossier changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use motcua_domain::calendar::{CalendarConfig, CalendarOverrides, WorkingCalendar};
use motcua_domain::procedure::Procedure;
use motcua_domain::units::AdminUnit;
use motcua_domain::{AgencyCode, UnitCode};
use motcua_store::{ObjectStore, Store};
use tokio::sync::RwLock;

use crate::crypto::ServerKey;
use crate::error::{CommandError, CommandResult};

/// Current procedures, each with its folded search text.
pub type Catalogue = Arc<Vec<(Procedure, String)>>;

/// The setting holding each province's calendar overrides (a JSON object
/// from province code to [`CalendarOverrides`]).
pub const PROVINCE_OVERRIDES_META_KEY: &str = "calendar.province_overrides";

/// Told after a command wrote a dossier (for counters and caches of the
/// node that ran it).
pub trait Observer: Send + Sync {
    /// A dossier of `agency` was written; `submitted`: a new one.
    fn dossier_written(&self, agency: &AgencyCode, submitted: bool);
}

struct Nobody;

impl Observer for Nobody {
    fn dossier_written(&self, _: &AgencyCode, _: bool) {}
}

/// The context of every command (cheap to clone).
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub objects: Arc<dyn ObjectStore>,
    /// The `[calendar]` configuration; administrators' overrides (stored
    /// in the database) are added to it by [`App::reload_calendar`].
    pub calendar_base: Arc<CalendarConfig>,
    /// The calendars in force: the national one (base plus the overrides
    /// stored before calendars were per province) and each province's
    /// (the national one plus the province's own), swapped on reload.
    calendar: Arc<std::sync::RwLock<Calendars>>,
    /// Every administrative unit, read once.
    units: Arc<tokio::sync::OnceCell<Arc<BTreeMap<String, AdminUnit>>>>,
    pub clock: Arc<Clock>,
    /// The catalogue with folded search text, refreshed when it changes.
    catalogue: Arc<RwLock<Option<Catalogue>>>,
    /// The installation's secret key, read from the database once.
    server_key: Arc<tokio::sync::OnceCell<ServerKey>>,
    observer: Arc<dyn Observer>,
}

/// The calendars in force.
#[derive(Debug)]
struct Calendars {
    national: Arc<WorkingCalendar>,
    provinces: BTreeMap<String, Arc<WorkingCalendar>>,
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        objects: Arc<dyn ObjectStore>,
        calendar: WorkingCalendar,
        calendar_base: CalendarConfig,
    ) -> Self {
        Self {
            store,
            objects,
            calendar_base: Arc::new(calendar_base),
            calendar: Arc::new(std::sync::RwLock::new(Calendars {
                national: Arc::new(calendar),
                provinces: BTreeMap::new(),
            })),
            units: Arc::new(tokio::sync::OnceCell::new()),
            clock: Arc::new(Clock::default()),
            catalogue: Arc::new(RwLock::new(None)),
            server_key: Arc::new(tokio::sync::OnceCell::new()),
            observer: Arc::new(Nobody),
        }
    }

    /// The same context, telling `observer` of every dossier written.
    pub fn observed_by(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Tells the observer that a dossier of `agency` was written.
    pub(crate) fn dossier_written(&self, agency: &AgencyCode, submitted: bool) {
        self.observer.dossier_written(agency, submitted);
    }

    /// The installation's secret key (see [`crate::crypto`]).
    pub async fn server_key(&self) -> CommandResult<&ServerKey> {
        self.server_key
            .get_or_try_init(|| ServerKey::load(self))
            .await
    }

    /// Current procedures with their folded names for search. Cached; call
    /// [`App::invalidate_catalogue`] after importing procedures.
    pub async fn catalogue(&self) -> CommandResult<Catalogue> {
        if let Some(c) = self.catalogue.read().await.as_ref() {
            return Ok(c.clone());
        }
        let procs = self.store.current_procedures().await?;
        let list: Vec<(Procedure, String)> = procs
            .into_iter()
            .map(|p| {
                let d = p.definition;
                let folded = motcua_domain::text::fold(&format!(
                    "{} {} {} {} {}",
                    d.code, d.name.vi, d.name.en, d.sector_name.vi, d.sector_name.en
                ));
                (d, folded)
            })
            .collect();
        let list = Arc::new(list);
        *self.catalogue.write().await = Some(list.clone());
        Ok(list)
    }

    pub async fn invalidate_catalogue(&self) {
        *self.catalogue.write().await = None;
    }

    /// The national working calendar in force now (the one of a
    /// province without its own additions).
    pub fn calendar(&self) -> Arc<WorkingCalendar> {
        self.calendar
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .national
            .clone()
    }

    /// The working calendar of `province` (its own holidays and make-up
    /// days added to the national ones).
    pub fn calendar_of(&self, province: Option<&UnitCode>) -> Arc<WorkingCalendar> {
        let c = self.calendar.read().unwrap_or_else(|e| e.into_inner());
        province
            .and_then(|p| c.provinces.get(p.as_str()))
            .unwrap_or(&c.national)
            .clone()
    }

    /// The working calendar that counts the days of a dossier filed in
    /// `unit`.
    pub async fn calendar_for(&self, unit: &UnitCode) -> CommandResult<Arc<WorkingCalendar>> {
        let province = self.province_of(unit).await?;
        Ok(self.calendar_of(province.as_ref()))
    }

    /// The working calendar of the province of `agency` (the national one
    /// if the agency is unknown).
    pub async fn agency_calendar(
        &self,
        agency: &AgencyCode,
    ) -> CommandResult<Arc<WorkingCalendar>> {
        match self.store.agency(agency).await? {
            Some(a) => self.calendar_for(&a.unit_code).await,
            None => Ok(self.calendar()),
        }
    }

    /// Every unit by code, read from the store once.
    pub async fn unit_map(&self) -> CommandResult<Arc<BTreeMap<String, AdminUnit>>> {
        self.units
            .get_or_try_init(|| async {
                let all = self.store.units().await?;
                Ok::<_, CommandError>(Arc::new(
                    all.into_iter()
                        .map(|u| (u.code.as_str().to_string(), u))
                        .collect(),
                ))
            })
            .await
            .cloned()
    }

    /// The province of a unit (itself for a province).
    pub async fn province_of(&self, unit: &UnitCode) -> CommandResult<Option<UnitCode>> {
        if unit.is_province() {
            return Ok(Some(unit.clone()));
        }
        Ok(self
            .unit_map()
            .await?
            .get(unit.as_str())
            .and_then(|u| u.parent_code.clone()))
    }

    /// The calendar overrides stored before calendars were per province:
    /// they apply everywhere.
    pub async fn calendar_overrides(&self) -> CommandResult<CalendarOverrides> {
        match self.store.meta(CalendarOverrides::META_KEY).await? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| CommandError::internal(format!("calendar overrides: {e}"))),
            None => Ok(CalendarOverrides::default()),
        }
    }

    /// Each province administrators' overrides, by province code, and the
    /// stored text (for a compare-and-set).
    pub async fn province_calendar_overrides(
        &self,
    ) -> CommandResult<(BTreeMap<String, CalendarOverrides>, Option<String>)> {
        match self.store.meta(PROVINCE_OVERRIDES_META_KEY).await? {
            Some(json) => Ok((
                serde_json::from_str(&json)
                    .map_err(|e| CommandError::internal(format!("calendar overrides: {e}")))?,
                Some(json),
            )),
            None => Ok((BTreeMap::new(), None)),
        }
    }

    /// The configuration of `province`'s calendar: the base, the national
    /// overrides, then the province's own.
    pub fn province_calendar_config(
        &self,
        national: &CalendarOverrides,
        own: Option<&CalendarOverrides>,
    ) -> CalendarConfig {
        let cfg = national.merge_into(&self.calendar_base);
        match own {
            Some(o) => o.merge_into(&cfg),
            None => cfg,
        }
    }

    /// Reads the overrides, adds them to the base configuration and puts
    /// the resulting calendars in force. On error the current ones stay.
    pub async fn reload_calendar(&self) -> CommandResult<()> {
        let national = self.calendar_overrides().await?;
        let (by_province, _) = self.province_calendar_overrides().await?;
        let cal = WorkingCalendar::from_config(&self.province_calendar_config(&national, None))
            .map_err(CommandError::internal)?;
        let mut provinces = BTreeMap::new();
        for (code, o) in &by_province {
            let c =
                WorkingCalendar::from_config(&self.province_calendar_config(&national, Some(o)))
                    .map_err(CommandError::internal)?;
            provinces.insert(code.clone(), Arc::new(c));
        }
        *self.calendar.write().unwrap_or_else(|e| e.into_inner()) = Calendars {
            national: Arc::new(cal),
            provinces,
        };
        Ok(())
    }
}

/// The time as the application sees it: the system clock, plus an offset
/// that only tests move (to let working days pass in a test).
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
            + chrono::Duration::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::Relaxed),
            )
    }

    /// Moves the application's time forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::Relaxed);
    }
}
