//! Erasure of one person's personal information from recorded events,
//! pure: how an identifier is masked (`苏A8HK52` → `苏A8***2`) and how a
//! recorded event's JSON is stripped of a person ([`scrub`]). The gateway's
//! erasure on request (`crate::privacy`) finds the rows and writes them
//! back; nothing here does IO.

use serde_json::Value;

/// A plate masked: its first three characters (province, letter, first
/// character) and its last one kept, the rest `*` (`苏A8***2`). A short
/// text keeps only its first character.
pub fn mask_plate(plate: &str) -> String {
    let chars: Vec<char> = plate.chars().collect();
    if chars.len() <= 4 {
        return mask_keeping(&chars, 1, 0);
    }
    mask_keeping(&chars, 3, 1)
}

/// A card number masked: only its last two digits kept (`******78`).
pub fn mask_card(card: &str) -> String {
    let chars: Vec<char> = card.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len().max(1));
    }
    mask_keeping(&chars, 0, 2)
}

/// A house number masked: only its first character kept (`3*******`).
pub fn mask_house(house: &str) -> String {
    let chars: Vec<char> = house.chars().collect();
    mask_keeping(&chars, 1, 0)
}

fn mask_keeping(chars: &[char], head: usize, tail: usize) -> String {
    let len = chars.len();
    if len == 0 {
        return "*".into();
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < head.min(len) || i >= len.saturating_sub(tail).max(head.min(len)) {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// One person as an erasure sees them: the identifiers that find their
/// records (each with the masked form that replaces it) and the names and
/// house numbers removed from those records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    masks: Vec<(String, String)>,
    strip: Vec<String>,
}

impl Person {
    /// Nobody yet.
    pub fn new() -> Person {
        Person::default()
    }

    /// An identifier (plate, card number, the house erased) that finds the
    /// person's records, replaced by `mask` in them. Empty ones are ignored.
    pub fn identify(&mut self, identifier: &str, mask: String) {
        let identifier = identifier.trim();
        if !identifier.is_empty() && !self.masks.iter().any(|(i, _)| i == identifier) {
            self.masks.push((identifier.to_owned(), mask));
            // Longest first: one identifier inside another is replaced whole.
            self.masks
                .sort_by_key(|(i, _)| std::cmp::Reverse(i.chars().count()));
        }
    }

    /// A name or house number removed from the person's records. Empty
    /// ones are ignored.
    pub fn strip(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() && !self.strip.iter().any(|s| s == text) {
            self.strip.push(text.to_owned());
            self.strip
                .sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
        }
    }

    /// The identifiers a record of the person contains (what to search for).
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        self.masks.iter().map(|(i, _)| i.as_str())
    }

    /// Whether `text` names the person: contains one of the identifiers
    /// as a whole (not inside a longer run of letters and digits: card
    /// `42` is not in `1042` nor in a UUID).
    pub fn found_in(&self, text: &str) -> bool {
        self.identifiers()
            .any(|i| whole_matches(text, i).next().is_some())
    }

    /// `text` with every identifier masked and every name and house
    /// number removed (`None`: nothing in it). Only for a record that
    /// names the person ([`Person::found_in`]): a name alone is not
    /// theirs.
    pub fn scrub_text(&self, text: &str) -> Option<String> {
        let mut out = text.to_owned();
        for (identifier, mask) in &self.masks {
            out = replace_whole(&out, identifier, mask);
        }
        for strip in &self.strip {
            out = out.replace(strip.as_str(), "");
        }
        (out != text).then_some(out)
    }
}

/// Where `needle` is in `text` as a whole: not preceded or followed by
/// an ASCII letter or digit.
fn whole_matches<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(needle)
        .map(|(i, _)| i)
        .filter(move |&i| {
            let before = text[..i].chars().next_back();
            let after = text[i + needle.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_alphanumeric())
                && !after.is_some_and(|c| c.is_ascii_alphanumeric())
        })
}

/// `text` with every whole `needle` replaced by `with`.
fn replace_whole(text: &str, needle: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for i in whole_matches(text, needle) {
        out.push_str(&text[last..i]);
        out.push_str(with);
        last = i + needle.len();
    }
    out.push_str(&text[last..]);
    out
}

