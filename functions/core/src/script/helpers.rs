//! Helper functions registered in the script engine: HMAC-SHA1/256/512,
//! SHA-256, hex and base64 (std and url-safe) encode/decode, constant-time comparison,
//! JSON parse/stringify, form decoding and `now()`.
//!
//! Byte-oriented helpers accept strings (their UTF-8 bytes) or blobs, in any
//! combination, so `hmac_sha256(ctx.vars.SECRET, ctx.rawBody)` and
//! `hmac_sha256(base64_decode(secret), ctx.rawBody)` both work. Digests come back as
//! blobs; the `_hex`/`_base64` variants return the encoded string directly, which is
//! what signature headers carry. Decoders raise a script error on bad input, which
//! rejects the request like any other script error.

use super::context::{dynamic_to_json, json_to_dynamic};
use super::{bounds, run_state};
use crate::verify::Algorithm;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use rhai::{Blob, Dynamic, Engine, EvalAltResult, ImmutableString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HelperResult<T> = Result<T, Box<EvalAltResult>>;

/// HMAC of `message` (the same implementation the `verify_*` checks use).
fn hmac_bytes(algorithm: Algorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    crate::verify::mac(algorithm, key, &[message])
}

/// Lower-case hex. `hex::encode` builds its string a character at a time; filling a
/// buffer is several times faster, and signature checks run on every request.
fn to_hex(bytes: &[u8]) -> String {
    let mut buffer = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut buffer).expect("the buffer is twice the input");
    String::from_utf8(buffer).expect("hex digits are ASCII")
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac_bytes(Algorithm::Sha256, key, message)
}

/// Registers a two-argument byte helper for every (string|blob, string|blob) pair.
/// Each checks the wall-time budget first: they work per byte (up to a megabyte), so a
/// loop of them could otherwise run many milliseconds between the engine's checks.
macro_rules! bytes2 {
    ($engine:expr, $name:expr, $f:expr) => {{
        let f = $f;
        $engine.register_fn($name, move |a: ImmutableString, b: ImmutableString| {
            bounds::time_left().map(|()| f(a.as_bytes(), b.as_bytes()))
        });
        $engine.register_fn($name, move |a: Blob, b: ImmutableString| {
            bounds::time_left().map(|()| f(&a, b.as_bytes()))
        });
        $engine.register_fn($name, move |a: ImmutableString, b: Blob| {
            bounds::time_left().map(|()| f(a.as_bytes(), &b))
        });
        $engine.register_fn($name, move |a: Blob, b: Blob| {
            bounds::time_left().map(|()| f(&a, &b))
        });
        // Anything else (most often `()`: a header or field that is not there) is a
        // plain error naming the problem, not Rhai's "function not found".
        $engine.register_fn($name, move |a: Dynamic, b: Dynamic| -> HelperResult<Blob> {
            Err(wrong_arguments($name, &a, &b))
        });
    }};
}

/// The error of a byte helper given something that is neither a string nor a blob.
fn wrong_arguments(helper: &str, a: &Dynamic, b: &Dynamic) -> Box<EvalAltResult> {
    let which = if a.is_string() || a.is_blob() {
        "second"
    } else {
        "first"
    };
    let given = if which == "first" { a } else { b };
    let problem = if given.is_unit() {
        format!(
            "its {which} argument is () — a missing value, such as a header the request does not have; test for it first (`\"name\" in ctx.headers`)"
        )
    } else {
        format!(
            "its {which} argument is a {}; pass a string or a blob",
            given.type_name()
        )
    };
    script_error(helper, problem)
}

/// Registers a one-argument byte helper for strings and blobs (checking the wall-time
/// budget first, as [`bytes2`] does).
macro_rules! bytes1 {
    ($engine:expr, $name:expr, $f:expr) => {{
        let f = $f;
        $engine.register_fn($name, move |a: ImmutableString| {
            bounds::time_left().map(|()| f(a.as_bytes()))
        });
        $engine.register_fn($name, move |a: Blob| bounds::time_left().map(|()| f(&a)));
    }};
}

fn script_error(helper: &str, problem: impl std::fmt::Display) -> Box<EvalAltResult> {
    format!("{helper}: {problem}").into()
}

