//! Holidays and make-up working days of the national and the
//! provincial calendars.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::Datelike;

use crate::admin::Admin;
use crate::admin::DoneQuery;
use crate::admin::flash_of;
use crate::kernel::access::{AdminPage, CheckedMultipart, ProvinceAdminPage};
use crate::kernel::error::ApiError;
use crate::kernel::page::Ctx;
use crate::kernel::page::PageResult;
use crate::state::AppState;

// ---------------------------------------------------------------------------
// Holidays
// ---------------------------------------------------------------------------

pub struct YearView {
    pub year: i32,
    /// (date, weekday, name)
    pub holidays: Vec<(String, String, String)>,
    /// (date, weekday)
    pub makeup: Vec<(String, String)>,
}

/// One administrator's override, listed with a button to remove it.
pub struct OverrideRow {
    /// `holiday`, `makeup` or `removed`.
    pub kind: &'static str,
    pub kind_label: String,
    /// `YYYY-MM-DD`, posted back to remove the entry.
    pub iso: String,
    pub date: String,
    pub weekday: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "admin/holidays.html")]
struct HolidaysPage<'a> {
    ctx: &'a Ctx,
    title: String,
    section: &'static str,
    flash: Option<String>,
    years: Vec<YearView>,
    hours_per_day: u32,
    can_edit: bool,
    overrides: Vec<OverrideRow>,
    /// What was typed into the forms, kept when they are shown again.
    form: BTreeMap<String, String>,
    errors: Vec<(String, String)>,
}

impl HolidaysPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn val(&self, field: &str) -> &str {
        self.form.get(field).map(String::as_str).unwrap_or("")
    }
}

/// `GET /quan-tri/ngay-nghi`: the holidays and make-up working days in
/// force this year and the next, and the administrators' overrides
/// (province admins change them here; others only see them).
pub async fn holidays(
    State(st): State<AppState>,
    ctx: Ctx,
    AdminPage(a): AdminPage,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let flash = flash_of(&ctx, &q);
    render_holidays(&st, &ctx, &a, flash, BTreeMap::new(), Vec::new()).await
}

async fn render_holidays(
    st: &AppState,
    ctx: &Ctx,
    a: &Admin,
    flash: Option<String>,
    form: BTreeMap<String, String>,
    errors: Vec<(String, String)>,
) -> PageResult {
    let cal = st.calendar_of(a.province.as_ref());
    let year = motcua_store::vietnam_day(st.clock.now()).year();
    let en = ctx.lang == crate::kernel::i18n::Lang::En;
    let wd =
        |d: chrono::NaiveDate| ctx.t(&format!("admin-wd-{}", d.weekday().number_from_monday()));
    let years = [year, year + 1]
        .into_iter()
        .map(|y| YearView {
            year: y,
            holidays: cal
                .holidays(y)
                .into_iter()
                .map(|h| {
                    (
                        h.date.format("%d/%m/%Y").to_string(),
                        wd(h.date),
                        if en { h.name_en } else { h.name_vi },
                    )
                })
                .collect(),
            makeup: cal
                .makeup_working_days(y)
                .into_iter()
                .map(|d| (d.format("%d/%m/%Y").to_string(), wd(d)))
                .collect(),
        })
        .collect();
    let (by_province, _) = st.province_calendar_overrides().await?;
    let o = a
        .province
        .as_ref()
        .and_then(|p| by_province.get(p.as_str()))
        .cloned()
        .unwrap_or_default();
    let row = |kind: &'static str, d: chrono::NaiveDate, name: String| OverrideRow {
        kind,
        kind_label: ctx.t(&format!("admin-cal-kind-{kind}")),
        iso: d.format("%Y-%m-%d").to_string(),
        date: d.format("%d/%m/%Y").to_string(),
        weekday: wd(d),
        name,
    };
    let mut overrides: Vec<OverrideRow> = Vec::new();
    for h in &o.extra_holidays {
        let name = match (&h.name_en, en) {
            (Some(n), true) if !n.trim().is_empty() => n.clone(),
            _ => h.name.clone(),
        };
        overrides.push(row("holiday", h.date, name));
    }
    for d in &o.makeup_working_days {
        overrides.push(row("makeup", *d, String::new()));
    }
    for d in &o.removed_holidays {
        overrides.push(row("removed", *d, String::new()));
    }
    overrides.sort_by(|x, y| x.iso.cmp(&y.iso));
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = HolidaysPage {
        ctx,
        title: ctx.t("admin-holidays"),
        section: "holidays",
        flash,
        years,
        hours_per_day: cal.hours_per_day(),
        can_edit: a.is_province(),
        overrides,
        form,
        errors,
    };
    Ok(ctx.render(status, page.render()))
}

/// A date typed as `YYYY-MM-DD` (the date input) or `DD/MM/YYYY`.
fn parse_day(raw: &str) -> Option<chrono::NaiveDate> {
    let raw = raw.trim();
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| chrono::NaiveDate::parse_from_str(raw, "%d/%m/%Y"))
        .ok()
}

/// What the holidays form typed beside the date.
struct DayEntry {
    name: String,
    name_en: String,
    kind: String,
}

