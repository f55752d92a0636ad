//! A sale's settings in the ledger: written by name from `Settings`, changed under the sale's
//! row lock, and schedules that have fired.

use std::sync::LazyLock;

use chrono::DateTime;
use sqlx::types::Json;

use super::{Ledger, LockedSale};
use crate::core::domain::{setting_names, SaleId, SaleSpec, Settings};
use crate::core::fault::Fault;

/// The settings' columns, named after the fields: no statement lists a setting by hand.
/// The names come from our own struct, never from a request.
static COLS: LazyLock<String> = LazyLock::new(|| setting_names().join(", "));

/// Every setting from `$2`, the settings as JSON, into the sale's row.
static INSERT: LazyLock<String> = LazyLock::new(|| {
    let cols = &*COLS;
    format!(
        "INSERT INTO sales (id, {cols})
         SELECT $1, {cols} FROM jsonb_populate_record(NULL::sales, $2)
         ON CONFLICT (id) DO NOTHING"
    )
});
static UPDATE: LazyLock<String> = LazyLock::new(|| {
    let cols = &*COLS;
    format!(
        "UPDATE sales SET ({cols}) = (SELECT {cols} FROM jsonb_populate_record(NULL::sales, $2)),
            finished_at = CASE WHEN $3 > units THEN NULL ELSE finished_at END
         WHERE id = $1"
    )
});

impl Ledger {
    /// Inserts a new sale; false if the id is taken.
    pub async fn insert_sale(&self, s: &SaleSpec) -> Result<bool, Fault> {
        let done = sqlx::query(INSERT.as_str())
            .bind(s.id.as_str())
            .bind(Json(s.settings.fields()))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl LockedSale {
    /// Writes every setting, in the transaction holding the row. A sale given more units is
    /// live again (no longer finished).
    pub async fn set_settings(&mut self, s: &Settings) -> Result<(), Fault> {
        sqlx::query(UPDATE.as_str())
            .bind(&self.row.id)
            .bind(Json(s.fields()))
            .bind(s.units)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}

impl Ledger {
    /// A schedule time Redis reached (lua/schedule.lua cleared it there): cleared here too
    /// unless a later change set another time, and the switch kept as the schedule left it
    /// (`open` None: it was already so). An opening makes a finished sale live again.
    pub async fn schedule_fired(
        &self,
        sale: &SaleId,
        opens: bool,
        due_ms: i64,
        open: Option<bool>,
    ) -> Result<(), Fault> {
        let due = DateTime::from_timestamp_millis(due_ms)
            .ok_or_else(|| Fault::bug(format!("schedule time {due_ms} out of range")))?;
        sqlx::query(
            "UPDATE sales SET
                opens_at = CASE WHEN $2 AND opens_at = $3 THEN NULL ELSE opens_at END,
                closes_at = CASE WHEN NOT $2 AND closes_at = $3 THEN NULL ELSE closes_at END,
                ended_at = CASE WHEN NOT $2 THEN now() ELSE ended_at END,
                open = COALESCE($4, open),
                finished_at = CASE WHEN $4 THEN NULL ELSE finished_at END
             WHERE id = $1",
        )
        .bind(sale)
        .bind(opens)
        .bind(due)
        .bind(open)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
