//! Downlink message signatures (pure): the canonical form and HMAC-SHA256.
//!
//! A downlink message is a JSON object with a `sig` member: the lowercase hex
//! HMAC-SHA256, under the gateway's key, of
//!
//! ```text
//! gatehouse-downlink-v1 LF estate_id LF gateway_id LF canonical-json(message without "sig")
//! ```
//!
//! Canonical JSON: object members sorted by key (byte order), no
//! whitespace, strings as UTF-8 with only `"`, `\` and control characters
//! escaped (`\b \f \n \r \t`, others `\u00XX`), integers in decimal.
//! Floating-point numbers are refused in signed messages: their text form
//! differs between languages. Binding the estate and gateway ids means a
//! message signed for one gateway is refused by every other, even under a
//! shared key. Verification compares in constant time.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The first line of the signed text.
pub const DOMAIN: &str = "gatehouse-downlink-v1";

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The message has no `sig`.
    #[error("unsigned")]
    Missing,
    /// `sig` is not a hex string of 32 bytes.
    #[error("signature is not 64 hex digits")]
    Malformed,
    /// The message holds a number that is not an integer.
    #[error("signed messages may not contain fractional numbers")]
    Float,
    /// The signature does not match.
    #[error("bad signature")]
    Mismatch,
    /// The key is unusable (empty).
    #[error("no usable key")]
    NoKey,
}

/// Appends the canonical JSON of `value` to `out`.
pub fn canonical_json(value: &Value, out: &mut String) -> Result<(), SignatureError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                return Err(SignatureError::Float);
            }
        }
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(key, out);
                out.push(':');
                if let Some(v) = map.get(key) {
                    canonical_json(v, out)?;
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The bytes that are signed: the domain line, the ids and the canonical
/// JSON of `message` without its `sig`.
pub fn signing_input(
    estate_id: &str,
    gateway_id: &str,
    message: &Map<String, Value>,
) -> Result<String, SignatureError> {
    let mut unsigned = message.clone();
    unsigned.remove("sig");
    let mut out = format!("{DOMAIN}\n{estate_id}\n{gateway_id}\n");
    canonical_json(&Value::Object(unsigned), &mut out)?;
    Ok(out)
}

fn mac(key: &[u8]) -> Result<Hmac<Sha256>, SignatureError> {
    if key.is_empty() {
        return Err(SignatureError::NoKey);
    }
    Hmac::<Sha256>::new_from_slice(key).map_err(|_| SignatureError::NoKey)
}

/// The signature of `message` (what the platform puts in `sig`).
pub fn sign(
    key: &[u8],
    estate_id: &str,
    gateway_id: &str,
    message: &Map<String, Value>,
) -> Result<String, SignatureError> {
    let mut mac = mac(key)?;
    mac.update(signing_input(estate_id, gateway_id, message)?.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Checks `message`'s `sig` in constant time.
pub fn verify(
    key: &[u8],
    estate_id: &str,
    gateway_id: &str,
    message: &Map<String, Value>,
) -> Result<(), SignatureError> {
    let sig = match message.get("sig") {
        None | Some(Value::Null) => return Err(SignatureError::Missing),
        Some(Value::String(s)) if s.is_empty() => return Err(SignatureError::Missing),
        Some(Value::String(s)) => s,
        Some(_) => return Err(SignatureError::Malformed),
    };
    let presented = hex::decode(sig).map_err(|_| SignatureError::Malformed)?;
    if presented.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = mac(key)?;
    mac.update(signing_input(estate_id, gateway_id, message)?.as_bytes());
    mac.verify_slice(&presented)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test objects only"),
        }
    }

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, {"z": true, "a": null}], "a": "x\"y\n\u{1}", "中": -3});
        let mut out = String::new();
        canonical_json(&v, &mut out).expect("canonical");
        assert_eq!(
            out,
            r#"{"a":"x\"y\n\u0001","b":[1,{"a":null,"z":true}],"中":-3}"#
        );
    }

    #[test]
    fn fractional_numbers_are_refused() {
        let mut out = String::new();
        assert_eq!(
            canonical_json(&json!({"v": 1.5}), &mut out),
            Err(SignatureError::Float)
        );
    }

    #[test]
    fn the_signing_input_binds_estate_and_gateway_and_excludes_sig() {
        let m = object(json!({"id": "c1", "sig": "ff", "action": "poll"}));
        assert_eq!(
            signing_input("e1", "g1", &m).expect("input"),
            "gatehouse-downlink-v1\ne1\ng1\n{\"action\":\"poll\",\"id\":\"c1\"}"
        );
    }

    #[test]
    fn a_known_vector_verifies() {
        // HMAC-SHA256(key = "k", "gatehouse-downlink-v1\ne\ng\n{\"id\":\"1\"}"),
        // computed independently (openssl dgst -sha256 -hmac k).
        let m = object(json!({"id": "1"}));
        let sig = sign(b"k", "e", "g", &m).expect("sign");
        assert_eq!(
            sig,
            "beaa6aeea08b1722cc849577059ecf854caedb1711c71052dc33d209a8db04c7"
        );
        let mut signed = m.clone();
        signed.insert("sig".into(), Value::String(sig.clone()));
        assert_eq!(verify(b"k", "e", "g", &signed), Ok(()));
        // Reordering members does not change the signature.
        let reordered: Map<String, Value> = signed.clone().into_iter().rev().collect();
        assert_eq!(verify(b"k", "e", "g", &reordered), Ok(()));
    }

    #[test]
    fn tampering_wrong_key_other_gateway_and_missing_sig_are_refused() {
        let m = object(json!({"id": "1", "action": "open_barrier", "device_id": "lane-1"}));
        let sig = sign(b"key", "e", "g", &m).expect("sign");
        let mut signed = m.clone();
        signed.insert("sig".into(), Value::String(sig));
        assert_eq!(
            verify(b"other", "e", "g", &signed),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"key", "e", "g2", &signed),
            Err(SignatureError::Mismatch)
        );
        let mut tampered = signed.clone();
        tampered.insert("device_id".into(), json!("lane-2"));
        assert_eq!(
            verify(b"key", "e", "g", &tampered),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(b"key", "e", "g", &m), Err(SignatureError::Missing));
        let mut short = m.clone();
        short.insert("sig".into(), json!("abcd"));
        assert_eq!(
            verify(b"key", "e", "g", &short),
            Err(SignatureError::Malformed)
        );
        assert_eq!(verify(b"", "e", "g", &signed), Err(SignatureError::NoKey));
    }
}
