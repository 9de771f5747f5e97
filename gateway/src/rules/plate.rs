//! Chinese licence plates: normalisation of what a camera read into a
//! canonical plate, and the OCR-confusable variants used for fuzzy matching.
//!
//! Pure functions, no IO. A canonical plate is upper-case, without spaces,
//! dots or separators: province character, issuing-authority letter, then
//! 5 characters (ordinary) or 6 (new-energy), with special forms for police
//! (警), trailers (挂), learners (学), Hong Kong/Macau (港/澳), embassies (使)
//! and consulates (领).

use serde::Serialize;

/// Province (and equivalent) characters that start an ordinary plate.
pub const PROVINCES: [char; 31] = [
    '京', '津', '沪', '渝', '冀', '豫', '云', '辽', '黑', '湘', '皖', '鲁', '新', '苏', '浙', '赣',
    '鄂', '桂', '甘', '晋', '蒙', '陕', '吉', '闽', '贵', '粤', '青', '藏', '川', '宁', '琼',
];

/// Groups of characters that plate OCR confuses with each other.
const CONFUSABLE: [&str; 7] = ["0DQO", "8B", "1I", "2Z", "5S", "6G", "4A"];

/// What kind of plate a canonical plate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateKind {
    /// Province + letter + 5 characters (蓝/黄牌).
    Ordinary,
    /// Province + letter + 6 characters (绿牌 new-energy).
    NewEnergy,
    /// Ends in 警.
    Police,
    /// Ends in 挂.
    Trailer,
    /// Ends in 学.
    Learner,
    /// Ends in 港 or 澳 (cross-border 粤Z plates).
    CrossBorder,
    /// Starts with 使 (embassy) or ends with 领 (consulate).
    Diplomatic,
}

/// A normalised read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlateText {
    /// A vehicle without a readable plate (无牌车).
    NoPlate,
    /// A plate in canonical form.
    Plate {
        /// Canonical text, e.g. `苏A8HK52`.
        text: String,
        /// Its kind.
        kind: PlateKind,
    },
}

/// Why a read is not a plate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlateError {
    /// Characters outside the plate alphabet.
    #[error("unexpected character {0:?} in plate")]
    BadCharacter(char),
    /// Not a known plate shape.
    #[error("not a plate shape: {0}")]
    BadShape(String),
}

/// Normalises a camera's read. An empty read or a vendor's no-plate marker
/// (`_无_`, `无牌`, `unknown`, `无`) is [`PlateText::NoPlate`].
pub fn normalise(raw: &str) -> Result<PlateText, PlateError> {
    let trimmed = raw.trim();
    if matches!(
        trimmed,
        "" | "_无_" | "无" | "无牌" | "无牌车" | "unknown" | "UNKNOWN"
    ) {
        return Ok(PlateText::NoPlate);
    }
    let mut text = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match c {
            ' ' | '·' | '•' | '.' | '-' | '\u{3000}' => {}
            'a'..='z' => text.push(c.to_ascii_uppercase()),
            'A'..='Z' | '0'..='9' => text.push(c),
            // Full-width ASCII from some firmware.
            'Ａ'..='Ｚ' | '０'..='９' => {
                let ascii = char::from_u32(c as u32 - 0xFEE0).ok_or(PlateError::BadCharacter(c))?;
                text.push(ascii);
            }
            c if is_plate_cjk(c) => text.push(c),
            c => return Err(PlateError::BadCharacter(c)),
        }
    }
    let kind = classify(&text).ok_or_else(|| PlateError::BadShape(text.clone()))?;
    Ok(PlateText::Plate { text, kind })
}

fn is_plate_cjk(c: char) -> bool {
    PROVINCES.contains(&c) || "警挂学港澳使领".contains(c)
}

fn classify(text: &str) -> Option<PlateKind> {
    let chars: Vec<char> = text.chars().collect();
    let alnum = |c: &char| c.is_ascii_uppercase() || c.is_ascii_digit();
    if let Some(rest) = text.strip_prefix('使') {
        return (rest.chars().count() == 6 && rest.chars().all(|c| c.is_ascii_digit()))
            .then_some(PlateKind::Diplomatic);
    }
    let (&first, rest) = chars.split_first()?;
    if !PROVINCES.contains(&first) {
        return None;
    }
    let (&authority, tail) = rest.split_first()?;
    if !authority.is_ascii_uppercase() {
        return None;
    }
    let (&last, body) = tail.split_last()?;
    let suffix_kind = match last {
        '警' => Some(PlateKind::Police),
        '挂' => Some(PlateKind::Trailer),
        '学' => Some(PlateKind::Learner),
        '港' | '澳' => Some(PlateKind::CrossBorder),
        '领' => Some(PlateKind::Diplomatic),
        _ => None,
    };
    if let Some(kind) = suffix_kind {
        return (body.len() == 4 && body.iter().all(alnum)).then_some(kind);
    }
    match tail.len() {
        5 if tail.iter().all(alnum) => Some(PlateKind::Ordinary),
        6 if tail.iter().all(alnum)
            && (matches!(tail[0], 'D' | 'F') || matches!(tail[5], 'D' | 'F')) =>
        {
            Some(PlateKind::NewEnergy)
        }
        _ => None,
    }
}

