//! Strict JSON parsing: every string, key and number decoded, and nesting
//! limited to [`MAX_DEPTH`].
//!
//! serde_json skips a value that nothing reads (a field a struct does not
//! name) without decoding it: a lone surrogate escape, a number out of range
//! or very deep nesting pass unnoticed there. [`read`] reads a struct in one
//! pass that decodes those skipped values too, so a service reads the few
//! fields it needs and checks the whole payload at the cost of one parse.
//!
//! It does so by wrapping serde_json's deserializer: the wrapper hands every
//! value through unchanged, except that a value the target type ignores is
//! parsed (with `deserialize_any`) instead of being skipped, and that each
//! array or object takes one level from the room left.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::delivery::{DeliveryError, MAX_DEPTH, invalid_json};

/// What the parse says of a payload nested too deep.
const TOO_DEEP: &str = "nesting deeper than the limit";

/// Checks that `text` is one JSON value that every strict parser reads: see
/// the module documentation.
pub(crate) fn check(text: &str) -> Result<(), DeliveryError> {
    read::<de::IgnoredAny>(text).map(drop)
}

/// Reads `T` from `text`, checking every value `T` does not read as
/// [`check`] would.
///
/// `T` may be built of structs, options, sequences, maps and scalars, as
/// derived; an enum is refused with an error, because its variant's
/// contents would not be checked.
pub(crate) fn read<'de, T: de::Deserialize<'de>>(text: &'de str) -> Result<T, DeliveryError> {
    let mut parser = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(Checked {
        inner: &mut parser,
        room: MAX_DEPTH,
    })
    .and_then(|value| parser.end().map(|()| value))
    .map_err(|e| describe(&e))?;
    Ok(value)
}

/// serde_json's words for a `\uD800`-`\uDFFF` escape without its pair:
/// a leading one not followed by an escape, or a trailing one alone.
const SURROGATE_ERRORS: [&str; 2] = [
    "unexpected end of hex escape",
    "lone leading surrogate in hex escape",
];

/// Describes a parse error: too-deep nesting by the limit, a lone
/// surrogate escape by what it is, others as [`invalid_json`] does.
fn describe(error: &serde_json::Error) -> DeliveryError {
    let text = error.to_string();
    let what = if text.starts_with(TOO_DEEP) {
        format!("nesting deeper than {MAX_DEPTH} arrays and objects")
    } else if SURROGATE_ERRORS.iter().any(|e| text.starts_with(e)) {
        "a lone UTF-16 surrogate escape (\\uD800 to \\uDFFF without its pair)".to_string()
    } else {
        return invalid_json(error);
    };
    DeliveryError::InvalidJson(format!(
        "{what} at line {} column {}",
        error.line(),
        error.column()
    ))
}

/// The room left inside an array or object that has `room` levels.
fn inner<E: de::Error>(room: usize) -> Result<usize, E> {
    room.checked_sub(1).ok_or_else(|| E::custom(TOO_DEEP))
}

/// A deserializer for one value with `room` levels of nesting left.
struct Checked<D> {
    inner: D,
    room: usize,
}

impl<D> Checked<D> {
    fn wrap<V>(&self, visitor: V) -> Checked<V> {
        Checked {
            inner: visitor,
            room: self.room,
        }
    }
}

/// Deserializer methods that hand the call on with the visitor wrapped.
macro_rules! forward_checked {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.wrap(visitor);
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Checked<D> {
    type Error = D::Error;

    forward_checked! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_identifier();
    }

    /// A struct is read from an object only: serde_json would also read
    /// one from an array, by position, which no sender means.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, D::Error> {
        Err(de::Error::custom(
            "an enum cannot be read in a strict parse",
        ))
    }

    /// The one change: a value nobody reads is parsed, not skipped, and
    /// what is inside it is [`Checked`] too.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let ignored = self.wrap(de::IgnoredAny);
        self.inner.deserialize_any(ignored)?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Visitor methods that hand a scalar on unchanged.
macro_rules! forward_scalar {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            self.inner.$method(value)
        }
    )*};
}

/// The visitor of a [`Checked`] value: arrays and objects take a level, and
/// what is inside them is [`Checked`] too.
impl<'de, V: Visitor<'de>> Visitor<'de> for Checked<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_scalar! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let deserializer = self.wrap(deserializer);
        self.inner.visit_some(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let deserializer = self.wrap(deserializer);
        self.inner.visit_newtype_struct(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let room = inner(self.room)?;
        self.inner.visit_seq(Checked { inner: seq, room })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let room = inner(self.room)?;
        self.inner.visit_map(Checked { inner: map, room })
    }
}

/// The elements of a [`Checked`] array.
impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Checked<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = self.wrap(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// The keys and values of a [`Checked`] object.
impl<'de, A: MapAccess<'de>> MapAccess<'de> for Checked<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = self.wrap(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.wrap(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A value inside a [`Checked`] array or object.
impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Checked<T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        let deserializer = self.wrap(deserializer);
        self.inner.deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde::Deserialize;

    use super::{check, read};
    use crate::DeliveryError;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Fields<'a> {
        #[serde(borrow)]
        name: Option<Cow<'a, str>>,
        flags: Option<Vec<bool>>,
    }

    /// Reading fields gives the same verdict as checking the whole text.
    #[test]
    fn read_refuses_what_check_refuses_and_nothing_else() {
        let texts = [
            r#"{"name":"a","other":{"n":[1,2.5e3,-0]}}"#,
            r#"{"name":"a","other":1e400}"#,
            r#"{"other":"\udc00","name":"a"}"#,
            r#"{"flags":[true,false],"other":{"\ud800":1}}"#,
            r#"{"name":"a\ud83d\ude0a"}"#,
            r#"{"name":"a"} x"#,
            r#"{"name":"a","other":[}"#,
        ];
        for text in texts {
            let read = read::<Fields>(text).map(|_| ());
            assert_eq!(read.is_ok(), check(text).is_ok(), "{text}: {read:?}");
        }
    }

    /// A `&str` field reads only a string that is borrowed from the text.
    #[test]
    fn read_borrows_the_strings_it_reads() {
        #[derive(Deserialize)]
        struct Borrowed<'a> {
            name: &'a str,
        }
        let fields: Borrowed = read(r#"{"x":[{}],"name":"a"}"#).unwrap();
        assert_eq!(fields.name, "a");
    }

    #[test]
    fn an_enum_is_refused_rather_than_read_unchecked() {
        #[derive(Deserialize, Debug)]
        enum Choice {
            A,
        }
        let result = read::<Choice>(r#""A""#);
        assert!(
            matches!(result, Err(DeliveryError::InvalidJson(_))),
            "{result:?}"
        );
    }
}
