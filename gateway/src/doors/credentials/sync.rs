//! The platform's sync of the card list applied to the database: a
//! snapshot replacing every card, or a delta from the version held, every
//! row checked first; and the list's synced version. The sync target
//! itself is [`crate::doors::sync`].

use rusqlite::Transaction;
use serde::Deserialize;

use super::{CredentialStore, card_number, now_ms};
use crate::rules::door::Card;
use crate::store::{list_version, set_list_version};
use crate::vocab::records::ListError;

/// The list name of cards in `list_versions` and in sync messages.
pub const CARDS_LIST: &str = "cards";

/// A card as the platform syncs it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncedCard {
    number: String,
    holder: String,
    house: String,
    #[serde(default)]
    valid_from: Option<i64>,
    #[serde(default)]
    valid_to: Option<i64>,
    #[serde(default)]
    groups: Vec<String>,
}

impl CredentialStore {
    /// The version of the synced card list (0 when never synced).
    pub fn cards_version(&self) -> Result<u64, ListError> {
        Ok(list_version(&self.lock(), CARDS_LIST)?)
    }

    fn synced_cards(&self, rows: Vec<serde_json::Value>) -> Result<Vec<Card>, ListError> {
        rows.into_iter()
            .enumerate()
            .map(|(i, row)| {
                let synced: SyncedCard = serde_json::from_value(row)
                    .map_err(|e| ListError::Invalid(format!("row {i}: {e}")))?;
                self.check_card(&Card {
                    number: synced.number,
                    holder: synced.holder,
                    house: synced.house,
                    valid_from: synced.valid_from,
                    valid_to: synced.valid_to,
                    groups: synced.groups,
                })
                .map_err(|e| ListError::Invalid(format!("row {i}: {e}")))
            })
            .collect()
    }

    /// Replaces every card with `rows` at `version`; on any invalid row
    /// nothing changes. Written in bounded chunks: the new cards are
    /// upserted stamped with this sync's time, then the cards not stamped
    /// are deleted, then the version is set. Interrupted, the table holds
    /// the old cards and some new ones (nobody is locked out) at the old
    /// version, so the next sync starts again.
    pub fn replace_cards(
        &self,
        version: u64,
        rows: Vec<serde_json::Value>,
    ) -> Result<(), ListError> {
        let cards = self.synced_cards(rows)?;
        let stamp = now_ms();
        self.write_cards(cards, stamp, |_| {})?;
        self.writer.delete_in_chunks(
            "DELETE FROM door_cards WHERE rowid IN
                 (SELECT rowid FROM door_cards WHERE updated_ms <> ?1 LIMIT 256)",
            stamp,
        )?;
        self.change(move |tx| set_version(tx, CARDS_LIST, version))
    }

    /// Applies upserts and deletes (card numbers) taking the list from
    /// version `from` to `to`, in one transaction; on any invalid row, or
    /// when `from` is not the version held, nothing changes.
    pub fn apply_cards_delta(
        &self,
        from: u64,
        to: u64,
        upserts: Vec<serde_json::Value>,
        deletes: Vec<String>,
    ) -> Result<(), ListError> {
        let cards = self.synced_cards(upserts)?;
        let deletes = deletes
            .iter()
            .map(|n| card_number(n))
            .collect::<Result<Vec<_>, _>>()?;
        let held = self.cards_version()?;
        if held != from {
            return Err(ListError::Invalid(format!(
                "delta from version {from}, but version {held} is held"
            )));
        }
        self.writer.write_in_chunks(
            deletes,
            |tx, number| {
                tx.execute("DELETE FROM door_cards WHERE number = ?1", [number])?;
                Ok::<_, ListError>(())
            },
            |_| {},
        )?;
        self.write_cards(cards, now_ms(), |_| {})?;
        self.change(move |tx| set_version(tx, CARDS_LIST, to))
    }
}

fn set_version(tx: &Transaction<'_>, list: &str, version: u64) -> Result<(), ListError> {
    let version = i64::try_from(version)
        .map_err(|_| ListError::Invalid(format!("version {version} is too large")))?;
    set_list_version(tx, list, version)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::open;

    #[tokio::test]
    async fn cards_sync_snapshot_and_delta_are_atomic() {
        let (_dir, _store, creds) = open();
        let row = |n: &str| serde_json::json!({"number": n, "holder": "h", "house": "1-1-101", "groups": ["b3"]});
        creds
            .replace_cards(5, vec![row("1"), row("2")])
            .expect("snapshot");
        assert_eq!(creds.cards_version().expect("v"), 5);
        assert_eq!(creds.cards().len(), 2);
        // One bad row: nothing changes.
        let bad = creds.replace_cards(6, vec![row("3"), serde_json::json!({"number": "x"})]);
        assert!(bad.is_err());
        assert_eq!(creds.cards_version().expect("v"), 5);
        assert_eq!(creds.cards().len(), 2);
        let gap = creds.apply_cards_delta(4, 7, vec![row("9")], vec![]);
        assert!(gap.is_err(), "from must be the version held");
        creds
            .apply_cards_delta(5, 6, vec![row("3")], vec!["1".into()])
            .expect("delta");
        let numbers: Vec<String> = creds.cards().into_iter().map(|c| c.number).collect();
        assert_eq!(numbers, vec!["2", "3"]);
        assert_eq!(creds.cards_version().expect("v"), 6);
        let unknown_group = creds.apply_cards_delta(
            6,
            7,
            vec![
                serde_json::json!({"number": "4", "holder": "h", "house": "x", "groups": ["gym"]}),
            ],
            vec![],
        );
        assert!(unknown_group.is_err());
        assert_eq!(creds.cards_version().expect("v"), 6);
    }
}
