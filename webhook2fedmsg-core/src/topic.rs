//! Topic words taken from what a sender wrote.
//!
//! An event name comes from a request header or a payload field, and ends up
//! in an AMQP routing key, where `.` separates words and `*` and `#` are
//! wildcards. [`check_word`] lets through only `[a-z0-9_]`, so nothing a
//! sender writes can add words or reach another binding.

use crate::DeliveryError;

/// The longest event name accepted as one topic word.
pub const MAX_WORD_LEN: usize = 64;

/// Checks that `word` can be one topic word: 1 to 64 bytes of `[a-z0-9_]`.
pub fn check_word(header: &'static str, word: &str) -> Result<(), DeliveryError> {
    let invalid = |reason| DeliveryError::InvalidEvent { header, reason };
    if word.is_empty() {
        return Err(invalid("empty"));
    }
    if word.len() > MAX_WORD_LEN {
        return Err(invalid("longer than 64 characters"));
    }
    if !word
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid("only a-z, 0-9 and _ are allowed"));
    }
    Ok(())
}

/// Checks a dotted event name word by word, at most `max_words` words.
pub fn check_words(
    header: &'static str,
    words: &str,
    max_words: usize,
) -> Result<(), DeliveryError> {
    let mut count = 0;
    for word in words.split('.') {
        check_word(header, word)?;
        count += 1;
    }
    if count > max_words {
        return Err(DeliveryError::InvalidEvent {
            header,
            reason: "too many dot-separated words",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_service_event_names() {
        for word in ["push", "pull_request_review_comment", "future_event", "v2"] {
            assert_eq!(check_word("x", word), Ok(()), "{word}");
        }
    }

    #[test]
    fn rejects_words_that_would_change_the_routing_key() {
        let long = "a".repeat(65);
        for word in [
            "",
            "push.tag",
            "#",
            "*",
            "Push",
            "pùsh",
            "push hook",
            long.as_str(),
        ] {
            assert!(check_word("x", word).is_err(), "{word:?}");
        }
    }

    #[test]
    fn dotted_names_are_checked_word_by_word() {
        assert_eq!(check_words("action", "event.order.placed", 4), Ok(()));
        assert!(check_words("action", "event..placed", 4).is_err());
        assert!(check_words("action", "event.#", 4).is_err());
        assert!(check_words("action", "a.b.c.d.e", 4).is_err());
    }
}
