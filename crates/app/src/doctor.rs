//! The doctor's last report, kept so that a viewer may read what an administrator's run found.

use crate::{App, Result};

/// Where the last report is kept (its JSON).
const LAST: &str = "doctor.last";

impl App {
    /// Keeps `report` (the doctor's JSON) as the last one.
    pub async fn keep_doctor_report(&self, report: &serde_json::Value) -> Result<()> {
        Ok(self.store.set_meta(LAST, Some(&report.to_string())).await?)
    }

    /// The last report kept, if the doctor ever ran.
    pub async fn last_doctor_report(&self) -> Result<Option<serde_json::Value>> {
        Ok(self.store.meta(LAST).await?.and_then(|text| serde_json::from_str(&text).ok()))
    }
}
