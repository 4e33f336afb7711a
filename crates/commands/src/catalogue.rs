//! Where a procedure may be filed: the availability decisions of
//! provinces and communes.

use motcua_domain::UnitCode;

use crate::App;
use crate::error::CommandResult;

/// Whether a procedure (national, or of `home` province) may be filed in
/// `unit`, given the availability `decisions` for it: the commune's own
/// decision, else its province's, else the default (a national procedure
/// everywhere, a province's own procedure in that province only).
pub fn is_available(
    home: Option<&UnitCode>,
    unit: &UnitCode,
    province: Option<&UnitCode>,
    decisions: &[motcua_store::Availability],
) -> bool {
    let decided = |u: &UnitCode| {
        decisions
            .iter()
            .find(|d| &d.unit_code == u)
            .map(|d| d.available)
    };
    decided(unit)
        .or_else(|| province.and_then(decided))
        .unwrap_or_else(|| home.is_none_or(|h| Some(h) == province))
}

/// Whether `sp` may be filed in `unit` now.
pub async fn available_in(
    st: &App,
    sp: &motcua_store::StoredProcedure,
    unit: &UnitCode,
) -> CommandResult<bool> {
    let province = st.province_of(unit).await?;
    let mut units = vec![unit.clone()];
    units.extend(province.clone());
    let decisions = st.store.availability(&sp.definition.code, &units).await?;
    Ok(is_available(
        sp.home_province.as_ref(),
        unit,
        province.as_ref(),
        &decisions,
    ))
}

/// Whether the current version of procedure `code` may be filed in `unit`.
pub async fn procedure_available(st: &App, code: &str, unit: &UnitCode) -> CommandResult<bool> {
    match st.store.current_procedure(code).await? {
        Some(sp) => available_in(st, &sp, unit).await,
        None => Ok(false),
    }
}
