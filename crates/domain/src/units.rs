//! Administrative units (34 provinces, 3,321 communes since 1 July 2025)
//! and the agencies that belong to them.

use serde::{Deserialize, Serialize};

use crate::ids::{AgencyCode, UnitCode};

/// The official list, built into the binary.
pub const BUILTIN_UNITS_CSV: &str = include_str!("../../../data/vn-admin-units-2025.csv");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitLevel {
    Province,
    Commune,
}

crate::string_forms!(UnitLevel {
    Province => "province",
    Commune => "commune",
});

/// Đơn vị hành chính.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUnit {
    pub code: UnitCode,
    pub name: String,
    /// "phường", "xã", "đặc khu", "tỉnh", "thành phố trung ương".
    pub division_type: String,
    pub level: UnitLevel,
    pub parent_code: Option<UnitCode>,
}

#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct UnitsError {
    pub line: usize,
    pub message: String,
}

/// Parses the units CSV (`code,name,division_type,level,parent_code`).
pub fn parse_units_csv(csv: &str) -> Result<Vec<AdminUnit>, UnitsError> {
    let mut out = Vec::new();
    for (i, line) in csv.lines().enumerate() {
        let line_no = i + 1;
        if i == 0 || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != 5 {
            return Err(UnitsError {
                line: line_no,
                message: format!("expected 5 columns, found {}", cols.len()),
            });
        }
        let err = |m: String| UnitsError {
            line: line_no,
            message: m,
        };
        let code = UnitCode::parse(cols[0]).map_err(|e| err(e.to_string()))?;
        let level = UnitLevel::parse(cols[3]).ok_or_else(|| err(format!("level {}", cols[3])))?;
        let parent_code = if cols[4].trim().is_empty() {
            None
        } else {
            Some(UnitCode::parse(cols[4]).map_err(|e| err(e.to_string()))?)
        };
        if (level == UnitLevel::Commune) != parent_code.is_some() {
            return Err(err(
                "a commune needs a parent province, a province none".into()
            ));
        }
        out.push(AdminUnit {
            code,
            name: crate::text::nfc(cols[1].trim()),
            division_type: cols[2].trim().to_string(),
            level,
            parent_code,
        });
    }
    Ok(out)
}

/// Loại cơ quan: what kind of agency this is. Procedures name the kind of
/// agency that handles them; the handling agency is the agency of that kind
/// in the unit where the dossier is filed (or its province).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgencyKind {
    /// Ủy ban nhân dân cấp xã.
    CommunePeoplesCommittee,
    /// Trung tâm Phục vụ hành chính công tỉnh.
    ProvincialServiceCentre,
    /// Sở Tư pháp.
    JusticeDepartment,
    /// Sở Xây dựng.
    ConstructionDepartment,
    /// Sở Nông nghiệp và Môi trường.
    AgricultureEnvironmentDepartment,
    /// Sở Y tế.
    HealthDepartment,
    /// Công an tỉnh.
    ProvincialPolice,
    /// Sở Tài chính.
    FinanceDepartment,
    /// Sở Nội vụ.
    HomeAffairsDepartment,
}

crate::string_forms!(AgencyKind {
    CommunePeoplesCommittee => "commune_peoples_committee",
    ProvincialServiceCentre => "provincial_service_centre",
    JusticeDepartment => "justice_department",
    ConstructionDepartment => "construction_department",
    AgricultureEnvironmentDepartment => "agriculture_environment_department",
    HealthDepartment => "health_department",
    ProvincialPolice => "provincial_police",
    FinanceDepartment => "finance_department",
    HomeAffairsDepartment => "home_affairs_department",
});

impl AgencyKind {
    pub fn level(self) -> UnitLevel {
        match self {
            AgencyKind::CommunePeoplesCommittee => UnitLevel::Commune,
            _ => UnitLevel::Province,
        }
    }
}

/// Cơ quan: an agency that receives and handles dossiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    pub code: AgencyCode,
    pub name_vi: String,
    pub name_en: String,
    pub kind: AgencyKind,
    pub unit_code: UnitCode,
    /// Address shown to citizens who come in person.
    pub address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_has_34_provinces_and_3321_communes() {
        let units = parse_units_csv(BUILTIN_UNITS_CSV).expect("parses");
        let provinces = units
            .iter()
            .filter(|u| u.level == UnitLevel::Province)
            .count();
        let communes = units
            .iter()
            .filter(|u| u.level == UnitLevel::Commune)
            .count();
        assert_eq!(provinces, 34);
        assert_eq!(communes, 3321);
        let cua_nam = units
            .iter()
            .find(|u| u.code.as_str() == "00073")
            .expect("Cửa Nam");
        assert_eq!(cua_nam.name, "Phường Cửa Nam");
        assert_eq!(cua_nam.parent_code.as_ref().map(|c| c.as_str()), Some("01"));
    }
}
