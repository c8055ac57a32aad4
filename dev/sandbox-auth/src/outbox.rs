//! Where "sent" SMS go: an in-memory list that tests and developers read instead of a phone.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::lock;

/// One delivered SMS.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    /// The recipient as `+<digits>`.
    pub to: String,
    /// The rendered text, every `{{code}}` replaced.
    pub text: String,
    /// The code in the text, so tests need not parse the template back.
    pub code: String,
    /// Delivery time, milliseconds since the Unix epoch.
    pub sent_at: u64,
}

/// A long-running dev server must not grow without bound; far more than any test reads.
const CAPACITY: usize = 1000;

#[derive(Default)]
pub(crate) struct Outbox {
    // Oldest at the front, so reading newest-first is a reverse walk.
    messages: Mutex<VecDeque<Message>>,
}

impl Outbox {
    /// Stores the message and, unless `quiet`, prints it as one JSON line on stdout
    /// (the developer's "phone" when running the binary).
    pub(crate) fn deliver(&self, message: Message, quiet: bool) {
        if !quiet {
            // A struct, not json!, so the fields print in this order whatever serde_json features
            // the workspace enables.
            #[derive(Serialize)]
            struct SmsLine<'a> {
                event: &'static str,
                to: &'a str,
                text: &'a str,
                sent_at: u64,
            }
            let line = SmsLine {
                event: "sandbox_sms",
                to: &message.to,
                text: &message.text,
                sent_at: message.sent_at,
            };
            if let Ok(line) = serde_json::to_string(&line) {
                // A closed stdout must not take the server down (println! would panic).
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
        let mut messages = lock(&self.messages);
        if messages.len() >= CAPACITY {
            messages.pop_front();
        }
        messages.push_back(message);
    }

    /// Messages newest first; with `to`, only those whose recipient has the same digits
    /// (so `+44…`, `44…` and `%2B44…` decoded to ` 44…` all match).
    pub(crate) fn list(&self, to: Option<&str>) -> Vec<Message> {
        let wanted = to.map(digits);
        lock(&self.messages)
            .iter()
            .rev()
            .filter(|m| wanted.as_deref().is_none_or(|w| digits(&m.to) == w))
            .cloned()
            .collect()
    }
}

fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(to: &str, code: &str) -> Message {
        Message { to: to.into(), text: code.into(), code: code.into(), sent_at: 0 }
    }

    #[test]
    fn newest_first_and_digit_matching() {
        let outbox = Outbox::default();
        outbox.deliver(msg("+441", "1"), true);
        outbox.deliver(msg("+442", "2"), true);
        outbox.deliver(msg("+441", "3"), true);
        let codes = |v: Vec<Message>| v.into_iter().map(|m| m.code).collect::<Vec<_>>();
        assert_eq!(codes(outbox.list(None)), ["3", "2", "1"]);
        assert_eq!(codes(outbox.list(Some(" 441"))), ["3", "1"]);
        assert_eq!(codes(outbox.list(Some("442"))), ["2"]);
        assert!(outbox.list(Some("999")).is_empty());
    }

    #[test]
    fn bounded() {
        let outbox = Outbox::default();
        for i in 0..CAPACITY + 5 {
            outbox.deliver(msg("+441", &i.to_string()), true);
        }
        let all = outbox.list(None);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].code, (CAPACITY + 4).to_string());
    }
}
