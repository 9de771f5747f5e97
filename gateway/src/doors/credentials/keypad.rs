//! Keypad credentials: residents' PINs and the temporary codes a guard
//! issues, each kept only as its argon2id hash (found by hash, unique
//! across both kinds), and the uses of a temporary code recorded with the
//! read that used it.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{CredentialStore, check_window, now_ms};
use crate::doors::codes;
use crate::store::Effect;
use crate::vocab::records::ListError;

/// A new keypad PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPin {
    /// Holder's name.
    pub holder: String,
    /// House / unit.
    pub house: String,
    /// Valid from (Unix ms), if limited.
    pub valid_from: Option<i64>,
    /// Valid until (Unix ms), if limited.
    pub valid_to: Option<i64>,
    /// Door groups; empty = every door.
    pub groups: Vec<String>,
}

/// A new temporary code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTempCode {
    /// Who it is for.
    pub label: String,
    /// The host's house.
    pub house: String,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid for this many hours.
    pub hours: u32,
    /// Uses allowed.
    pub max_uses: u32,
    /// Door groups; empty = every door.
    pub groups: Vec<String>,
    /// Who registered it.
    pub created_by: String,
}

impl CredentialStore {
    fn check_code_free(tx: &Transaction<'_>, hash: &str) -> Result<(), ListError> {
        let taken: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM door_pins WHERE code_hash = ?1
                 UNION ALL SELECT 1 FROM door_temp_codes WHERE code_hash = ?1",
                [hash],
                |r| r.get(0),
            )
            .optional()?;
        match taken {
            Some(_) => Err(ListError::Invalid(
                "this code is already in use; choose another".into(),
            )),
            None => Ok(()),
        }
    }

    /// Enrols a resident's PIN; returns its id. The PIN is kept only hashed.
    pub fn add_pin(&self, code: &str, pin: &NewPin) -> Result<i64, ListError> {
        codes::check_code(code)?;
        if pin.holder.trim().is_empty() || pin.house.trim().is_empty() {
            return Err(ListError::Invalid("holder and house are required".into()));
        }
        check_window(pin.valid_from, pin.valid_to).map_err(ListError::Invalid)?;
        self.check_groups(&pin.groups).map_err(ListError::Invalid)?;
        let hash = codes::to_hex(&self.hash(code));
        let pin = pin.clone();
        self.change(move |tx| {
            Self::check_code_free(tx, &hash)?;
            tx.execute(
                "INSERT INTO door_pins (code_hash, holder, house, valid_from, valid_to, groups, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    hash,
                    pin.holder.trim(),
                    pin.house.trim(),
                    pin.valid_from,
                    pin.valid_to,
                    pin.groups.join(","),
                    now_ms()
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Removes a PIN; `false` if there was none with this id.
    pub fn remove_pin(&self, id: i64) -> Result<bool, ListError> {
        self.change(move |tx| Ok(tx.execute("DELETE FROM door_pins WHERE id = ?1", [id])? > 0))
    }

    /// Issues a temporary code; returns its id. Expired codes are purged
    /// first, so their digits can be issued again.
    pub fn add_temp_code(&self, code: &str, new: &NewTempCode) -> Result<i64, ListError> {
        codes::check_code(code)?;
        if new.hours == 0 || new.max_uses == 0 {
            return Err(ListError::Invalid(
                "a temporary code needs at least one hour and one use".into(),
            ));
        }
        if new.house.trim().is_empty() {
            return Err(ListError::Invalid("house is required".into()));
        }
        self.check_groups(&new.groups).map_err(ListError::Invalid)?;
        let hash = codes::to_hex(&self.hash(code));
        let now = now_ms();
        let valid_to = new.valid_from + i64::from(new.hours) * 3_600_000;
        let new = new.clone();
        self.change(move |tx| {
            tx.execute("DELETE FROM door_temp_codes WHERE valid_to < ?1", [now])?;
            Self::check_code_free(tx, &hash)?;
            tx.execute(
                "INSERT INTO door_temp_codes (code_hash, label, house, valid_from, valid_to, max_uses,
                     groups, created_by, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    hash,
                    new.label.trim(),
                    new.house.trim(),
                    new.valid_from,
                    valid_to,
                    new.max_uses,
                    new.groups.join(","),
                    new.created_by,
                    now
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Revokes a temporary code; `false` if there was none with this id.
    pub fn revoke_temp_code(&self, id: i64) -> Result<bool, ListError> {
        self.change(move |tx| {
            Ok(tx.execute("DELETE FROM door_temp_codes WHERE id = ?1", [id])? > 0)
        })
    }

    /// The effect recording that a temporary code has been used `used`
    /// times (never lowering the stored count), committed with the card
    /// read's event. The snapshot is not rebuilt: the coordinator counts
    /// uses itself.
    pub fn code_use(&self, id: i64, used: u32) -> Effect {
        Effect::new(
            format!("temporary code {id} used {used} times"),
            move |conn| {
                conn.execute(
                    "UPDATE door_temp_codes SET used = MAX(used, ?2) WHERE id = ?1",
                    params![id, used],
                )
                .map(drop)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;
    use super::*;
    use crate::rules::door::CodeEntry;

    #[tokio::test]
    async fn temp_code_and_pin_are_stored_hashed_found_by_hash_and_unique() {
        let (_dir, store, creds) = open();
        let now = now_ms();
        let id = creds
            .add_temp_code(
                "246810",
                &NewTempCode {
                    label: "快递".into(),
                    house: "3-1-1201".into(),
                    valid_from: now,
                    hours: 2,
                    max_uses: 3,
                    groups: vec![],
                    created_by: "guard".into(),
                },
            )
            .expect("code");
        let pin = creds
            .add_pin(
                "135790",
                &NewPin {
                    holder: "王芳".into(),
                    house: "3-1-1201".into(),
                    valid_from: None,
                    valid_to: None,
                    groups: vec!["b3".into()],
                },
            )
            .expect("pin");
        let snapshot = creds.snapshot();
        match snapshot.codes.get(&creds.hash("246810")) {
            Some(CodeEntry::Temp(t)) => {
                assert_eq!(t.id, id);
                assert_eq!(t.valid_to - t.valid_from, 2 * 3_600_000);
            }
            other => panic!("temp code not found: {other:?}"),
        }
        assert!(
            matches!(snapshot.codes.get(&creds.hash("135790")), Some(CodeEntry::Pin(p)) if p.id == pin)
        );
        let dup = creds.add_pin(
            "246810",
            &NewPin {
                holder: "x".into(),
                house: "y".into(),
                valid_from: None,
                valid_to: None,
                groups: vec![],
            },
        );
        assert!(dup.is_err(), "a code in use is refused");
        // The database holds no code in clear.
        let conn = store.connect().expect("conn");
        let dump: String = conn
            .query_row(
                "SELECT group_concat(code_hash) FROM (SELECT code_hash FROM door_pins
                 UNION ALL SELECT code_hash FROM door_temp_codes)",
                [],
                |r| r.get(0),
            )
            .expect("dump");
        assert!(!dump.contains("246810") && !dump.contains("135790"));
        let (use2, use1) = (creds.code_use(id, 2), creds.code_use(id, 1));
        store.submit_with(Vec::new(), vec![use2]).wait().await;
        store.submit_with(Vec::new(), vec![use1]).wait().await;
        creds.reload().expect("reload");
        match creds.snapshot().codes.get(&creds.hash("246810")) {
            Some(CodeEntry::Temp(t)) => assert_eq!(t.used, 2, "never lowered"),
            other => panic!("{other:?}"),
        }
        assert!(creds.revoke_temp_code(id).expect("revoke"));
        assert!(!creds.snapshot().codes.contains_key(&creds.hash("246810")));
    }
}
