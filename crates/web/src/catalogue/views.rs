//! JSON shapes of the catalogue API (also in the OpenAPI document).

use motcua_domain::procedure::Procedure;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureSummary {
    pub code: String,
    pub version: u32,
    pub name_vi: String,
    pub name_en: String,
    pub sector: String,
    pub sector_name_vi: String,
    pub sector_name_en: String,
    /// `province` or `commune`.
    pub level: String,
    /// `full`, `partial` or `none`.
    pub online: String,
    /// Processing time in working hours (8 per working day).
    pub processing_hours: u32,
    /// Total fees in VND.
    pub total_fee: u64,
}

impl ProcedureSummary {
    pub fn of(p: &Procedure) -> Self {
        let as_str = |v: &dyn crate::dossiers::views::AsSnake| v.snake();
        Self {
            code: p.code.clone(),
            version: p.version,
            name_vi: p.name.vi.clone(),
            name_en: p.name.en.clone(),
            sector: p.sector.clone(),
            sector_name_vi: p.sector_name.vi.clone(),
            sector_name_en: p.sector_name.en.clone(),
            level: p.level.as_str().to_string(),
            online: as_str(&p.online),
            processing_hours: (p.processing_time.working_minutes(8) / 60) as u32,
            total_fee: p.total_fee(),
        }
    }
}
