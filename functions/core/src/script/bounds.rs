//! Calls that are refused before they run when their result would be over a limit.
//!
//! Rhai checks the size of strings, arrays and maps after each operation, and the
//! engine checks the wall time and the memory budget between operations, but one call
//! can do a lot of work before that: `s.replace("a", big)` on a 1,000-character string
//! builds a 1 GB string, `s.split("")` a million-item array. Here the built-in string
//! functions whose result can be much larger than their input are replaced by versions
//! that compute the result's size from the inputs first and fail with the same "data too
//! large" error Rhai gives; helpers that do real work per byte (HMACs, digests,
//! decoders) check the wall-time budget before they start.

use super::run_state;
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, NativeCallContext, Position};

type Checked<T> = Result<T, Box<EvalAltResult>>;

/// Fails like Rhai does when a string, array or map would be too large.
fn too_large(what: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorDataTooLarge(what.into(), Position::NONE).into()
}

/// A string of `len` bytes may be built.
pub(super) fn string_fits(ctx: &NativeCallContext, len: usize) -> Checked<()> {
    let max = ctx.engine().max_string_size();
    if max > 0 && len > max {
        return Err(too_large("Length of string"));
    }
    Ok(())
}

/// An array of `len` items may be built.
pub(super) fn array_fits(ctx: &NativeCallContext, len: usize) -> Checked<()> {
    let max = ctx.engine().max_array_size();
    if max > 0 && len > max {
        return Err(too_large("Size of array"));
    }
    Ok(())
}

/// A map of `len` entries may be built.
pub(super) fn map_fits(ctx: &NativeCallContext, len: usize) -> Checked<()> {
    let max = ctx.engine().max_map_size();
    if max > 0 && len > max {
        return Err(too_large("Size of object map"));
    }
    Ok(())
}

/// The run's wall-time budget is not spent yet.
pub(super) fn time_left() -> Checked<()> {
    if run_state::past_deadline() {
        return Err(EvalAltResult::ErrorTerminated(
            Dynamic::from(super::WALL_TIME_SPENT),
            Position::NONE,
        )
        .into());
    }
    Ok(())
}

/// The length of `text` with every `find` replaced by `by` (`find` empty: `by` between
/// every character and at both ends, as Rust's `replace` does).
fn replaced_len(text: &str, find: &str, by_len: usize) -> usize {
    if find.is_empty() {
        return text
            .len()
            .saturating_add((text.chars().count() + 1).saturating_mul(by_len));
    }
    let count = text.matches(find).count();
    (text.len() - count * find.len()).saturating_add(count.saturating_mul(by_len))
}

/// How many pieces splitting `text` at `delimiter` gives (empty: one per character, plus
/// the empty ends Rust's `split("")` yields).
fn pieces(text: &str, delimiter: &str) -> usize {
    if delimiter.is_empty() {
        text.chars().count() + 2
    } else {
        text.matches(delimiter).count() + 1
    }
}

fn strings(parts: impl Iterator<Item = impl Into<ImmutableString>>) -> Array {
    parts.map(|p| Dynamic::from(p.into())).collect()
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn(
        "replace",
        |ctx: NativeCallContext, s: &mut ImmutableString, find: &str, by: &str| -> Checked<()> {
            string_fits(&ctx, replaced_len(s, find, by.len()))?;
            *s = s.replace(find, by).into();
            Ok(())
        },
    );
    engine.register_fn(
        "replace",
        |ctx: NativeCallContext, s: &mut ImmutableString, find: &str, by: char| -> Checked<()> {
            string_fits(&ctx, replaced_len(s, find, by.len_utf8()))?;
            *s = s.replace(find, by.encode_utf8(&mut [0; 4])).into();
            Ok(())
        },
    );
    engine.register_fn(
        "replace",
        |ctx: NativeCallContext, s: &mut ImmutableString, find: char, by: &str| -> Checked<()> {
            let find = find.encode_utf8(&mut [0; 4]).to_string();
            string_fits(&ctx, replaced_len(s, &find, by.len()))?;
            *s = s.replace(&find, by).into();
            Ok(())
        },
    );
    engine.register_fn(
        "split",
        |ctx: NativeCallContext, s: &mut ImmutableString, at: &str| -> Checked<Array> {
            array_fits(&ctx, pieces(s, at))?;
            Ok(strings(s.split(at)))
        },
    );
    engine.register_fn(
        "split",
        |ctx: NativeCallContext, s: &mut ImmutableString, at: char| -> Checked<Array> {
            array_fits(&ctx, s.matches(at).count() + 1)?;
            Ok(strings(s.split(at)))
        },
    );
    engine.register_fn(
        "split",
        |ctx: NativeCallContext, s: &mut ImmutableString| -> Checked<Array> {
            array_fits(&ctx, s.split_whitespace().count())?;
            Ok(strings(s.split_whitespace()))
        },
    );
    engine.register_fn(
        "split_rev",
        |ctx: NativeCallContext, s: &mut ImmutableString, at: &str| -> Checked<Array> {
            array_fits(&ctx, pieces(s, at))?;
            Ok(strings(s.rsplit(at)))
        },
    );
    engine.register_fn(
        "split_rev",
        |ctx: NativeCallContext, s: &mut ImmutableString, at: char| -> Checked<Array> {
            array_fits(&ctx, s.matches(at).count() + 1)?;
            Ok(strings(s.rsplit(at)))
        },
    );
    engine.register_fn(
        "to_chars",
        |ctx: NativeCallContext, s: &str| -> Checked<Array> {
            array_fits(&ctx, s.chars().count())?;
            Ok(s.chars().map(Dynamic::from).collect())
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_sizes_are_computed_from_the_inputs() {
        assert_eq!(replaced_len("banana", "a", 3), "bAAAnAAAnAAA".len());
        assert_eq!(replaced_len("ab", "", 2), "--a--b--".len());
        assert_eq!(replaced_len("abc", "x", 100), 3);
        assert_eq!(pieces("a,b,,c", ","), "a,b,,c".split(',').count());
        assert_eq!(pieces("héllo", ""), "héllo".split("").count());
    }
}