fn confusable_group(c: char) -> Option<&'static str> {
    CONFUSABLE.iter().copied().find(|g| g.contains(c))
}

/// Every plate that differs from `text` by one OCR-confusable character or
/// by the province character. The read itself is not included.
pub fn fuzzy_variants(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        if i == 0 && PROVINCES.contains(&c) {
            for p in PROVINCES.iter().filter(|&&p| p != c) {
                let mut v = chars.clone();
                v[0] = *p;
                out.push(v.into_iter().collect());
            }
            continue;
        }
        if let Some(group) = confusable_group(c) {
            for alt in group.chars().filter(|&a| a != c) {
                let mut v = chars.clone();
                v[i] = alt;
                out.push(v.into_iter().collect());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plate(text: &str, kind: PlateKind) -> PlateText {
        PlateText::Plate {
            text: text.into(),
            kind,
        }
    }

    #[test]
    fn plate_normalise_accepts_ordinary_new_energy_and_special_plates() {
        assert_eq!(
            normalise("苏A8HK52"),
            Ok(plate("苏A8HK52", PlateKind::Ordinary))
        );
        assert_eq!(
            normalise(" 苏a·8hk52 "),
            Ok(plate("苏A8HK52", PlateKind::Ordinary))
        );
        assert_eq!(
            normalise("粤BD12345"),
            Ok(plate("粤BD12345", PlateKind::NewEnergy))
        );
        assert_eq!(
            normalise("沪A12345F"),
            Ok(plate("沪A12345F", PlateKind::NewEnergy))
        );
        assert_eq!(
            normalise("京A1234警"),
            Ok(plate("京A1234警", PlateKind::Police))
        );
        assert_eq!(
            normalise("鲁B1234挂"),
            Ok(plate("鲁B1234挂", PlateKind::Trailer))
        );
        assert_eq!(
            normalise("粤Z1234港"),
            Ok(plate("粤Z1234港", PlateKind::CrossBorder))
        );
        assert_eq!(
            normalise("使014578"),
            Ok(plate("使014578", PlateKind::Diplomatic))
        );
        assert_eq!(
            normalise("京ＡＤ１２３４５"),
            Ok(plate("京AD12345", PlateKind::NewEnergy))
        );
    }

    #[test]
    fn plate_normalise_maps_vendor_no_plate_markers() {
        for raw in ["", "_无_", "无牌车", "unknown"] {
            assert_eq!(normalise(raw), Ok(PlateText::NoPlate), "{raw:?}");
        }
    }

    #[test]
    fn plate_normalise_rejects_noise() {
        assert!(matches!(normalise("苏A8HK5"), Err(PlateError::BadShape(_))));
        assert!(matches!(normalise("AB12345"), Err(PlateError::BadShape(_))));
        assert!(matches!(
            normalise("苏A8HK52?"),
            Err(PlateError::BadCharacter('?'))
        ));
        assert!(
            matches!(normalise("苏A123456"), Err(PlateError::BadShape(_))),
            "6 chars without D/F"
        );
    }

    #[test]
    fn fuzzy_variants_cover_confusable_characters_and_the_province() {
        let variants = fuzzy_variants("苏A8HK52");
        assert!(variants.contains(&"苏AB HK52".replace(' ', "")));
        assert!(variants.contains(&"苏A8HK5Z".to_owned()));
        assert!(variants.contains(&"苏A8HK S2".replace(' ', "")));
        assert!(variants.contains(&"浙A8HK52".to_owned()));
        assert!(
            variants.contains(&"苏48HK52".to_owned()),
            "A/4 are confusable"
        );
        assert!(!variants.contains(&"苏A8HK52".to_owned()));
        assert!(!variants.contains(&"苏A9HK52".to_owned()));
    }
}