pub fn register(engine: &mut Engine) {
    bytes2!(engine, "hmac_sha1", |k: &[u8], m: &[u8]| -> Blob {
        hmac_bytes(Algorithm::Sha1, k, m)
    });
    bytes2!(engine, "hmac_sha256", |k: &[u8], m: &[u8]| -> Blob {
        hmac_sha256(k, m)
    });
    bytes2!(engine, "hmac_sha512", |k: &[u8], m: &[u8]| -> Blob {
        hmac_bytes(Algorithm::Sha512, k, m)
    });
    bytes2!(engine, "hmac_sha1_hex", |k: &[u8], m: &[u8]| -> String {
        to_hex(&hmac_bytes(Algorithm::Sha1, k, m))
    });
    bytes2!(engine, "hmac_sha256_hex", |k: &[u8], m: &[u8]| -> String {
        to_hex(&hmac_sha256(k, m))
    });
    bytes2!(engine, "hmac_sha512_hex", |k: &[u8], m: &[u8]| -> String {
        to_hex(&hmac_bytes(Algorithm::Sha512, k, m))
    });
    bytes2!(engine, "hmac_sha1_base64", |k: &[u8], m: &[u8]| -> String {
        STANDARD.encode(hmac_bytes(Algorithm::Sha1, k, m))
    });
    bytes2!(engine, "hmac_sha256_base64", |k: &[u8],
                                           m: &[u8]|
     -> String {
        STANDARD.encode(hmac_sha256(k, m))
    });
    bytes2!(engine, "hmac_sha512_base64", |k: &[u8],
                                           m: &[u8]|
     -> String {
        STANDARD.encode(hmac_bytes(Algorithm::Sha512, k, m))
    });
    bytes2!(engine, "secure_eq", |a: &[u8], b: &[u8]| -> bool {
        a.ct_eq(b).into()
    });
    // A missing value equals nothing: `secure_eq(expected, ctx.headers["x-sig"])` is
    // false when the request has no such header (registered after the macro's fallback,
    // so it replaces it).
    engine.register_fn(
        "secure_eq",
        |a: Dynamic, b: Dynamic| -> HelperResult<bool> {
            if a.is_unit() || b.is_unit() {
                return Ok(false);
            }
            Err(wrong_arguments("secure_eq", &a, &b))
        },
    );

    bytes1!(engine, "sha256", |d: &[u8]| -> Blob {
        Sha256::digest(d).to_vec()
    });
    bytes1!(engine, "sha256_hex", |d: &[u8]| -> String {
        to_hex(&Sha256::digest(d))
    });
    bytes1!(engine, "hex_encode", |d: &[u8]| -> String { to_hex(d) });
    bytes1!(engine, "base64_encode", |d: &[u8]| -> String {
        STANDARD.encode(d)
    });
    bytes1!(engine, "base64url_encode", |d: &[u8]| -> String {
        URL_SAFE_NO_PAD.encode(d)
    });

    engine.register_fn("hex_decode", |s: ImmutableString| -> HelperResult<Blob> {
        hex::decode(s.as_str()).map_err(|e| script_error("hex_decode", e))
    });
    engine.register_fn(
        "base64_decode",
        |s: ImmutableString| -> HelperResult<Blob> {
            STANDARD
                .decode(s.as_str())
                .map_err(|e| script_error("base64_decode", e))
        },
    );
    engine.register_fn(
        "base64url_decode",
        |s: ImmutableString| -> HelperResult<Blob> {
            let trimmed = s.trim_end_matches('=');
            URL_SAFE_NO_PAD
                .decode(trimmed)
                .or_else(|_| URL_SAFE.decode(s.as_str()))
                .map_err(|e| script_error("base64url_decode", e))
        },
    );
    engine.register_fn(
        "json_parse",
        |s: ImmutableString| -> HelperResult<Dynamic> {
            let value: serde_json::Value =
                serde_json::from_str(&s).map_err(|e| script_error("json_parse", e))?;
            Ok(json_to_dynamic(&value))
        },
    );
    engine.register_fn("json_stringify", |v: Dynamic| -> HelperResult<String> {
        let value = dynamic_to_json(&v).map_err(|e| script_error("json_stringify", e))?;
        Ok(value.to_string())
    });
    engine.register_fn(
        "form_decode",
        |ctx: rhai::NativeCallContext, s: ImmutableString| -> HelperResult<rhai::Map> {
            bounds::map_fits(&ctx, s.split('&').count())?;
            Ok(form_urlencoded::parse(s.as_bytes())
                .map(|(k, v)| (k.as_ref().into(), Dynamic::from(v.into_owned())))
                .collect())
        },
    );
    engine.register_fn("now", || -> i64 { run_state::now_ms().div_euclid(1000) });
    engine.register_fn("now_ms", run_state::now_ms);
}