/// Applies one change of the holidays form to the province's overrides `o`;
/// problems a person can correct go to `errors`.
fn apply_day_change(
    ctx: &Ctx,
    op: &str,
    date: Option<chrono::NaiveDate>,
    entry: DayEntry,
    o: &mut motcua_domain::calendar::CalendarOverrides,
    base: &motcua_domain::calendar::CalendarConfig,
    errors: &mut Vec<(String, String)>,
) -> Result<(), ApiError> {
    use motcua_domain::calendar::{CalendarConfig, HolidayConfig, WorkingCalendar};

    let date_key = format!("{op}-date");
    let dup = || (date_key.clone(), ctx.t("admin-cal-err-duplicate"));
    match (op, date) {
        ("holiday", Some(d)) => {
            if o.extra_holidays
                .iter()
                .chain(&base.extra_holidays)
                .any(|h| h.date == d)
            {
                errors.push(dup());
            }
            let name_en = Some(entry.name_en).filter(|n| !n.is_empty());
            o.extra_holidays.push(HolidayConfig {
                date: d,
                name: entry.name,
                name_en,
            });
            o.extra_holidays.sort_by_key(|h| h.date);
        }
        ("makeup", Some(d)) => {
            if o.makeup_working_days
                .iter()
                .chain(&base.makeup_working_days)
                .any(|x| *x == d)
            {
                errors.push(dup());
            }
            o.makeup_working_days.push(d);
            o.makeup_working_days.sort();
        }
        ("removed", Some(d)) => {
            if o.removed_holidays
                .iter()
                .chain(&base.removed_holidays)
                .any(|x| *x == d)
            {
                errors.push(dup());
            } else {
                // Only a day the built-in rules make a holiday.
                let builtin = WorkingCalendar::from_config(&CalendarConfig {
                    extra_holidays: Vec::new(),
                    makeup_working_days: Vec::new(),
                    removed_holidays: Vec::new(),
                    ..base.clone()
                })
                .map_err(ApiError::internal)?;
                if !builtin.holidays(d.year()).iter().any(|h| h.date == d) {
                    errors.push((date_key.clone(), ctx.t("admin-cal-err-not-builtin")));
                }
            }
            o.removed_holidays.push(d);
            o.removed_holidays.sort();
        }
        ("delete", Some(d)) => {
            let before = (
                o.extra_holidays.len(),
                o.makeup_working_days.len(),
                o.removed_holidays.len(),
            );
            match entry.kind.as_str() {
                "holiday" => o.extra_holidays.retain(|h| h.date != d),
                "makeup" => o.makeup_working_days.retain(|x| *x != d),
                "removed" => o.removed_holidays.retain(|x| *x != d),
                _ => return Err(ApiError::bad_request("kind")),
            }
            let after = (
                o.extra_holidays.len(),
                o.makeup_working_days.len(),
                o.removed_holidays.len(),
            );
            if before == after {
                return Err(ApiError::not_found());
            }
        }
        ("holiday" | "makeup" | "removed" | "delete", None) => {}
        _ => return Err(ApiError::bad_request("op")),
    }
    Ok(())
}

/// `POST /quan-tri/ngay-nghi` (province admins): `op` is `holiday` (add an
/// extra day off: `date`, `name`, `name_en`), `makeup` (add a make-up
/// working day: `date`), `removed` (a built-in holiday becomes an ordinary
/// day: `date`) or `delete` (remove the override `kind` on `date`). The
/// new overrides are written with their audit record and put in force on
/// this node at once; other nodes reload them within a minute.
pub async fn holidays_save(
    State(st): State<AppState>,
    ctx: Ctx,
    ProvinceAdminPage(a): ProvinceAdminPage,
    CheckedMultipart(form): CheckedMultipart,
) -> PageResult {
    use motcua_domain::calendar::WorkingCalendar;

    let field = |k: &str| form.get(k).unwrap_or("").trim().to_owned();
    let op = field("op");
    let mut typed = BTreeMap::new();
    for k in ["date", "name", "name_en"] {
        typed.insert(format!("{op}-{k}"), field(k));
    }
    let province = a.province.clone().ok_or_else(ApiError::forbidden)?;
    let national = st.calendar_overrides().await?;
    let (mut by_province, stored) = st.province_calendar_overrides().await?;
    let mut o = by_province
        .get(province.as_str())
        .cloned()
        .unwrap_or_default();
    let base_cfg = st.province_calendar_config(&national, None);
    let base = &base_cfg;
    let mut errors: Vec<(String, String)> = Vec::new();
    let date = parse_day(&field("date"));
    let date_key = format!("{op}-date");
    if date.is_none() {
        errors.push((date_key.clone(), ctx.t("admin-cal-err-date")));
    }
    let name = field("name");
    if op == "holiday" && name.is_empty() {
        errors.push(("holiday-name".into(), ctx.t("admin-cal-err-name")));
    }
    let entry = DayEntry {
        name,
        name_en: field("name_en"),
        kind: field("kind"),
    };
    apply_day_change(&ctx, &op, date, entry, &mut o, base, &mut errors)?;
    if errors.is_empty()
        && let Err(e) = WorkingCalendar::from_config(&o.merge_into(base))
    {
        errors.push((date_key.clone(), e.to_string()));
    }
    if !errors.is_empty() {
        if op == "delete" {
            return Err(ApiError::bad_request("date"));
        }
        return render_holidays(&st, &ctx, &a, None, typed, errors).await;
    }
    let payload = serde_json::json!({ "province": province.as_str(), "overrides": &o });
    by_province.insert(province.as_str().to_string(), o);
    let json = serde_json::to_string(&by_province).map_err(ApiError::internal)?;
    let e = a.entry(&st, "calendar.change", &payload);
    // Compare-and-set: two provinces saving at once cannot lose a change.
    if !st
        .store
        .set_meta_if(
            motcua_commands::PROVINCE_OVERRIDES_META_KEY,
            stored.as_deref(),
            &json,
            e,
        )
        .await?
    {
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict"));
    }
    st.reload_calendar().await?;
    Ok(Redirect::to("/quan-tri/ngay-nghi?xong=calendar-saved").into_response())
}