/// Whether any string in `value` (a recorded event's body) names the
/// person ([`Person::found_in`]).
pub fn names(value: &Value, person: &Person) -> bool {
    match value {
        Value::String(text) => person.found_in(text),
        Value::Array(items) => items.iter().any(|item| names(item, person)),
        Value::Object(map) => map.values().any(|item| names(item, person)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Strips `person` from a recorded event's body (any JSON) that names
/// them: every identifier in a string gets the masked form instead, every
/// name or house number in a string is removed. A body that does not name
/// them is left alone (their name alone may be someone else's). Keys are
/// left as they are. Returns whether anything changed.
pub fn scrub(value: &mut Value, person: &Person) -> bool {
    names(value, person) && rewrite(value, person)
}

fn rewrite(value: &mut Value, person: &Person) -> bool {
    match value {
        Value::String(text) => match person.scrub_text(text) {
            Some(clean) => {
                *text = clean;
                true
            }
            None => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| rewrite(item, person) | changed),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, item| rewrite(item, person) | changed),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_are_masked_keeping_only_a_few_characters() {
        assert_eq!(mask_plate("苏A812342"), "苏A8****2");
        assert_eq!(mask_plate("苏A8HK52"), "苏A8***2");
        assert_eq!(mask_plate("AB"), "A*");
        assert_eq!(mask_plate(""), "*");
        assert_eq!(mask_card("12345678"), "******78");
        assert_eq!(mask_card("123"), "***");
        assert_eq!(mask_house("3-1-1201"), "3*******");
    }

    #[test]
    fn a_record_of_the_person_keeps_its_shape_but_not_the_person() {
        let mut person = Person::new();
        person.identify("苏A812342", mask_plate("苏A812342"));
        person.strip("张三");
        person.strip("3-1-1201");
        person.strip("  ");
        let mut event = json!({
            "kind": "resident_saved",
            "seq": 7,
            "body": {
                "actor": "admin",
                "target": "苏A812342",
                "detail": "苏A812342 张三 3-1-1201 (car)",
                "owner": "张三",
                "images": ["20261202/0193-full.jpg"],
                "nested": [{"plate": "苏A812342"}, 3, null, true]
            }
        });
        assert!(person.found_in(&event.to_string()));
        assert!(scrub(&mut event, &person));
        let text = event.to_string();
        for gone in ["苏A812342", "张三", "3-1-1201"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(event["body"]["target"], "苏A8****2");
        assert_eq!(event["body"]["detail"], "苏A8****2   (car)");
        assert_eq!(event["body"]["owner"], "");
        assert_eq!(event["body"]["actor"], "admin");
        assert_eq!(event["body"]["images"][0], "20261202/0193-full.jpg");
        assert_eq!(event["seq"], 7);
        assert!(!scrub(&mut event, &person), "a second pass changes nothing");
        assert!(!person.found_in(&text));
    }

    #[test]
    fn an_identifier_inside_a_longer_number_or_id_is_not_the_person() {
        let mut person = Person::new();
        person.identify("42", mask_card("42"));
        person.strip("王芳");
        let mut other = json!({
            "id": "0193a5b2-4242-7cc3-9f00-1a2b3c4d5e6f",
            "card": "1042",
            "holder": "王芳",
            "note": "card 42x"
        });
        let before = other.clone();
        assert!(!scrub(&mut other, &person), "not this person's record");
        assert_eq!(other, before, "a namesake keeps her name");
        let mut theirs = json!({"card": "42", "holder": "王芳", "id": "0193-4242"});
        assert!(scrub(&mut theirs, &person));
        assert_eq!(
            theirs,
            json!({"card": "**", "holder": "", "id": "0193-4242"})
        );
        assert_eq!(
            person.scrub_text("card 42, door 1").as_deref(),
            Some("card **, door 1")
        );
    }

    #[test]
    fn a_longer_identifier_is_masked_whole() {
        let mut person = Person::new();
        person.identify("1234", mask_card("1234"));
        person.identify("123456", mask_card("123456"));
        assert_eq!(
            person.scrub_text("card 123456").as_deref(),
            Some("card ****56")
        );
        assert_eq!(person.scrub_text("nothing here"), None);
    }
}