#[cfg(test)]
mod tests {
    use crate::script::{ScriptEngine, ScriptInput, ScriptLimits};
    use crate::vars::Vars;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn eval(expr: &str) -> Result<Value, String> {
        let engine = ScriptEngine::new(ScriptLimits::default());
        let script = engine
            .compile("t", &format!("fn main(ctx) {{ #{{ out: {expr} }} }}"))
            .map_err(|e| e.to_string())?;
        let empty = Arc::new(json!({}));
        engine
            .run(
                &script,
                ScriptInput {
                    vars: Arc::new(Vars::new([])),
                    body: empty.clone(),
                    raw_body: "",
                    headers: empty.clone(),
                    query: empty,
                    method: "POST",
                    received_at: 0,
                    now_ms: 1_234_567,
                },
            )
            .map(|o| o.preprocess["out"].clone())
            .map_err(|e| e.message)
    }

    #[test]
    fn known_answer_vectors() {
        // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe").
        assert_eq!(
            eval(r#"hmac_sha256_hex("Jefe", "what do ya want for nothing?")"#).unwrap(),
            json!("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            eval(r#"hmac_sha1_hex("key", "The quick brown fox jumps over the lazy dog")"#).unwrap(),
            json!("de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9")
        );
        assert_eq!(
            eval(r#"hex_encode(hmac_sha512("Jefe", "what do ya want for nothing?")).sub_string(0, 16)"#).unwrap(),
            json!("164b7a7bfcf819e2")
        );
        assert_eq!(
            eval(r#"sha256_hex("abc")"#).unwrap(),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            eval(r#"hmac_sha256_base64("key", "msg") == base64_encode(hmac_sha256("key", "msg"))"#)
                .unwrap(),
            json!(true)
        );
    }

    #[test]
    fn encodings_round_trip_and_fail_clearly() {
        assert_eq!(
            eval(r#"hex_decode("6869").as_string()"#).unwrap(),
            json!("hi")
        );
        assert_eq!(eval(r#"base64_encode("hi?>")"#).unwrap(), json!("aGk/Pg=="));
        assert_eq!(
            eval(r#"base64url_encode("hi?>")"#).unwrap(),
            json!("aGk_Pg")
        );
        assert_eq!(
            eval(r#"base64url_decode("aGk_Pg==").as_string()"#).unwrap(),
            json!("hi?>")
        );
        assert_eq!(
            eval(r#"base64_decode("aGk/Pg==").as_string()"#).unwrap(),
            json!("hi?>")
        );
        assert!(
            eval(r#"hex_decode("zz")"#)
                .unwrap_err()
                .contains("hex_decode: Invalid character")
        );
        assert!(
            eval(r#"base64_decode("***")"#)
                .unwrap_err()
                .contains("base64_decode")
        );
    }

    #[test]
    fn secure_eq_json_form_and_time() {
        assert_eq!(eval(r#"secure_eq("abc", "abc")"#).unwrap(), json!(true));
        assert_eq!(eval(r#"secure_eq("abc", "abd")"#).unwrap(), json!(false));
        assert_eq!(eval(r#"secure_eq("abc", "abcd")"#).unwrap(), json!(false));
        assert_eq!(
            eval(r#"secure_eq(hex_decode("01"), hex_decode("01"))"#).unwrap(),
            json!(true)
        );
        assert_eq!(
            eval(r#"json_parse("{\"a\":[1,2]}").a[1]"#).unwrap(),
            json!(2)
        );
        assert_eq!(
            eval(r#"json_stringify(#{a: 1})"#).unwrap(),
            json!("{\"a\":1}")
        );
        assert!(
            eval(r#"json_parse("{")"#)
                .unwrap_err()
                .contains("json_parse")
        );
        assert_eq!(
            eval(r#"form_decode("a=1&b=x+y%21").b"#).unwrap(),
            json!("x y!")
        );
        assert_eq!(eval("now()").unwrap(), json!(1234));
        assert_eq!(eval("now_ms()").unwrap(), json!(1_234_567));
    }
}
